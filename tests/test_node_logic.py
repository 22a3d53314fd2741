"""The ComfyUI nodes' logic called directly on the bundled model (no ComfyUI needed)."""

import json

import pytest
import torch

from pez_nodes import toyworld as tw
from pez_nodes.comfy import logic, model_list
from pez_nodes.comfy.host import NodeProgress
from pez_nodes.core import TOY_DIR, encode_text, image_features
from pez_nodes.core.architecture import identify_architecture


def _batch(*scenes, size=64):
    """A ComfyUI IMAGE batch: [B, H, W, C] float in 0..1."""
    import numpy as np

    arrays = [np.asarray(tw.render(s, size=size, seed=i), dtype="float32") / 255 for i, s in enumerate(scenes)]
    return torch.from_numpy(np.stack(arrays))


@pytest.fixture(scope="module")
def clip():
    return logic.load_model(model_list.TOY, "cpu")


def test_loader_offers_toy_first_and_presets_without_network():
    choices = model_list.choices()
    assert choices[0] == model_list.TOY and any("ViT-L-14" in c for c in choices)


def test_unknown_choice_says_where_files_go():
    with pytest.raises(ValueError, match="models/open_clip"):
        model_list.resolve("missing.safetensors")


def test_invert_batch_gives_one_prompt_with_its_similarity(clip):
    images = _batch(tw.Scene("star", "yellow", "large", "night"), tw.Scene("star", "yellow", "small", "night"))
    config = logic.make_config(prompt_len=4, steps=30, seed=1, device=clip.device)
    result = logic.invert(clip, images, config)
    target = image_features(clip, list(images.unbind(0)))
    sim = float((encode_text(clip, result.text) @ target.T).mean())
    assert abs(sim - result.similarity) < 1e-4


def test_invert_with_negative_images_and_text(clip):
    images = _batch(tw.Scene("circle", "red", "large", "grass"))
    neg = _batch(tw.Scene("circle", "blue", "large", "grass"))
    config = logic.make_config(prompt_len=4, steps=20, device=clip.device)
    result = logic.invert(clip, images, config, negative_images=neg, negative_text="blue", negative_weight=0.5)
    assert result.steps == 20 and result.text


def test_empty_inputs_are_clear_errors(clip):
    config = logic.make_config(prompt_len=4, steps=5, device=clip.device)
    with pytest.raises(ValueError, match="non-empty IMAGE"):
        logic.invert(clip, torch.zeros(0, 64, 64, 3), config)
    with pytest.raises(ValueError, match="empty"):
        logic.distill(clip, "", config)
    with pytest.raises(ValueError, match="two or more"):
        logic.concat(clip, ["red circle", "", None], config)


def test_concat_and_distill_and_template_blocklist_widgets(clip):
    config = logic.make_config(prompt_len=3, steps=20, blocklist="red, circle", template="a photo of {}", device=clip.device)
    result = logic.concat(clip, ["a red circle", "on grass"], config)
    assert result.text
    result = logic.distill(clip, "a large red circle on grass", config)
    assert result.text.startswith("a photo of") and "red" not in result.text.split() and "circle" not in result.text.split()


def test_progress_adapter_runs_outside_comfyui():
    progress = NodeProgress("7", 10)
    assert progress(1, 10, "a prompt", 0.5) is False


def test_bare_safetensors_architecture_is_recognised(tmp_path):
    import open_clip

    cfg = json.loads((TOY_DIR / "open_clip_config.json").read_text())["model_cfg"]
    (tmp_path / "pez-toy-arch.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "pez-toy-arch.json")
    assert identify_architecture(TOY_DIR / "open_clip_model.safetensors") == "pez-toy-arch"


def test_non_clip_safetensors_is_rejected(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="does not look like an open_clip CLIP"):
        identify_architecture(tmp_path / "other.safetensors")
