"""PEZ on the webui's own loaded checkpoint: real Forge and AUTOMATIC1111 loading full-size SD checkpoints.

Each webui is started headless with ``--ckpt`` on a full-size checkpoint written by ``webui_checkpoints``
(UNet/VAE zeros, random text encoders), a CLIP Vision file in its ``models/clip_vision`` and the probe
extension ``tests/webui_probe`` (the webui's own tokenizer, modules and conditioning next to PEZ's copy).
PEZ's features must equal the webui's within 1e-4; ``/pez/v1/*`` learns prompts on it, and every wrong
pairing is one 400 line. ``FORGE_DIR`` / ``A1111_DIR`` as in ``test_webui_host.py``; skipped when unset.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from pez_nodes import toyworld as tw
from pez_nodes.webui.routes import for_webui_prompt
from webui_checkpoints import write_hf_clip_l_cache, write_in_subprocess
from webui_server import call, running_webui

# (with these random weights Forge's fp16 CPU conditioning overflows to NaN in the padding of some prompts —
# "8k" does it — and its emphasis step spreads that to every position; these three stay finite)
TEXTS = ["a photo of a red fox in the snow", "cat, oil painting", "x"]
TOL = dict(rtol=1e-4, atol=1e-4)


def _vision_file(path: Path, width: int, layers: int, heads: int, dim: int, act: str, text_width: int | None, seed: int):
    """A CLIP Vision file in the Hugging Face layout (random weights, fp16); with ``text_width``, a whole-CLIPModel
    file's ``text_projection.weight`` too. Returns (its config, its path)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                              num_attention_heads=heads, image_size=224, patch_size=14, projection_dim=dim,
                              hidden_act=act, layer_norm_eps=1e-5)
    state = {k: v.half() for k, v in CLIPVisionModelWithProjection(config).state_dict().items()
             if not k.endswith("position_ids")}
    if text_width:
        state["text_projection.weight"] = (torch.randn(dim, text_width) * text_width ** -0.5).half()
    save_file(state, str(path))
    return config, path


def _weights(path: Path) -> dict:
    return {k: v.float() for k, v in load_file(str(path)).items()}


