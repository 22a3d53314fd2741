"""The webui side's CLIP list and resolution (no webui needed): what the PEZ tab and the routes offer."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from pez_nodes.core import TOY_DIR, load_clip
from pez_nodes.model_choices import PRESETS, TOY
from pez_nodes.webui import model_choices, tab
from pez_nodes.webui.checkpoint_clip import CHOICE as CHECKPOINT


def test_listed_clips_are_the_toy_the_folders_files_and_the_presets(tmp_path):
    folder = model_choices.models_folder(tmp_path)
    assert model_choices.choices(folder) == [TOY, CHECKPOINT, *PRESETS]  # no folder yet: nothing listed, no error
    shutil.copytree(TOY_DIR, folder / "mine")
    shutil.copy(TOY_DIR / "open_clip_model.safetensors", folder / "bare.safetensors")
    (folder / "notes.txt").write_text("not a model")
    assert model_choices.choices(folder) == [TOY, CHECKPOINT, "mine/", "bare.safetensors", *PRESETS]
    assert model_choices.resolve("mine/", None, folder) == (str(folder / "mine"), None)
    assert model_choices.resolve(TOY, None, folder) == ("toy", None) == model_choices.resolve("", None, folder)
    assert model_choices.resolve("ViT-L-14 / openai (SD 1.5, downloads)") == ("ViT-L-14", "openai")
    assert model_choices.resolve("ViT-B-32", "laion2b_s34b_b79k", folder) == ("ViT-B-32", "laion2b_s34b_b79k")  # typed in
    source, weights = model_choices.resolve("mine/", None, folder)
    mine, toy = load_clip(source, weights), load_clip("toy")
    assert mine.image_size == toy.image_size and mine.token_embedding.equal(toy.token_embedding)


def test_listed_lms_are_the_bundled_ones_and_the_folders_with_a_config(tmp_path):
    """``models/LLM``: each folder holding a config.json (nested ones by their path), never a folder without
    one nor a file; a request's choice resolves only to the bundled LMs or those folders."""
    from pez_nodes.lm.load import BUNDLED

    folder = model_choices.lm_folder(tmp_path)
    assert folder == tmp_path / "LLM" and model_choices.lm_choices(folder) == ["toy_lm_small", "toy_lm_large"]
    for name in ("writer", "org/big", "empty", "weights_only"):
        (folder / name).mkdir(parents=True)
    (folder / "writer" / "config.json").write_text("{}")
    (folder / "org" / "big" / "config.json").write_text("{}")
    (folder / "weights_only" / "model.safetensors").write_bytes(b"")
    (folder / "config.json").write_text("{}")  # the folder itself is no choice
    (folder / "notes.txt").write_text("not a model")
    (folder / "loose.safetensors").write_bytes(b"")
    (folder / "dir_config" / "config.json").mkdir(parents=True)  # a folder named config.json is no config
    assert model_choices.lm_choices(folder) == ["toy_lm_small", "toy_lm_large", "org/big/", "writer/"]
    assert model_choices.resolve_lm("writer/", folder) == str(folder / "writer")
    assert model_choices.resolve_lm("toy_lm_large", folder) == "toy_lm_large" and "toy_lm_large" in BUNDLED
    for bad in ("writer", "empty/", "notes.txt", "../LLM/writer/", str(folder / "writer"), "", None, 3):
        with pytest.raises(ValueError, match=r"is not one of the language models this webui offers \('toy_lm_small', "
                                             r"'toy_lm_large', 'org/big/', 'writer/'\)") as e:
            model_choices.resolve_lm(bad, folder)
        assert "\n" not in str(e.value)
    assert model_choices.default_lm(TOY) == model_choices.default_lm("toy") == model_choices.default_lm(None) \
        == "toy_lm_small"
    assert model_choices.default_lm("mine/") is None and model_choices.default_lm(CHECKPOINT) is None


def test_tab_sends_the_lm_and_guideds_settings_only_with_guided():
    values = {name: tab.DEFAULTS[name] if control not in ("text", "lines") else ""
              for name, _, control, _ in tab.CONTROLS}
    assert [name for name, *_ in tab.CONTROLS][-len(tab.GUIDED):] == list(tab.GUIDED)  # built beside the LM choice
    plain = tab.request_body("distill", TOY, "", "a red circle", *values.values(), lm="toy_lm_large")
    assert not {"lm", *tab.GUIDED} & set(plain)
    values.update(method="guided", beams=4.0, instruction="Describe:", lm_weight=0.1)
    guided = tab.request_body("distill", TOY, "", "a red circle", *values.values(), lm="toy_lm_large")
    assert (guided["lm"], guided["beams"], guided["candidates"], guided["lm_weight"]) == ("toy_lm_large", 4, 10, 0.1)
    assert guided["instruction"] == "Describe:" and "start_text" not in guided  # empty: the core's default
    from pez_nodes.webui.limits import Limits
    from pez_nodes.webui.request import parse

    request = parse("distill", guided, Limits())
    assert (request.lm, request.config.method, request.config.beams) == ("toy_lm_large", "guided", 4)


