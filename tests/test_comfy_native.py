"""PEZ on the CLIP and CLIP Vision that ComfyUI itself loaded, checked against ComfyUI's own outputs.

Runs ComfyUI 0.3.64's real loaders and encoders in this process (``COMFYUI_DIR``; skipped with the reason
printed by ``pytest -rs`` when unset) on full-size files with random weights (``comfy_files``): CLIP-L in
the SD 1.5 layout, ViT-H (SD 2.x) text + vision, and SDXL's bigG text tower with a smaller vision tower of
bigG's 1280-wide features (the real one is 3.7 GB). Features must equal ComfyUI's within 1e-4.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from comfy_files import small_bigg_matching_vision
from pez_nodes.core import PEZConfig, distill, encode_token_ids, image_features, invert

COMFY = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFY, reason="COMFYUI_DIR is not set: no ComfyUI to load CLIP models with")
TEXTS = ["a photo of a red fox in the snow", "(masterpiece) cat, 8k: [oil] painting", "x", "salt &amp; pepper\\ ok"]
SPECIAL = {49406, 49407, 0}
TOL = dict(rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def cm():
    """ComfyUI's modules, imported on the CPU, with the pack's load recording installed as at registration."""
    sys.path.append(COMFY)
    try:
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
        import comfy.clip_vision
        import comfy.model_management
        import comfy.sd
        import folder_paths

        from pez_nodes.comfy import native_text

        native_text.record_loaded_projections()
        yield SimpleNamespace(sd=comfy.sd, clip_vision=comfy.clip_vision, folder_paths=folder_paths, comfy=comfy)
    finally:
        sys.path.remove(COMFY)


@pytest.fixture(scope="module")
def files(cm, comfy_model_files):
    cm.folder_paths.add_model_folder_path("clip_vision", str(comfy_model_files.dir))  # for text_projection choices
    return comfy_model_files


def _workflow_clip(clip, *visions, **options):
    from pez_nodes.comfy.workflow_clip import workflow_clip

    return workflow_clip(clip, *visions, **options)


def _comfy_ids(clip, text: str, key: str) -> list[int]:
    """The ids ComfyUI's CLIPTextEncode encodes for a prompt the PEZ nodes output (parentheses escaped)."""
    from pez_nodes.comfy.prompt_syntax import for_text_encode

    return [t for t, _ in clip.tokenize(for_text_encode(text))[key][0] if t not in SPECIAL]


def _comfy_pooled(clip, text: str) -> torch.Tensor:
    from pez_nodes.comfy.prompt_syntax import for_text_encode

    with torch.inference_mode():
        return clip.encode_from_tokens(clip.tokenize(for_text_encode(text)), return_pooled=True)[1].clone()


def _sub_pooled(clip, name: str, key: str, text: str, projected: bool) -> torch.Tensor:
    """One text encoder's pooled output as ComfyUI computes it, projected or not."""
    from pez_nodes.comfy.prompt_syntax import for_text_encode

    sub = getattr(clip.cond_stage_model, name)
    with torch.inference_mode():
        clip.load_model()
        sub.set_clip_options({"projected_pooled": projected})
        try:
            return sub.encode_token_weights(clip.tokenize(for_text_encode(text))[key])[1].clone()
        finally:
            sub.reset_clip_options()


def _ours(pez, text: str) -> torch.Tensor:
    return encode_token_ids(pez, [pez.tokenize(text)])


def _image(seed: int = 0) -> torch.Tensor:
    """A ComfyUI IMAGE batch of one, not square, not 224 px."""
    return torch.rand(1, 200, 300, 3, generator=torch.Generator().manual_seed(seed))


def test_sd15_text_encoder_equals_comfyuis_and_its_missing_projection_is_recorded(cm, files):
    from pez_nodes.comfy.native_text import text_parts

    clip = cm.sd.load_clip([files.sd15])
    assert [(p.name, p.projection) for p in text_parts(clip)] == [("clip_l", False)]
    pez = _workflow_clip(clip)
    assert any("clip_l has no text_projection" in n for n in pez.notes)
    for text in TEXTS:
        assert pez.tokenize(text) == _comfy_ids(clip, text, "l")
        torch.testing.assert_close(_ours(pez, text), _comfy_pooled(clip, text), **TOL)  # SD 1.5's pooled: unprojected


