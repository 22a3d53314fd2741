"""Generation for the paper's loop: the toy text-to-image model and real Stable Diffusion's plumbing.

Thresholds were measured on the shipped toy models and sit beside each test (README, "The paper's loop").
"""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="diffusers is not installed: pip install -e '.[generate]'")

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.evaluate.reference import load_reference_clip  # noqa: E402
from pez_nodes.evaluate.zero_shot import classify_attributes  # noqa: E402
from pez_nodes.generate import load_generator  # noqa: E402

# Measured on the shipped toy diffusion model (default guidance 2, 25 steps): the reference CLIP classified the
# attributes of pictures generated from true captions right at 78.5 / 81.5 / 48 / 85 % (200 scenes, README) and
# 70 / 77.5 / 32.5 / 85 % on this test's 40 scenes; chance is 50 / 14 / 14 / 25 %. The floors sit between.
TRUE_CAPTION_FLOOR = {"size": 0.6, "color": 0.6, "shape": 0.2, "background": 0.7}


@pytest.fixture(scope="module")
def toy_generator():
    return load_generator("toy")


@pytest.fixture(scope="module")
def reference():
    return load_reference_clip()


def _array(image):
    return np.asarray(image, dtype=np.int16)


def test_the_same_seed_gives_the_same_picture_and_seeds_differ(toy_generator):
    a = toy_generator.generate("a large red circle on grass", [3, 4])
    b = toy_generator.generate("a large red circle on grass", [3], guidance=toy_generator.guidance, steps=25)
    assert a[0].size == (32, 32) and np.array_equal(_array(a[0]), _array(b[0]))
    assert not np.array_equal(_array(a[0]), _array(a[1]))
    paper = toy_generator.generate("a large red circle on grass", [3], guidance=9.0)
    assert not np.array_equal(_array(a[0]), _array(paper[0]))  # the default is the toy model's own guidance


def test_true_captions_generate_pictures_the_reference_clip_recognises(toy_generator, reference):
    rng = random.Random(11)
    scenes = [tw.random_scene(rng) for _ in range(40)]
    images = [toy_generator.generate(s.caption, [100 + i])[0] for i, s in enumerate(scenes)]
    accuracy = classify_attributes(reference, images, scenes)
    for kind, floor in TRUE_CAPTION_FLOOR.items():
        assert accuracy[kind] >= floor, (kind, accuracy)


@pytest.mark.parametrize("settings, message", [
    (dict(guidance=0.0), "guidance=0.0 must be a number > 0"),
    (dict(guidance=-2.0), "guidance=-2.0 must be a number > 0"),
    (dict(guidance=float("nan")), "guidance=nan"),
    (dict(steps=0), "steps=0: generation needs at least 1"),
    (dict(seeds=[]), "give one or more integer seeds"),
])
def test_bad_generation_settings_get_one_clear_error(toy_generator, settings, message):
    args = dict(prompt="a red circle", seeds=[0], guidance=9.0, steps=25) | settings
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        toy_generator.generate(**args)


def test_stable_diffusion_runs_end_to_end_offline_from_a_diffusers_folder(tmp_path):
    pytest.importorskip("transformers", reason="real Stable Diffusion needs transformers")
    from tiny_sd import write_tiny_sd

    sd = load_generator(str(write_tiny_sd(tmp_path / "tiny_sd")))
    first = sd.generate("a red fox in the snow", [0, 1], guidance=9.0, steps=3)
    again = sd.generate("a red fox in the snow", [0], guidance=9.0, steps=3)
    assert len(first) == 2 and first[0].size == (16, 16)
    assert np.array_equal(_array(first[0]), _array(again[0]))
    with pytest.raises(ValueError, match="steps=0"):
        sd.generate("a red fox", [0], steps=0)


def test_stable_diffusion_runs_offline_from_a_single_safetensors_checkpoint(tmp_path, monkeypatch):
    pytest.importorskip("transformers", reason="real Stable Diffusion needs transformers")
    import huggingface_hub
    import torch
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS
    from tiny_sd import write_tiny_sd, write_tiny_sd_single_file

    folder = write_tiny_sd(tmp_path / "tiny_sd")
    checkpoint = write_tiny_sd_single_file(folder, tmp_path / "tiny-v1-5-pruned-emaonly.safetensors")
    from_folder = load_generator(str(folder))
    single = load_generator(str(checkpoint), config=str(folder))
    for part in ("unet", "vae", "text_encoder"):  # diffusers' LDM -> diffusers conversion undoes the helper's exactly
        want, got = getattr(from_folder.pipeline, part).state_dict(), getattr(single.pipeline, part).state_dict()
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), part
    expected = _array(from_folder.generate("a red fox", [0], steps=2)[0])
    assert np.array_equal(_array(single.generate("a red fox", [0], steps=2)[0]), expected)

    # Without config the configs can only come from the Hugging Face cache (huggingface_hub reads HF_HUB_OFFLINE and
    # its cache folder at import, hence the setattr); with an empty cache: one clear error, and no download.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ValueError, match="none are in the Hugging Face cache .*--sd-config"):
        load_generator(str(checkpoint))
    # Once the model type's configs are cached (as one online run leaves them), the file loads alone.
    repo = DIFFUSERS_DEFAULT_PIPELINE_PATHS["v1"]["pretrained_model_name_or_path"]
    cached = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, cached / "snapshots" / ("0" * 40), ignore=shutil.ignore_patterns("*.safetensors"))
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text("0" * 40)
    assert np.array_equal(_array(load_generator(str(checkpoint)).generate("a red fox", [0], steps=2)[0]), expected)


def test_missing_or_wrong_pipelines_get_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist; give a diffusers folder"):
        load_generator(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a diffusers pipeline \\(no model_index.json\\)"):
        load_generator(str(tmp_path / "empty"))
    (tmp_path / "model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="pickled checkpoints \\(.ckpt\\) are not loaded"):
        load_generator(str(tmp_path / "model.ckpt"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="'broken.safetensors' could not be read as safetensors"):
        load_generator(str(broken))