def test_tab_request_matches_the_routes_fields(tmp_path):
    """The tab's controls are PEZConfig fields, and empty text controls fall back to the core's defaults; its
    uploads travel as their bytes (base64), as a request's images do."""
    values = [tab.DEFAULTS[name] if control not in ("text", "lines") else "" for name, _, control, _ in tab.CONTROLS]
    body = tab.request_body("concat", TOY, "", "a red circle\n\n on grass \n", *values)
    assert body["texts"] == ["a red circle", "on grass"] and body["model"] == TOY
    assert not {"template", "blocklist", "allowlist", "bank", "pretrained"} & set(body)
    from pez_nodes.webui.limits import Limits
    from pez_nodes.webui.request import parse

    body.pop("model")
    assert parse("concat", body, Limits()).config == parse("concat", {"texts": body["texts"]}, Limits()).config
    (tmp_path / "a.png").write_bytes(b"A")
    (tmp_path / "b.png").write_bytes(b"B")
    files = tab.request_body("invert", "x", " tag ", [str(tmp_path / "a.png"), {"path": str(tmp_path / "b.png")}],
                             *values)
    assert files["images"] == ["QQ==", "Qg=="] and files["pretrained"] == "tag"
    assert "clip_vision" not in files and "clip_vision_2" not in files  # "none" chosen: not sent
    mine = tab.request_body("invert", CHECKPOINT, "", [str(tmp_path / "a.png")], *values,
                            visions=("l.safetensors", "none"))
    assert (mine["model"], mine["clip_vision"], "clip_vision_2" in mine) == (CHECKPOINT, "l.safetensors", False)


def test_clip_vision_files_are_listed_read_and_refused_with_one_line(tmp_path):
    """``models/clip_vision``: listing, a Hugging Face CLIP vision file read from its shapes, and every bad file."""
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import save_file

    from pez_nodes.webui import clip_vision

    folder = clip_vision.folder(tmp_path)
    assert clip_vision.choices(folder) == [clip_vision.NONE] and clip_vision.load("none", folder) is None
    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                           num_attention_heads=1, image_size=56, patch_size=14, projection_dim=32,
                                           hidden_act="gelu")  # what the reader assumes for an unknown width
    model = transformers.CLIPVisionModelWithProjection(config).eval()
    (folder / "sub").mkdir(parents=True)
    save_file({k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")},
              str(folder / "sub" / "v.safetensors"))
    (folder / "broken.safetensors").write_bytes(b"not a safetensors file")
    shutil.copy(TOY_DIR / "open_clip_model.safetensors", folder / "open_clip_layout.safetensors")
    assert clip_vision.choices(folder) == ["none", "broken.safetensors", "open_clip_layout.safetensors", "sub/v.safetensors"]

    vision = clip_vision.load("sub/v.safetensors", folder)
    assert (vision.dim, vision.image_size, vision.text_projection) == (32, 56, None)
    assert vision.notes and "64-wide" in vision.notes[0]  # not a known CLIP: the guess is said
    image = Image.new("RGB", (56, 56), (200, 30, 90))
    pixels = (torch.tensor([200, 30, 90]) / 255 - torch.tensor(clip_vision.OPENAI_MEAN)) / torch.tensor(clip_vision.OPENAI_STD)
    pixels = pixels[:, None, None]  # a flat colour: CLIP's preprocessing by hand
    with torch.no_grad():
        want = model(pixel_values=pixels.expand(3, 56, 56)[None]).image_embeds
    assert torch.allclose(vision.encode([image]), want, atol=1e-5)

    for name, message in [("missing.safetensors", "is not in"), ("broken.safetensors", "could not be read"),
                          ("open_clip_layout.safetensors", "not a CLIP vision model in the Hugging Face layout")]:
        with pytest.raises(ValueError, match=message) as caught:
            clip_vision.load(name, folder)
        assert "\n" not in str(caught.value)


def test_learned_prompts_are_escaped_for_the_webuis_prompt_box():
    """Emphasis and prompt-editing characters are escaped (checked against the webuis' own parsers in
    test_webui_checkpoint.py); the plain text is kept beside it."""
    from pez_nodes.webui.routes import for_webui_prompt

    assert for_webui_prompt("a red fox") == "a red fox"
    assert for_webui_prompt("a (red) [fox] \\ x: 1.2") == "a \\(red\\) \\[fox\\] \\\\ x: 1.2"


def test_device_auto_is_the_webuis_and_a_bad_device_is_one_line_naming_the_field(monkeypatch):
    """Outside a webui ``auto`` is the CPU; inside, the webui's device (checked against real webuis in
    test_webui_checkpoint); one PEZ cannot run on (DirectML, XPU) falls back to the CPU with a note."""
    from pez_nodes.webui import device, routes

    assert device.webui_device() is None and device.pick("auto") == (torch.device("cpu"), ())
    assert device.pick("") == device.pick(None) == (torch.device("cpu"), ())
    assert device.pick("cpu") == (torch.device("cpu"), ())
    with pytest.raises(ValueError, match=r"^device 'gpu' cannot run PEZ; use auto, cpu, cuda, cuda:N or mps\.$"):
        device.pick("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^device 'cuda' was asked for but CUDA is not available on this machine; use cpu or auto\.$"):
            routes.run("distill", {"text": "a cat", "device": "cuda", "steps": 1})
    monkeypatch.setattr(device, "webui_device", lambda: torch.device("xpu"))
    where, notes = device.pick("auto")
    assert where == torch.device("cpu") and "xpu is not one PEZ runs on" in notes[0]
    monkeypatch.setattr(device, "webui_device", lambda: torch.device("cpu"))
    assert device.pick("auto") == (torch.device("cpu"), ())


def test_one_model_is_cached_per_device():
    """The toy loaded for ``auto`` (the CPU outside a webui) is the one ``cpu`` reuses; it lives there."""
    from pez_nodes.webui import routes

    first = routes.load_model({"model": "toy", "device": "auto"})
    assert routes.load_model({"model": "toy", "device": "cpu"}) is first and first.device == torch.device("cpu")