def test_fp32_storage_gives_the_same_features(cm, files):
    """ComfyUI keeps text encoders in fp16 by default; with fp32 storage (``--fp32-text-enc``) the copy is the same."""
    clip = cm.sd.load_clip([files.sd15], model_options={"dtype": torch.float32})
    assert clip.cond_stage_model.clip_l.transformer.text_projection.weight.dtype == torch.float32
    pez = _workflow_clip(clip)
    torch.testing.assert_close(_ours(pez, TEXTS[0]), _comfy_pooled(clip, TEXTS[0]), **TOL)
    result = distill(pez, "a red fox", PEZConfig(steps=2, prompt_len=2, restarts=1))
    assert result.text


def test_the_copy_keeps_no_comfyui_model_alive_and_outlives_it(cm, files):
    import gc
    import weakref

    clip = cm.sd.load_clip([files.sd15])
    pez = _workflow_clip(clip)
    model = weakref.ref(clip.cond_stage_model)
    del clip
    gc.collect()
    cm.comfy.model_management.cleanup_models_gc()
    gc.collect()
    assert model() is None  # ComfyUI can free the user's model: PEZ holds only its own copy
    assert distill(pez, "a red fox", PEZConfig(steps=2, prompt_len=2, restarts=1)).text


def test_a_checkpoint_loaded_text_encoder_records_its_projection_too(cm, files):
    """The checkpoint path (``CLIP.load_sd(full_model=True)``) is seen as well as CLIPLoader's."""
    import comfy.sd1_clip
    import comfy.supported_models_base
    from safetensors.torch import load_file

    from pez_nodes.comfy.native_text import text_parts

    state = {f"clip_l.transformer.{k}": v for k, v in load_file(files.sd15).items()}
    for with_projection in (False, True):
        if with_projection:
            state["clip_l.transformer.text_projection.weight"] = torch.eye(768, dtype=torch.float16)
        clip = cm.sd.CLIP(comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel))
        clip.load_sd(dict(state), full_model=True)
        assert text_parts(clip)[0].projection is with_projection


def test_sd15_with_vit_l_vision_needs_a_projection_and_then_matches_comfyui(cm, files):
    clip = cm.sd.load_clip([files.sd15])
    vision = cm.clip_vision.load(files.vit_l)
    with pytest.raises(ValueError, match=r"clip_l\) has no text_projection .* text_projection: OpenAI's clip-vit-large"):
        _workflow_clip(clip, vision)
    pez = _workflow_clip(clip, vision, text_projection="clip_vision/vit_l_14.safetensors")
    full = cm.sd.load_clip([files.vit_l])  # the same model with its projection, as ComfyUI loads it
    for text in TEXTS:
        torch.testing.assert_close(_ours(pez, text), _sub_pooled(full, "clip_l", "l", text, projected=True), **TOL)
    image = _image()
    for crop in ("center", "none"):
        pez = _workflow_clip(clip, vision, crop=crop, text_projection="clip_vision/vit_l_14.safetensors")
        with torch.inference_mode():
            expected = vision.encode_image(image, crop=crop == "center")["image_embeds"]
        torch.testing.assert_close(image_features(pez, [image[0]]), F.normalize(expected.clone(), dim=-1), **TOL)


def test_sd2_vit_h_pair_matches_comfyui_and_a_short_run_raises_the_similarity(cm, files):
    clip = cm.sd.load_clip([files.vit_h])
    vision = cm.clip_vision.load(files.vit_h)
    pez = _workflow_clip(clip, vision)
    assert [t.name for t in pez.towers] == ["clip_h"] and pez.notes == []
    for text in TEXTS[:2]:
        assert pez.tokenize(text) == _comfy_ids(clip, text, "h")
        torch.testing.assert_close(_ours(pez, text), _comfy_pooled(clip, text), **TOL)  # SD 2.x: projected
    image = _image(1)
    with torch.inference_mode():
        expected = vision.encode_image(image, crop=True)["image_embeds"]
    torch.testing.assert_close(image_features(pez, [image[0]]), F.normalize(expected.clone(), dim=-1), **TOL)
    result = invert(pez, [image[0]], PEZConfig(steps=8, prompt_len=4, restarts=1, seed=0))
    first_step_similarity = result.history[0][2]
    assert result.similarity > first_step_similarity
    assert result.similarity == pytest.approx(float(F.normalize(_comfy_pooled(clip, result.text), dim=-1)
                                                    @ F.normalize(expected, dim=-1).T), abs=1e-4)