def _reference_image_features(config, path, image) -> torch.Tensor:
    """CLIP's image feature of a 224×224 image (no resize or crop needed), computed here by transformers."""
    from transformers import CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection(config).eval()
    model.load_state_dict({k: v for k, v in _weights(path).items() if k != "text_projection.weight"}, strict=False)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    mean, std = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
    x = torch.from_numpy(((pixels - mean) / std).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return model(pixel_values=x).image_embeds[0]


@pytest.fixture(scope="module", params=["forge", "a1111"])
def sd_webui(request, tmp_path_factory):
    """A webui whose checkpoints folder holds SD 1.5 / 2.x / SDXL files, started on the SD 1.5 one, with four
    CLIP Vision files and the probe: (base URL, webui name, {kind: checkpoint path}, {vision: its choice name},
    {vision: (config, path)}, log)."""
    where = os.environ.get(f"{request.param.upper()}_DIR")
    if not where:
        pytest.skip(f"{request.param.upper()}_DIR is not set: no {request.param} to load a checkpoint "
                    f"(docs/testing.md says how to set one up)")
    folder = Path(where)
    if not os.environ.get("FORGE_DIR"):
        pytest.skip("FORGE_DIR is not set: the checkpoints are written from Forge's diffusers configs")
    forge = Path(os.environ["FORGE_DIR"])
    tag = f"pez_test_{os.getpid()}"
    ckpts = folder / "models" / "Stable-diffusion" / tag
    visions = folder / "models" / "clip_vision" / tag
    tmp = tmp_path_factory.mktemp(f"{request.param}_ckpt")
    try:
        ckpts.mkdir(parents=True, exist_ok=True)
        visions.mkdir(parents=True, exist_ok=True)
        # all three written before the webui starts (sparse files: SDXL's 7 GB take 1.6 GB of disk)
        files = {kind: write_in_subprocess(kind, ckpts / f"{kind}.safetensors", forge, seed)
                 for kind, seed in (("sd15", 0), ("sd2", 10), ("sdxl", 20))}
        # a second SD 1.5 checkpoint (other text encoder weights): AUTOMATIC1111 loads it into the same model object
        files["sd15_b"] = write_in_subprocess("sd15", ckpts / "sd15_b.safetensors", forge, 30)
        vision = {  # (config, path): whole OpenAI ViT-L/14 (it lends CLIP-L its text projection), the same
            # vision-only, a small 1024-wide one (ViT-H's features), a small whole 768-wide one
            "vitl": _vision_file(visions / "vitl_whole.safetensors", 1024, 24, 16, 768, "quick_gelu", 768, 1),
            "vitl_only": _vision_file(visions / "vitl_vision_only.safetensors", 1024, 2, 16, 768, "quick_gelu", None, 2),
            "h_small": _vision_file(visions / "h_small.safetensors", 256, 2, 4, 1024, "gelu", None, 3),
            "vitl_small": _vision_file(visions / "vitl_small.safetensors", 256, 2, 4, 768, "gelu", 768, 5),
        }
        log = tmp / "webui.log"
        # AUTOMATIC1111 builds CLIP-L from openai/clip-vit-large-patch14's config and tokenizer in the HF cache
        env = {"HF_HOME": str(write_hf_clip_l_cache(tmp / "hf")), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        # Forge: the UNet (never run here) stored in fp8 — SDXL's is 10 GB in fp32 on a CPU, 2.6 GB so
        flags = ["--ckpt", str(files["sd15"])] + (["--unet-in-fp8-e4m3fn"] if request.param == "forge" else [])
        with running_webui(request.param, folder, log, flags, env, start_s=300, probe=True) as base:
            names = {k: f"{tag}/{path.name}" for k, (_, path) in vision.items()}  # as models/clip_vision lists them
            yield base, request.param, files, names, vision, log
    finally:
        shutil.rmtree(ckpts, ignore_errors=True)
        shutil.rmtree(visions, ignore_errors=True)


def _png(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _close(a, b) -> bool:
    return torch.allclose(torch.tensor(a), torch.tensor(b), **TOL)


def test_pez_reads_the_loaded_sd15_text_encoder_exactly_as_the_webui_encodes(sd_webui):
    base, name, _, names, vision, log = sd_webui
    image = tw.render(tw.Scene("star", "blue", "small", "night"), 224, 0)
    syntax = ["a (red) [fox] \\ x: 1.2", "(masterpiece:1.3) cat", "[a:b:0.5]"]  # CLIP tokens can be all of these
    status, out = call(base, "/pez-probe/v1/features", {"texts": TEXTS, "clip_vision": names["vitl"],
                                                         "image": _png(image), "syntax": syntax}, timeout=600)
    assert status == 200, (out, log.read_text()[-3000:])
    # escaped, the webui reads a learned prompt as plain text: no prompt editing, no emphasis
    assert out["scheduled"] == [[[10, for_webui_prompt(t)]] for t in syntax]
    assert out["parsed"] == [[[t, 1.0]] for t in syntax]
    (tower,) = out["towers"]
    assert tower["name"] == "clip_l" and "sd15" in out["name"], out["name"]
    # device "auto" (the default) is the webui's own device, read from the webui itself
    assert out["pez_sees"] == out["webui_device"] == out["device"], out
    assert tower["pez_ids"] == tower["webui_ids"]  # PEZ tokenizes as the webui does
    config, path = vision["vitl"]
    projection = _weights(path)["text_projection.weight"]
    for pez, pooled, cond in zip(tower["pez"], tower["webui_pooled"], tower["webui_cond_eot"]):
        # the conditioning the webui hands its UNet, at the end token, is CLIP-L's pooled output: PEZ's feature is
        # exactly it, projected (the module called directly agrees to its storage precision: Forge keeps fp16)
        assert torch.allclose(torch.tensor(pooled), torch.tensor(cond), atol=2e-2, rtol=1e-2)
        assert _close(pez, (torch.tensor(cond) @ projection.T).tolist())
    reference = _reference_image_features(config, path, image)
    assert torch.allclose(torch.tensor(tower["pez_image"]), reference, **TOL)


def test_the_routes_learn_on_the_webuis_checkpoint_and_mismatches_are_one_line(sd_webui):
    base, _, _, names, _, _ = sd_webui
    image = _png(tw.render(tw.Scene("ring", "white", "small", "sand"), 96, 0))
    status, out = call(base, "/pez/v1/invert", {"model": "webui", "clip_vision": names["vitl"], "images": [image],
                                                "prompt_len": 4, "steps": 8})
    assert status == 200 and out["prompt"] and out["steps"] == 8 and "clip_l" in out["model"], out
    status, out = call(base, "/pez/v1/distill", {"model": "webui", "text": "a red fox in the snow", "prompt_len": 4,
                                                 "steps": 8})
    assert status == 200 and out["prompt"] and any("pooled space" in n for n in out["notes"]), out
    for body, message in [
        ({"clip_vision": names["vitl_only"]}, "has no text_projection"),
        ({"clip_vision": names["h_small"]}, "does not match"),
        ({"clip_vision": "missing.safetensors"}, "is not in"),
        ({}, "has no image encoder"),
    ]:
        status, out = call(base, "/pez/v1/invert", {"model": "webui", "images": [image], "steps": 2, **body})
        assert status == 400 and message in out["error"] and "\n" not in out["error"], (body, out)


def test_switching_between_two_sd15_checkpoints_switches_pezs_copy(sd_webui):
    """SD 1.5 checkpoint A → B (same architecture: AUTOMATIC1111 reuses the model object and sets no filename):
    PEZ's cached copy must follow to B's text encoder, and back to A's (issue 23: it kept A's)."""
    base, _, files, _, _, log = sd_webui
    tag = files["sd15"].parent.name
    titles = {m["title"].split(" ")[0]: m["title"] for m in call(base, "/sdapi/v1/sd-models")[1]}
    features = {}
    for name in ("sd15", "sd15_b", "sd15"):
        assert call(base, "/sdapi/v1/options", {"sd_model_checkpoint": titles[f"{tag}/{name}.safetensors"]})[0] == 200
        status, out = call(base, "/pez-probe/v1/features", {"texts": TEXTS[:2]}, timeout=600)
        assert status == 200, (out, log.read_text()[-2000:])
        (tower,) = out["towers"]
        for pez, cond in zip(tower["pez"], tower["webui_cond_eot"]):  # no projection: PEZ's is the pooled output
            assert torch.allclose(torch.tensor(pez), torch.tensor(cond), atol=2e-2, rtol=1e-2), (name, out["name"])
        features.setdefault(name, []).append(torch.tensor(tower["pez"]))
    assert not torch.allclose(features["sd15"][0], features["sd15_b"][0], atol=1e-2)
    assert torch.allclose(features["sd15"][0], features["sd15"][1], atol=1e-5)


def test_sd2_and_sdxl_checkpoints_one_prompt_for_both_sdxl_encoders(sd_webui):
    """Switch the webui to SD 2.x, then SDXL (``/sdapi/v1/options``, as its checkpoint menu does): PEZ follows the
    loaded model; ViT-H and bigG are read with their projections (bigG's equals the pooled vector SDXL conditions
    on); on SDXL one prompt is learned for CLIP-L and bigG together, each scored with its own CLIP Vision."""
    base, _, files, names, vision, log = sd_webui
    folder = files["sd15"].parent
    titles = {m["title"].split(" ")[0]: m["title"] for m in call(base, "/sdapi/v1/sd-models")[1]}
    tag = folder.name
    _vision_file(folder.parents[1] / "clip_vision" / tag / "g_small.safetensors", 256, 2, 4, 1280, "gelu", None, 4)

    assert call(base, "/sdapi/v1/options", {"sd_model_checkpoint": titles[f"{tag}/sd2.safetensors"]})[0] == 200
    status, out = call(base, "/pez-probe/v1/features", {"texts": TEXTS}, timeout=600)
    assert status == 200 and [t["name"] for t in out["towers"]] == ["clip_h"], (out, log.read_text()[-2000:])
    (h,) = out["towers"]
    assert h["pez_ids"] == h["webui_ids"]
    assert all(_close(a, b) for a, b in zip(h["pez"], h["webui_projected"]))

    assert call(base, "/sdapi/v1/options", {"sd_model_checkpoint": titles[f"{tag}/sdxl.safetensors"]})[0] == 200
    visions = {"clip_vision": names["vitl_small"], "clip_vision_2": f"{tag}/g_small.safetensors"}  # small towers:
    # SDXL in fp32 on a CPU is ~14 GB in the webui; the probe and the route below share one PEZ copy of it
    status, out = call(base, "/pez-probe/v1/features", {"texts": TEXTS, **visions}, timeout=900)
    assert status == 200 and [t["name"] for t in out["towers"]] == ["clip_l", "clip_g"], (out, log.read_text()[-2000:])
    l_tower, g_tower = out["towers"]
    assert l_tower["pez_ids"] == l_tower["webui_ids"] == g_tower["webui_ids"]
    lent = _weights(vision["vitl_small"][1])["text_projection.weight"]  # CLIP-L's projection, from the vision file
    assert all(_close(a, (torch.tensor(b) @ lent.T).tolist()) for a, b in zip(l_tower["pez"], l_tower["webui_pooled"]))
    assert all(_close(a, b) for a, b in zip(g_tower["pez"], g_tower["webui_projected"]))
    assert all(_close(a, b) for a, b in zip(g_tower["pez"], out["webui_vector_g"]))  # SDXL's own pooled vector

    image = _png(tw.render(tw.Scene("star", "blue", "small", "night"), 96, 0))
    body = {"model": "webui", **visions, "images": [image], "prompt_len": 4, "steps": 6}
    status, out = call(base, "/pez/v1/invert", body, timeout=900)
    assert status == 200 and out["prompt"] and "clip_l + clip_g" in out["model"], out
    assert not any("no matching image encoder" in n for n in out["notes"]), out["notes"]  # both towers score images
