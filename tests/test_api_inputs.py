"""The Python API accepts what users naturally pass, or refuses it clearly (no silent surprises)."""

import numpy as np
import pytest
import torch

from pez_nodes import toyworld as tw
from pez_nodes.core import PEZConfig, concat, distill, invert, optimize, Target

FAST = dict(steps=20, prompt_len=4, restarts=1)


@pytest.fixture(scope="module")
def picture():
    return tw.render(tw.Scene("cross", "orange", "large", "sand"), size=64, seed=3)


def test_a_single_path_or_image_is_one_image_not_characters(toy, picture, tmp_path):
    path = tmp_path / "one.png"
    picture.save(path)
    by_list = invert(toy, [picture], PEZConfig(**FAST))
    for single in (str(path), path, picture):
        r = invert(toy, single, PEZConfig(**FAST))
        assert r.text == by_list.text and r.similarity == pytest.approx(by_list.similarity, abs=1e-6)
        assert len(r.target_cosines) == 1


def test_a_batch_tensor_is_split_into_images(toy, picture):
    arr = torch.from_numpy(np.array(picture)).float() / 255
    r = invert(toy, torch.stack([arr, arr]), PEZConfig(**FAST))
    assert len(r.target_cosines) == 2


def test_concat_of_one_string_is_refused(toy):
    with pytest.raises(ValueError, match="one string"):
        concat(toy, "ab", PEZConfig(**FAST))


def test_targets_must_be_a_list(toy):
    with pytest.raises(ValueError, match="list of Target"):
        optimize(toy, Target(text="red"), PEZConfig(**FAST))


def test_string_allowlist_and_blocklist_are_words_not_letters():
    cfg = PEZConfig(allowlist="red, blue circle", blocklist="cat, dog").validate()
    assert cfg.allowlist == ("red", "blue", "circle") and cfg.blocklist == ("cat", "dog")
    original = PEZConfig(allowlist="red")
    original.validate()
    assert original.allowlist == "red"  # validate returns a normalised copy; the caller's object is untouched


def test_numpy_numbers_are_accepted(toy):
    cfg = PEZConfig(prompt_len=np.int64(4), steps=np.int32(5), seed=np.int64(2), lr=np.float32(0.1), restarts=1)
    r = distill(toy, "a small red circle on grass", cfg)
    assert r.steps == 5 and len(r.token_ids) >= 1


def test_slot_len_without_template_is_refused():
    with pytest.raises(ValueError, match="slot_len=3 is set but there is no template"):
        PEZConfig(slot_len=3).validate()


def test_the_callers_model_is_not_moved(toy):
    before = toy.device
    optimize(toy, [Target(text="red")], PEZConfig(device="auto", **FAST))
    assert toy.device == before
    with pytest.raises(ValueError, match="cannot run PEZ"):
        optimize(toy, [Target(text="red")], PEZConfig(device="meta", **FAST))
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="is on cpu"):
            optimize(toy, [Target(text="red")], PEZConfig(device="cuda", **FAST))
    assert toy.device == before


def test_a_directory_is_not_an_image(toy, tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        invert(toy, tmp_path, PEZConfig(**FAST))
