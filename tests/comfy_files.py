"""Test helper: full-size CLIP files with random weights, laid out as ComfyUI users have them.

No pretrained weights can be downloaded here, so each file is a randomly initialised open_clip model
of the real architecture, stored in fp16 like the files users download. One open_clip file loads
through both ComfyUI's CLIP loader (its text half) and its CLIP Vision loader (its ``visual.*`` half).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from hf_layout import hf_text_state


def _save(state: dict, path: Path) -> Path:
    save_file({k: v.detach().half().contiguous() for k, v in state.items()}, str(path))
    return path


def write_open_clip(name: str, path: Path, seed: int) -> tuple[Path, torch.nn.Module]:
    """An open_clip model (``ViT-L-14-quickgelu``, ``ViT-H-14``) with random weights, text and vision, fp16."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None).eval()
    return _save(model.state_dict(), path), model


def write_sd15_text_encoder(model: torch.nn.Module, path: Path) -> Path:
    """``model``'s text half as an SD 1.5 checkpoint holds CLIP-L: Hugging Face keys, no ``text_projection``."""
    return _save(hf_text_state(model, with_projection=False), path)


def write_bigg_text_encoder(path: Path, seed: int) -> Path:
    """The text tower of OpenCLIP ViT-bigG/14 (SDXL's clip_g: 1280 wide, 32 layers) with random weights."""
    from open_clip.transformer import TextTransformer

    torch.manual_seed(seed)
    tower = TextTransformer(width=1280, heads=20, layers=32, output_dim=1280)
    return _save(tower.state_dict(), path)


def write_t5xxl_stub(path: Path) -> Path:
    """A T5-XXL text-encoder file as ComfyUI recognises one (its detection reads the last block's ``wi_1`` width),
    holding only that weight and the final norm (84 MB instead of 9.5 GB): DualCLIPLoader / TripleCLIPLoader
    build Flux's and SD3's real CLIP classes from it, T5's other weights left unloaded. PEZ never reads T5."""
    state = {"encoder.block.23.layer.1.DenseReluDense.wi_1.weight": torch.zeros(10240, 4096),
             "encoder.final_layer_norm.weight": torch.ones(4096)}
    return _save(state, path)


def small_bigg_matching_vision(comfy_dir: str, tmp_dir: Path, seed: int):
    """A ComfyUI ``ClipVisionModel`` whose image features are 1280 wide like bigG's vision tower, with 2 small
    layers instead of 48 wide ones (the real one is 3.7 GB): built by ComfyUI's own class from a config."""
    import comfy.clip_vision
    from open_clip.transformer import VisionTransformer

    config = json.loads((Path(comfy_dir) / "comfy" / "clip_vision_config_g.json").read_text())
    config.update(hidden_size=128, intermediate_size=512, num_attention_heads=4, num_hidden_layers=2)
    path = Path(tmp_dir) / f"small_g_vision_{seed}.json"
    path.write_text(json.dumps(config))
    torch.manual_seed(seed)
    vit = VisionTransformer(image_size=224, patch_size=14, width=128, layers=2, heads=4, mlp_ratio=4.0,
                            output_dim=config["projection_dim"])
    state = {f"visual.{k}": v.half() for k, v in vit.state_dict().items()}
    state = comfy.clip_vision.convert_to_transformers(state, "visual.")
    model = comfy.clip_vision.ClipVisionModel(str(path))
    missing, _ = model.load_sd(state)
    assert not missing, missing
    return model