def test_a_vision_model_of_another_clip_is_refused_naming_the_match(cm, files):
    clip = cm.sd.load_clip([files.sd15])
    with pytest.raises(ValueError, match=r"clip_vision is OpenCLIP ViT-H/14 \(1024-wide.*CLIP-L.*does not match.*"
                                         r"OpenAI's CLIP ViT-L/14"):
        _workflow_clip(clip, cm.clip_vision.load(files.vit_h), text_projection="clip_vision/vit_l_14.safetensors")


def test_sdxl_learns_one_prompt_for_both_text_encoders(cm, files, tmp_path):
    clip = cm.sd.load_clip([files.g, files.sd15])
    assert type(clip.cond_stage_model).__name__ == "SDXLClipModel"
    text_only = _workflow_clip(clip)
    l_tower, g_tower = (t.text for t in text_only.towers)
    for text in TEXTS[:2]:
        assert _comfy_ids(clip, text, "l") == _comfy_ids(clip, text, "g") == text_only.tokenize(text)
        torch.testing.assert_close(_ours(g_tower, text), _comfy_pooled(clip, text), **TOL)  # SDXL's pooled: bigG's
        torch.testing.assert_close(_ours(l_tower, text), _sub_pooled(clip, "clip_l", "l", text, projected=False), **TOL)

    g_vision = small_bigg_matching_vision(COMFY, tmp_path, seed=4)
    image = _image(2)
    config = PEZConfig(steps=4, prompt_len=4, restarts=1, seed=0)
    result = invert(_workflow_clip(clip, g_vision), [image[0]], config)
    assert any("clip_l has no matching image encoder: clip_g alone scores" in n for n in result.notes)
    assert _comfy_ids(clip, result.text, "l") == _comfy_ids(clip, result.text, "g") == result.token_ids
    with torch.inference_mode():
        g_image = g_vision.encode_image(image, crop=True)["image_embeds"].clone()
    cos_g = float(F.normalize(_comfy_pooled(clip, result.text), dim=-1) @ F.normalize(g_image, dim=-1).T)
    assert result.similarity == pytest.approx(cos_g, abs=1e-4)

    l_vision = cm.clip_vision.load(files.vit_l)
    both = _workflow_clip(clip, g_vision, l_vision, text_projection="clip_vision/vit_l_14.safetensors",
                          weight_clip_l=1.0, weight_clip_g=3.0)
    result = invert(both, [image[0]], config)
    assert not any("alone" in n for n in result.notes)
    from safetensors import safe_open

    with safe_open(files.vit_l, "pt") as f:
        projection = f.get_tensor("text_projection").float()  # open_clip's [width, out]
    with torch.inference_mode():
        l_image = l_vision.encode_image(image, crop=True)["image_embeds"].clone()
    l_text = _sub_pooled(clip, "clip_l", "l", result.text, projected=False) @ projection
    cos_l = float(F.normalize(l_text, dim=-1) @ F.normalize(l_image, dim=-1).T)
    cos_g = float(F.normalize(_comfy_pooled(clip, result.text), dim=-1) @ F.normalize(g_image, dim=-1).T)
    assert result.similarity == pytest.approx((1.0 * cos_l + 3.0 * cos_g) / 4.0, abs=1e-4)


def test_flux_and_sd3_clips_give_pez_their_clip_encoders_and_leave_t5_out(cm, files):
    """Flux (DualCLIPLoader type flux: CLIP-L + T5-XXL) and SD3 (TripleCLIPLoader: CLIP-L + bigG + T5-XXL), built by
    ComfyUI's own classes: PEZ learns for the CLIP towers (features equal ComfyUI's), T5 is left out with a note."""
    flux = cm.sd.load_clip([files.sd15, files.t5], clip_type=cm.sd.CLIPType.FLUX)
    sd3 = cm.sd.load_clip([files.sd15, files.g, files.t5], clip_type=cm.sd.CLIPType.SD3)
    for clip, towers in ((flux, ["clip_l"]), (sd3, ["clip_l", "clip_g"])):
        assert clip.cond_stage_model.t5xxl is not None
        pez = _workflow_clip(clip)
        assert [t.name for t in pez.towers] == towers
        assert any(n.startswith("t5xxl is not a CLIP text encoder") for n in pez.notes), pez.notes
        for text in TEXTS[:2]:
            for tower in pez.towers:
                key = tower.name[-1]
                assert _comfy_ids(clip, text, key) == pez.tokenize(text)
                projected = tower.text.tower.text_projection is not None  # bigG's is in its file; CLIP-L's is not
                torch.testing.assert_close(_ours(tower.text, text), _sub_pooled(clip, tower.name, key, text, projected),
                                           **TOL)
    result = distill(_workflow_clip(sd3), "a red fox in the snow", PEZConfig(steps=3, prompt_len=3, restarts=1))
    assert _comfy_ids(sd3, result.text, "l") == _comfy_ids(sd3, result.text, "g") == result.token_ids


