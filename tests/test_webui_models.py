"""The webui side's CLIP list and resolution (no webui needed): what the PEZ tab and the routes offer."""

from __future__ import annotations

import shutil

from pez_nodes.core import TOY_DIR, load_clip
from pez_nodes.model_choices import PRESETS, TOY
from pez_nodes.webui import models, tab
from pez_nodes.webui.checkpoint_clip import CHOICE as CHECKPOINT


def test_listed_clips_are_the_toy_the_folders_files_and_the_presets(tmp_path):
    folder = models.models_folder(tmp_path)
    assert models.choices(folder) == [TOY, CHECKPOINT, *PRESETS]  # no folder yet: nothing listed, no error
    shutil.copytree(TOY_DIR, folder / "mine")
    shutil.copy(TOY_DIR / "open_clip_model.safetensors", folder / "bare.safetensors")
    (folder / "notes.txt").write_text("not a model")
    assert models.choices(folder) == [TOY, CHECKPOINT, "mine/", "bare.safetensors", *PRESETS]
    assert models.resolve("mine/", None, folder) == (str(folder / "mine"), None)
    assert models.resolve(TOY, None, folder) == ("toy", None) == models.resolve("", None, folder)
    assert models.resolve("ViT-L-14 / openai (SD 1.5, downloads)") == ("ViT-L-14", "openai")
    assert models.resolve("ViT-B-32", "laion2b_s34b_b79k", folder) == ("ViT-B-32", "laion2b_s34b_b79k")  # typed in
    source, weights = models.resolve("mine/", None, folder)
    mine, toy = load_clip(source, weights), load_clip("toy")
    assert mine.image_size == toy.image_size and mine.token_embedding.equal(toy.token_embedding)


def test_tab_request_matches_the_routes_fields():
    """The tab's controls are PEZConfig fields, and empty text controls fall back to the core's defaults."""
    values = [tab.DEFAULTS[name] if control not in ("text", "lines") else "" for name, _, control, _ in tab.CONTROLS]
    body = tab.request_body("concat", TOY, "", "a red circle\n\n on grass \n", *values)
    assert body["texts"] == ["a red circle", "on grass"] and body["model"] == TOY
    assert not {"template", "blocklist", "allowlist", "bank", "pretrained"} & set(body)
    from pez_nodes.webui.routes import config_of

    body.pop("texts"), body.pop("model")
    assert config_of(body) == config_of({})  # the tab's defaults are the core's
    files = tab.request_body("invert", "x", " tag ", ["/a.png", {"path": "/b.png"}], *values)
    assert files["images"] == ["/a.png", "/b.png"] and files["pretrained"] == "tag"
