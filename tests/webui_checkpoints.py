"""Test helper: full-size Stable Diffusion checkpoints (SD 1.5, SD 2.x, SDXL) with the layout users download.

No pretrained weights can be downloaded here, so each ``.safetensors`` is written from the real
architectures: the UNet and VAE shapes come from the diffusers configs the webui (Forge) ships, built on
the ``meta`` device and renamed to the original (LDM) layout by the webui's own converter
(``huggingface_guess``: ``unet_to_diffusers``, ``convert_vae_state_dict``); they are fp16 zeros (their values
play no part in PEZ), left as holes of a sparse file, so writing SDXL's 7 GB takes seconds and almost no
memory or disk. The text encoders are random, full-size open_clip towers (seeded), in the layouts the checkpoints
use: CLIP-L in the Hugging Face layout (``cond_stage_model.transformer.text_model.*`` / SDXL's
``conditioner.embedders.0.transformer.*``, no ``text_projection``), ViT-H and bigG in open_clip's
(``cond_stage_model.model.*`` / ``conditioner.embedders.1.model.*``, with ``text_projection``).
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import torch

from hf_layout import hf_text_state

REPOS = {"sd15": "runwayml/stable-diffusion-v1-5", "sd2": "stabilityai/stable-diffusion-2-1",
         "sdxl": "stabilityai/stable-diffusion-xl-base-1.0"}
TEXT_TOWERS = {  # open_clip architecture of each checkpoint's text encoders, and where they sit
    "sd15": [("ViT-L-14-quickgelu", "cond_stage_model.transformer.", "hf")],
    "sd2": [("ViT-H-14", "cond_stage_model.model.", "open_clip")],
    "sdxl": [("ViT-L-14-quickgelu", "conditioner.embedders.0.transformer.", "hf"),
             ("ViT-bigG-14", "conditioner.embedders.1.model.", "open_clip")],
}


def save_sparse(entries: dict, path: Path) -> Path:
    """A ``.safetensors`` file of fp16 tensors: each entry a tensor, or a shape for zeros (left as a file hole)."""
    shapes = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v) for k, v in entries.items()}
    header, offset = {}, 0
    for name in sorted(entries):
        size = 2 * math.prod(shapes[name])
        header[name] = {"dtype": "F16", "shape": list(shapes[name]), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads its header with spaces to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        start = f.tell()
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                f.seek(start + header[name]["data_offsets"][0])
                f.write(value.detach().to(torch.float16).contiguous().numpy().tobytes())
        f.truncate(start + offset)
    return path


def _unet_and_vae(kind: str, forge_dir: Path) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    sys.path.insert(0, str(forge_dir / "repositories" / "huggingface_guess"))
    try:
        from huggingface_guess import detection, diffusers_convert, utils
    finally:
        sys.path.pop(0)
    repo = forge_dir / "backend" / "huggingface" / REPOS[kind]
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads((repo / "unet" / "config.json").read_text())).state_dict()
        vae = AutoencoderKL.from_config(json.loads((repo / "vae" / "config.json").read_text())).state_dict()
    to_ldm = utils.unet_to_diffusers(detection.unet_config_from_diffusers_unet(unet))  # {diffusers key: LDM key}
    missing = sorted(set(unet) - set(to_ldm))
    assert not missing, f"no LDM name for {missing[:3]}"
    out = {"model.diffusion_model." + to_ldm[k]: tuple(v.shape) for k, v in unet.items()}
    out.update({"first_stage_model." + k: tuple(v.shape) for k, v in diffusers_convert.convert_vae_state_dict(vae).items()})
    return out  # {key: shape}: zeros


def text_towers(kind: str, seed: int) -> list[torch.nn.Module]:
    """The random open_clip text towers a checkpoint of ``kind`` is written with (same seed → same weights)."""
    from open_clip.transformer import QuickGELU, TextTransformer

    import open_clip

    towers = []
    for i, (name, _, _) in enumerate(TEXT_TOWERS[kind]):
        cfg = open_clip.get_model_config(name)["text_cfg"]
        torch.manual_seed(seed + i)
        embed = open_clip.get_model_config(name)["embed_dim"]
        act = QuickGELU if name.endswith("quickgelu") else torch.nn.GELU
        towers.append(TextTransformer(width=cfg["width"], heads=cfg["heads"], layers=cfg["layers"],
                                      output_dim=embed, act_layer=act).eval())
    return towers


def write_checkpoint(kind: str, path: Path, forge_dir: Path, seed: int = 0) -> Path:
    """A ``kind`` (sd15 / sd2 / sdxl) checkpoint at ``path`` (see the module docstring)."""
    state = _unet_and_vae(kind, Path(forge_dir))
    for tower, (_, prefix, layout) in zip(text_towers(kind, seed), TEXT_TOWERS[kind]):
        if layout == "hf":
            part = hf_text_state(tower, with_projection=False)
        else:
            part = {k: v for k, v in tower.state_dict().items() if k != "attn_mask"}
        state.update({prefix + k: v for k, v in part.items()})
    return save_sparse(state, path)


def write_hf_clip_l_cache(hf_home: Path) -> Path:
    """What AUTOMATIC1111 reads from the Hugging Face cache to build SD 1.x / SDXL's CLIP-L (its tokenizer and the
    config of ``openai/clip-vit-large-patch14``; no weights — the checkpoint brings them), as any user who once ran
    it online has it. Written from open_clip's BPE vocabulary and CLIP ViT-L/14's published config."""
    from transformers import CLIPConfig

    from pez_nodes.lm.clip_tokenizer import write_clip_tokenizer

    repo = Path(hf_home) / "hub" / "models--openai--clip-vit-large-patch14"
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    write_clip_tokenizer(snapshot)
    (snapshot / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
         "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True}))
    (snapshot / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
         "pad_token": "<|endoftext|>"}))
    CLIPConfig(
        text_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                         max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768),
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=224, patch_size=14, hidden_act="quick_gelu", projection_dim=768),
        projection_dim=768).to_json_file(str(snapshot / "config.json"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return Path(hf_home)


def write_in_subprocess(kind: str, path: Path, forge_dir: Path, seed: int = 0) -> Path:
    """:func:`write_checkpoint` in a child process, so the caller never holds the checkpoint (SDXL: 7 GB) — a
    webui loading an SDXL checkpoint in fp32 on the CPU needs most of a 24 GB machine by itself."""
    import subprocess

    code = "import sys, webui_checkpoints as w; from pathlib import Path; w.write_checkpoint(sys.argv[1], " \
           "Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))"
    subprocess.run([sys.executable, "-c", code, kind, str(path), str(forge_dir), str(seed)], check=True,
                   cwd=Path(__file__).parent)
    return path