def _scaled_fp8(source: str, path: Path) -> Path:
    """``source``'s CLIP text encoder in ComfyUI's scaled-fp8 format: each Linear weight as float8_e4m3fn divided by
    its own ``scale_weight`` (max |w| / 448), the rest as it was, and the ``scaled_fp8`` marker."""
    from safetensors.torch import load_file, save_file

    state = {}
    for key, value in load_file(source).items():
        if key.endswith(("proj.weight", "fc1.weight", "fc2.weight")) and value.dim() == 2:
            scale = value.float().abs().max() / 448.0
            state[key] = (value.float() / scale).to(torch.float8_e4m3fn)
            state[key[: -len("weight")] + "scale_weight"] = scale.reshape(())
        else:
            state[key] = value
    state["scaled_fp8"] = torch.tensor([], dtype=torch.float8_e4m3fn)
    save_file(state, str(path))
    return path


def test_a_scaled_fp8_text_encoder_is_copied_with_its_scales(cm, files, tmp_path):
    """ComfyUI's scaled-fp8 format (``scale_weight`` per Linear): PEZ's copy computes what ComfyUI's encoder computes
    (measured: within 1e-4 of its pooled output), and not what the unscaled fp8 numbers would give."""
    path = _scaled_fp8(files.sd15, tmp_path / "clip_l_fp8_scaled.safetensors")
    clip = cm.sd.load_clip([str(path)], model_options={"scaled_fp8": torch.float8_e4m3fn})
    layer = clip.cond_stage_model.clip_l.transformer.text_model.encoder.layers[0].mlp.fc1
    assert layer.weight.dtype == torch.float8_e4m3fn and float(layer.scale_weight) != 1.0  # ComfyUI's scaled layers
    pez = _workflow_clip(clip)
    plain = _workflow_clip(cm.sd.load_clip([files.sd15]))
    for text in TEXTS[:2]:
        ours = _ours(pez, text)
        torch.testing.assert_close(ours, _sub_pooled(clip, "clip_l", "l", text, projected=False), **TOL)
        assert F.cosine_similarity(ours, _ours(plain, text)).item() > 0.99  # fp8 rounding only


def _random_lora(clip, seed: int) -> dict:
    """A LoRA (kohya keys) on two of CLIP-L's layers, as LoraLoader reads it from a file."""
    import comfy.lora

    key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, {})
    g = torch.Generator().manual_seed(seed)
    lora = {}
    for target in ("encoder.layers.0.mlp.fc1.weight", "encoder.layers.5.self_attn.q_proj.weight"):
        name = next(k for k, v in key_map.items() if k.startswith("lora_te") and v.endswith("text_model." + target))
        out_dim, in_dim = (3072, 768) if "fc1" in target else (768, 768)
        lora[f"{name}.lora_up.weight"] = torch.randn(out_dim, 8, generator=g) * 0.05
        lora[f"{name}.lora_down.weight"] = torch.randn(8, in_dim, generator=g) * 0.05
        lora[f"{name}.alpha"] = torch.tensor(8.0)
    return lora


def test_a_lora_patched_clip_is_optimised_with_the_patched_weights_and_no_clip_changes(cm, files):
    clip = cm.sd.load_clip([files.sd15])
    _, patched = cm.sd.load_lora_for_models(None, clip, _random_lora(clip, 0), 0.0, 1.0)  # what LoraLoader does
    text = TEXTS[0]
    plain_before, patched_before = _comfy_pooled(clip, text), _comfy_pooled(patched, text)
    assert not torch.allclose(plain_before, patched_before, atol=1e-3)
    pez = _workflow_clip(patched)
    torch.testing.assert_close(_ours(pez, text), patched_before, **TOL)
    torch.testing.assert_close(_ours(_workflow_clip(clip), text), plain_before, **TOL)
    distill(pez, "a red fox", PEZConfig(steps=3, prompt_len=3, restarts=1))
    assert torch.equal(_comfy_pooled(clip, text), plain_before)  # the user's CLIPs encode exactly as before
    assert torch.equal(_comfy_pooled(patched, text), patched_before)


def _small_vision(cm, tmp_path: Path, config: str, **changes):
    """A ComfyUI vision model of another family (SigLIP, DINOv2), shrunk: only its kind matters here."""
    source = Path(COMFY) / "comfy" / config
    cfg = json.loads(source.read_text())
    cfg.update(changes)
    path = tmp_path / source.name
    path.write_text(json.dumps(cfg))
    return cm.clip_vision.ClipVisionModel(str(path))


