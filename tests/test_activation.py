"""GELU or QuickGELU: shapes cannot tell them apart, so the loader decides from evidence and says why.

Two tiny open_clip configs that differ only in ``quick_gelu`` stand in for ``ViT-L-14`` /
``ViT-L-14-quickgelu`` (same tensors, different activation). Random weights are saved as
.safetensors with and without evidence (metadata, sidecar, file name) and loaded through the
ComfyUI model list and through ``load_clip(name, pretrained=file, activation=...)``; the loaded text
tower must hold the right activation modules and give the features open_clip gives with it.
"""

from __future__ import annotations

import inspect
import json
import sys
import types

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU
from safetensors.torch import save_file

from pez_nodes.core import ModelLoadError, encode_token_ids, load_clip
from pez_nodes.core.clip.architecture import identify_architecture

PLAIN, QUICK, SOLO = "pez-test-tiny", "pez-test-tiny-quickgelu", "pez-test-solo"
PROMPTS = ["a small red circle on grass", "night", "a photo of a large white star"]


def _cfg(quick: bool, width: int = 32) -> dict:
    cfg = {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 48, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": width, "heads": 2, "layers": 2},
    }
    return {**cfg, "quick_gelu": True} if quick else cfg


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    """Register the twin configs (and a config with no twin) with open_clip, as its own configs are."""
    d = tmp_path_factory.mktemp("configs")
    for name, cfg in ((PLAIN, _cfg(False)), (QUICK, _cfg(True)), (SOLO, _cfg(False, width=40))):
        (d / f"{name}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(d / f"{name}.json")
    return d


def _state(name: str, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = open_clip.create_model(name)
    with torch.no_grad():  # larger MLP inputs than at init, so the two activations differ clearly
        for block in model.transformer.resblocks:
            block.mlp.c_fc.weight.mul_(8)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def weights(configs):
    return _state(PLAIN)


def _save(path, state, metadata=None):
    save_file(state, str(path), metadata=metadata)
    return path


def _reference(name: str, state: dict) -> torch.Tensor:
    """open_clip's own text features for ``state`` in the config ``name``."""
    model = open_clip.create_model(name).eval()
    model.load_state_dict(state)
    with torch.no_grad():
        return model.encode_text(open_clip.tokenize(PROMPTS)).float()


def _assert_runs(backbone, activation: str, state: dict) -> None:
    """The text tower holds ``activation``'s modules and gives open_clip's features with it, not the other's."""
    quick = [m for m in backbone.tower.transformer.modules() if isinstance(m, QuickGELU)]
    gelu = [m for m in backbone.tower.transformer.modules() if isinstance(m, torch.nn.GELU)]
    assert (bool(quick), bool(gelu)) == ((True, False) if activation == "quickgelu" else (False, True))
    assert backbone.activation == activation
    ours = encode_token_ids(backbone, [backbone.tokenize(t) for t in PROMPTS])
    same, other = (QUICK, PLAIN) if activation == "quickgelu" else (PLAIN, QUICK)
    assert (ours - _reference(same, state)).abs().max().item() <= 1e-5
    assert (ours - _reference(other, state)).abs().max().item() > 1e-4


@pytest.fixture
def comfy_folder(tmp_path, monkeypatch):
    """A stand-in for ComfyUI's ``folder_paths`` with ``models/open_clip`` = ``tmp_path / "open_clip"``."""
    folder = tmp_path / "open_clip"
    folder.mkdir()
    fp = types.ModuleType("folder_paths")
    fp.folder_names_and_paths = {"open_clip": ([str(folder)], {".safetensors"})}
    fp.get_folder_paths = lambda name: [str(folder)]
    fp.get_full_path = lambda name, file: str(folder / file) if (folder / file).is_file() else None
    fp.get_filename_list = lambda name: sorted(p.name for p in folder.iterdir())
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    return folder


def _load_from_comfy(choice: str):
    from pez_nodes.comfy import node_bodies

    return node_bodies.load_model(choice, "cpu")


# --- evidence, file by file ---------------------------------------------------------------------
def test_no_evidence_is_gelu_with_a_loud_note(comfy_folder, weights):
    _save(comfy_folder / "clip.safetensors", weights)
    found = identify_architecture(comfy_folder / "clip.safetensors")
    assert found.name == PLAIN and found.activation == "gelu" and "no evidence" in found.reason
    with pytest.warns(UserWarning, match="activation=quickgelu"):
        backbone = _load_from_comfy("clip.safetensors")
    _assert_runs(backbone, "gelu", weights)
    assert any("no evidence" in n and "activation=quickgelu" in n and "SD 1.5" in n for n in backbone.notes)


@pytest.mark.parametrize("metadata", [{"quick_gelu": "true"}, {"activation": "QuickGELU"}, {"act_layer": "quick_gelu"},
                                      {"model_name": "ViT-L-14-quickgelu"}, {"pretrained": "openai"}])
def test_metadata_says_quickgelu(comfy_folder, weights, metadata):
    _save(comfy_folder / "clip.safetensors", weights, metadata)
    found = identify_architecture(comfy_folder / "clip.safetensors")
    assert (found.name, found.activation) == (QUICK, "quickgelu") and "metadata" in found.reason
    backbone = _load_from_comfy("clip.safetensors")
    _assert_runs(backbone, "quickgelu", weights)
    assert backbone.notes == [f"activation QuickGELU: {found.reason}"]


def test_metadata_can_say_gelu_and_then_no_note_warns(comfy_folder, weights, recwarn):
    _save(comfy_folder / "clip.safetensors", weights, {"quick_gelu": "false"})
    backbone = _load_from_comfy("clip.safetensors")
    _assert_runs(backbone, "gelu", weights)
    assert "metadata" in backbone.notes[0] and not [w for w in recwarn if "activation" in str(w.message)]


def test_file_name_with_openai_means_quickgelu(comfy_folder, weights):
    _save(comfy_folder / "sd15-clip-openai.safetensors", weights)
    backbone = _load_from_comfy("sd15-clip-openai.safetensors")
    _assert_runs(backbone, "quickgelu", weights)
    assert "file name" in backbone.notes[0]


@pytest.mark.parametrize("sidecar", [{"model_name": QUICK}, {"quick_gelu": True}, {"model_cfg": _cfg(True)}])
def test_sidecar_says_quickgelu(comfy_folder, weights, sidecar):
    _save(comfy_folder / "clip.safetensors", weights)
    (comfy_folder / "clip.json").write_text(json.dumps(sidecar))
    found = identify_architecture(comfy_folder / "clip.safetensors")
    assert found.activation == "quickgelu" and "clip.json" in found.reason
    _assert_runs(_load_from_comfy("clip.safetensors"), "quickgelu", weights)


def test_sidecar_wins_over_metadata_and_name(comfy_folder, weights):
    _save(comfy_folder / "openai.safetensors", weights, {"quick_gelu": "true"})
    (comfy_folder / "openai.json").write_text(json.dumps({"model_cfg": _cfg(False)}))
    assert identify_architecture(comfy_folder / "openai.safetensors").activation == "gelu"
    _assert_runs(_load_from_comfy("openai.safetensors"), "gelu", weights)


# --- load_clip(name, pretrained=file, activation=...) ---------------------------------------------
@pytest.mark.parametrize("activation", ["gelu", "quickgelu"])
@pytest.mark.parametrize("name", [PLAIN, QUICK])
def test_explicit_choice_wins_over_name_and_file(tmp_path, weights, name, activation):
    path = _save(tmp_path / "openai-quickgelu.safetensors", weights, {"activation": "quickgelu"})
    backbone = load_clip(name, pretrained=str(path), activation=activation)
    _assert_runs(backbone, activation, weights)
    assert backbone.notes == [f"activation {'QuickGELU' if activation == 'quickgelu' else 'GELU'}: "
                              f"you chose activation={activation}"]


def test_explicit_quickgelu_without_a_twin_config(tmp_path, configs):
    state = _state(SOLO)
    path = _save(tmp_path / "solo.safetensors", state)
    backbone = load_clip(SOLO, pretrained=str(path), activation="quickgelu")
    assert backbone.activation == "quickgelu" and backbone.name == SOLO
    model = open_clip.create_model(SOLO, force_quick_gelu=True).eval()
    model.load_state_dict(state)
    with torch.no_grad():
        ref = model.encode_text(open_clip.tokenize(PROMPTS)).float()
    assert (encode_token_ids(backbone, [backbone.tokenize(t) for t in PROMPTS]) - ref).abs().max() <= 1e-5


def test_a_quickgelu_name_is_evidence_and_disagreement_is_noted(tmp_path, weights):
    path = _save(tmp_path / "clip.safetensors", weights, {"quick_gelu": "false"})
    backbone = load_clip(QUICK, pretrained=str(path))
    _assert_runs(backbone, "quickgelu", weights)
    assert "uses QuickGELU" in backbone.notes[0] and "although the file says GELU" in backbone.notes[0]


def test_plain_name_reads_the_file_evidence(tmp_path, weights):
    path = _save(tmp_path / "clip.safetensors", weights, {"quick_gelu": "1"})
    _assert_runs(load_clip(PLAIN, pretrained=str(path)), "quickgelu", weights)


def test_folder_config_decides_unless_the_caller_does(tmp_path, weights):
    folder = tmp_path / "m"
    folder.mkdir()
    _save(folder / "open_clip_model.safetensors", weights)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": _cfg(True)}))
    backbone = load_clip(str(folder))
    _assert_runs(backbone, "quickgelu", weights)
    assert backbone.activation == "quickgelu" and backbone.notes == []  # the model's own config: no decision
    _assert_runs(load_clip(str(folder), activation="gelu"), "gelu", weights)


def test_broken_files_are_one_clear_error(tmp_path, configs):
    path = tmp_path / "clip.safetensors"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_clip(PLAIN, pretrained=str(path))
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="sidecar clip.json is not valid JSON"):
        load_clip(PLAIN, pretrained=str(path))


def test_unknown_activation_is_one_clear_error():
    with pytest.raises(ValueError, match="activation 'relu' is not one of auto, gelu, quickgelu"):
        load_clip("toy", activation="relu")


# --- pretrained tags ------------------------------------------------------------------------------
def test_openai_tags_are_quickgelu_without_downloading():
    """open_clip records that its 'openai' ViT-L-14 was trained with QuickGELU, but (3.x) builds the plain
    name with GELU and only warns; the loader asks for QuickGELU and says why."""
    from pez_nodes.core.clip.loading import _plan_tag

    plan = _plan_tag("ViT-L-14", "openai", None)
    assert plan.activation == "quickgelu" and "'openai'" in plan.reason
    assert plan.create_kwargs == {"force_quick_gelu": True}
    assert _plan_tag("ViT-L-14", "laion2b_s32b_b82k", None).activation == "gelu"
    assert _plan_tag("ViT-B-32-quickgelu", "laion400m_e32", None).activation == "quickgelu"


@pytest.mark.skipif("'file' in cfg" not in inspect.getsource(open_clip.pretrained.download_pretrained),
                    reason="this open_clip cannot register a local file as a pretrained tag")
def test_a_tag_trained_with_quickgelu_loads_as_quickgelu(tmp_path, weights, monkeypatch):
    path = _save(tmp_path / "w.safetensors", weights)
    tag = {"file": str(path), "quick_gelu": True, "mean": open_clip.OPENAI_DATASET_MEAN,
           "std": open_clip.OPENAI_DATASET_STD}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, PLAIN, {"like_openai": tag})
    with pytest.warns(UserWarning, match="QuickGELU mismatch"):  # open_clip alone builds GELU here
        plain = open_clip.create_model(PLAIN, pretrained="like_openai")
    assert not any(isinstance(m, QuickGELU) for m in plain.modules())
    backbone = load_clip(PLAIN, pretrained="like_openai")
    _assert_runs(backbone, "quickgelu", weights)
    assert "'like_openai' was trained with QuickGELU" in backbone.notes[0]


def test_unfulfillable_choice_is_refused_not_ignored(tmp_path, weights):
    """Where open_clip cannot build the chosen activation (2.x's OpenAI loader is always QuickGELU, and 2.x
    can only force QuickGELU), the built model is checked and the load refused, never silently kept."""
    from pez_nodes.core.clip.loading import _note_activation, _Plan

    built = load_clip(PLAIN, pretrained=str(_save(tmp_path / "w.safetensors", weights)), activation="gelu")
    built.notes.clear()
    plan = _Plan(PLAIN, f"{PLAIN}/openai", activation="quickgelu", reason="you chose activation=quickgelu")
    with pytest.raises(ModelLoadError, match="was built with GELU although you chose activation=quickgelu"):
        _note_activation(built, plan)
