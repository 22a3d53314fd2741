"""The ComfyUI nodes' logic called directly on the bundled model (no ComfyUI needed)."""

import inspect
import json

import pytest
import torch

from pez_nodes import core
from pez_nodes import toyworld as tw
from pez_nodes.comfy import node_bodies, model_choices
from pez_nodes.comfy.host import NodeProgress
from pez_nodes.core import TOY_DIR, PEZConfig, encode_text, image_features, with_negatives
from pez_nodes.core.clip.architecture import identify_architecture


def _batch(*scenes, size=64):
    """A ComfyUI IMAGE batch: [B, H, W, C] float in 0..1."""
    import numpy as np

    arrays = [np.asarray(tw.render(s, size=size, seed=i), dtype="float32") / 255 for i, s in enumerate(scenes)]
    return torch.from_numpy(np.stack(arrays))


@pytest.fixture(scope="module")
def clip():
    return node_bodies.load_model(model_choices.TOY, "cpu")


def test_loader_offers_toy_first_and_presets_without_network():
    choices = model_choices.choices()
    assert choices[0] == model_choices.TOY and any("ViT-L-14" in c for c in choices)


def test_unknown_choice_says_where_files_go():
    with pytest.raises(ValueError, match="models/open_clip"):
        model_choices.resolve("missing.safetensors")


def test_invert_batch_gives_one_prompt_with_its_similarity(clip):
    images = _batch(tw.Scene("star", "yellow", "large", "night"), tw.Scene("star", "yellow", "small", "night"))
    config = node_bodies.make_config(prompt_len=4, steps=30, seed=1, device=clip.device)
    result = node_bodies.invert(clip, images, config)
    target = image_features(clip, list(images.unbind(0)))
    sim = float((encode_text(clip, result.text) @ target.T).mean())
    assert abs(sim - result.similarity) < 1e-4


def test_invert_with_negative_images_and_text(clip):
    """Negatives join the objective with the node's share: each of the two weighs -0.25 against the image's 1."""
    images = _batch(tw.Scene("circle", "red", "large", "grass"))
    neg = _batch(tw.Scene("circle", "blue", "large", "grass"))
    config = node_bodies.make_config(prompt_len=4, steps=20, device=clip.device)
    result = node_bodies.invert(clip, images, config, negative_images=neg, negative_text="blue", negative_weight=0.5)
    feat = encode_text(clip, result.text)
    cos = [float(feat @ image_features(clip, [images[0]])[0]), float(feat @ image_features(clip, [neg[0]])[0]),
           float(feat @ encode_text(clip, "blue"))]
    assert result.target_cosines == pytest.approx(cos, abs=1e-4)
    assert result.similarity == pytest.approx((cos[0] - 0.25 * cos[1] - 0.25 * cos[2]) / 1.5, abs=1e-4)
    assert "blue" not in result.text.split()


def test_empty_inputs_are_clear_errors(clip):
    config = node_bodies.make_config(prompt_len=4, steps=5, device=clip.device)
    with pytest.raises(ValueError, match="non-empty IMAGE"):
        node_bodies.invert(clip, torch.zeros(0, 64, 64, 3), config)
    with pytest.raises(ValueError, match="empty"):
        node_bodies.distill(clip, "", config)
    with pytest.raises(ValueError, match="two or more"):
        node_bodies.concat(clip, ["red circle", "", None], config)


def test_concat_and_distill_and_template_blocklist_widgets(clip):
    config = node_bodies.make_config(prompt_len=3, steps=20, blocklist="red, circle", template="a photo of {}", device=clip.device)
    result = node_bodies.concat(clip, ["a red circle", "on grass"], config)
    assert result.text.startswith("a photo of") and not {"red", "circle"} & set(result.text.split())
    feat = encode_text(clip, result.text)
    mean = (float(feat @ encode_text(clip, "a red circle")) + float(feat @ encode_text(clip, "on grass"))) / 2
    assert result.similarity == pytest.approx(mean, abs=1e-4)
    result = node_bodies.distill(clip, "a large red circle on grass", config)
    assert result.text.startswith("a photo of") and "red" not in result.text.split() and "circle" not in result.text.split()