def test_vision_models_that_are_not_clips_and_clips_without_a_clip_text_encoder_are_refused(cm, files, tmp_path):
    import comfy.supported_models_base
    import comfy.text_encoders.sa_t5

    clip = cm.sd.load_clip([files.sd15])
    siglip = _small_vision(cm, tmp_path, "clip_vision_siglip_384.json", num_hidden_layers=1)
    with pytest.raises(ValueError, match="clip_vision is a SigLIP model, not a CLIP.*SD 1.5 / SDXL CLIP-L →"):
        _workflow_clip(clip, siglip)
    dino = _small_vision(cm, tmp_path, "image_encoders/dino2_large.json", num_hidden_layers=1)
    with pytest.raises(ValueError, match="clip_vision_2 is a Dinov2Model, not a CLIP"):
        _workflow_clip(clip, None, dino)
    vision = cm.clip_vision.load(files.vit_l)
    with pytest.raises(ValueError, match="clip_vision and clip_vision_2 are both CLIP ViT-L/14 for clip_l"):
        _workflow_clip(clip, vision, vision, text_projection="clip_vision/vit_l_14.safetensors")
    t5_only = cm.sd.CLIP(comfy.supported_models_base.ClipTarget(comfy.text_encoders.sa_t5.SAT5Tokenizer,
                                                                  comfy.text_encoders.sa_t5.SAT5Model))
    with pytest.raises(ValueError, match=r"clip \(SAT5Model: t5base\) has no CLIP text encoder"):
        _workflow_clip(t5_only)
    with pytest.raises(ValueError, match="has no image encoder for its text encoder \\(clip_l\\).*clip_l → OpenAI's"):
        invert(_workflow_clip(clip), [_image()[0]], PEZConfig(steps=1, prompt_len=2))


def test_image_similarity_with_a_clip_vision_judge_is_clip_vision_encodes_cosine(cm, files):
    """PEZ Image Similarity's logic with a CLIP Vision model: the cosine of CLIPVisionEncode's image_embeds."""
    from pez_nodes.comfy.node_bodies import image_similarity

    vision = cm.clip_vision.load(files.vit_l)
    a, b = torch.cat([_image(3), _image(4)]), torch.cat([_image(5), _image(4)])
    mean, sims = image_similarity(a, b, clip_vision=vision, crop="none")
    with torch.inference_mode():
        fa = F.normalize(vision.encode_image(a, crop=False)["image_embeds"].clone(), dim=-1)
        fb = F.normalize(vision.encode_image(b, crop=False)["image_embeds"].clone(), dim=-1)
    expected = (fa * fb).sum(-1).tolist()
    assert sims == pytest.approx(expected, abs=1e-5) and sims[1] == pytest.approx(1.0, abs=1e-5)
    assert mean == pytest.approx(sum(expected) / 2, abs=1e-5)
    with pytest.raises(ValueError, match="connect exactly one judge"):
        image_similarity(a, b)


def test_pez_models_live_in_comfyuis_model_management(cm, files):
    """PEZ's own modules (PEZ Load CLIP's model, PEZ CLIP from Workflow's copy) are ComfyUI-managed: listed as loaded
    after ``load``, unloaded by ComfyUI's unload-all (what ``POST /free`` does), usable again after a reload; the
    user's CLIP encodes exactly as before."""
    from pez_nodes.comfy import managed
    from pez_nodes.core import encode_text, load_clip

    mm = cm.comfy.model_management
    toy = managed.manage(load_clip("toy"))
    before = encode_text(toy, "a red circle")
    managed.load(toy)
    assert toy.model in managed.loaded()
    mm.unload_all_models()
    assert toy.model not in managed.loaded()
    managed.load(toy)
    assert toy.model in managed.loaded() and torch.equal(encode_text(toy, "a red circle"), before)

    clip = cm.sd.load_clip([files.sd15])
    user_before = _comfy_pooled(clip, TEXTS[0])
    pez = managed.manage(_workflow_clip(clip))
    managed.load(pez)
    assert pez.towers[0].text.model in managed.loaded()
    distill(pez, "a red fox", PEZConfig(steps=2, prompt_len=2, restarts=1))
    mm.unload_all_models()
    assert not managed.loaded()
    assert torch.equal(_comfy_pooled(clip, TEXTS[0]), user_before)