def test_progress_adapter_runs_outside_comfyui():
    progress = NodeProgress("7", 10)
    assert progress(1, 10, "a prompt", 0.5) is False


def test_logic_defaults_are_pezconfigs():
    """An input left out of an API prompt gets these; the widgets show the same (tests/test_node_schema.py)."""
    assert node_bodies.make_config() == PEZConfig()
    assert node_bodies.make_config(blocklist="", template="", slot_len=0) == PEZConfig()  # empty widgets mean "not set"
    share = inspect.signature(with_negatives).parameters["share"].default
    assert inspect.signature(node_bodies.invert).parameters["negative_weight"].default == node_bodies.NEGATIVE_WEIGHT == share


def test_pez_options_merge_with_the_widgets_and_moved_inputs_are_refused():
    """PEZ Options' values and a node's widgets make one PEZConfig (the widgets win); the guided settings and empty
    texts as "not set"; an API prompt that still sends a moved setting is refused by name."""
    options = node_bodies.options(lr=0.05, restarts=2, beams=3, start_text=" ", instruction="Describe it.")
    values = node_bodies.settings("PEZ Distill Prompt", options, {"steps": 5, "restarts": 1})
    assert node_bodies.make_config(**values) == PEZConfig(lr=0.05, restarts=1, steps=5, beams=3,
                                                          instruction="Describe it.")
    assert node_bodies.settings("PEZ Distill Prompt", None, {"steps": 5}) == {"steps": 5}
    with pytest.raises(ValueError, match="PEZ Options has no input 'steps'"):
        node_bodies.options(steps=5)
    with pytest.raises(ValueError, match="PEZ Distill Prompt no longer takes restarts, fluency: these settings moved "
                                         "to a PEZ Options node"):
        node_bodies.settings("PEZ Distill Prompt", None, {}, sent={"steps": 5, "fluency": 0.0, "restarts": 4})
    kept, notes = node_bodies.without_negatives("PEZ Distill", {"negative_text": "blue", "negative_weight": 0.5, "lr": 1})
    assert kept == {"lr": 1} and "takes no negatives" in notes[0]
    assert node_bodies.without_negatives("PEZ Distill", {"negative_text": ""}) == ({}, [])


def test_loader_options_left_out_take_load_clips_defaults(monkeypatch):
    calls = []
    monkeypatch.setattr(core, "load_clip", lambda *args, **kwargs: calls.append((args, kwargs)))
    node_bodies.load_model(model_choices.TOY, "cpu")
    node_bodies.load_model(model_choices.TOY, "cpu", activation="quickgelu", vocabulary="declared")
    cpu = torch.device("cpu")  # the one device resolver's answer for "cpu"
    assert calls[0][1] == {"device": cpu}
    assert calls[1][1] == {"device": cpu, "activation": "quickgelu", "vocabulary": "declared"}


def test_bare_safetensors_architecture_is_recognised(tmp_path):
    import open_clip

    cfg = json.loads((TOY_DIR / "open_clip_config.json").read_text())["model_cfg"]
    (tmp_path / "pez-toy-arch.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "pez-toy-arch.json")
    found = identify_architecture(TOY_DIR / "open_clip_model.safetensors")
    assert (found.name, found.activation) == ("pez-toy-arch", "gelu") and "no evidence" in found.reason


def test_non_clip_safetensors_is_rejected(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="does not look like an open_clip CLIP"):
        identify_architecture(tmp_path / "other.safetensors")


def test_prompts_cross_cliptextencode_with_their_parentheses_escaped_and_back():
    from pez_nodes.comfy.prompt_syntax import for_text_encode, from_text_encode

    text = "a (red) circle :) at (night:1.2)"
    assert for_text_encode(text) == r"a \(red\) circle :\) at \(night:1.2\)"
    assert from_text_encode(for_text_encode(text)) == text
