"""The CLIP choices every front end offers: the bundled toy model, presets that download once, and the
CLIPs a user put in a models folder. Shared by ComfyUI's loader node and the webuis' PEZ tab; reads
folders only, never the network.

A models folder holds ``.safetensors`` files (architecture recognised from their shapes — see
``core/architecture.py``) or open_clip local-dir folders (``open_clip_config.json`` +
``open_clip_model.safetensors``).
"""

from __future__ import annotations

import os
from pathlib import Path

TOY = "toy (bundled, offline)"
PRESETS = {
    "ViT-L-14 / openai (SD 1.5, downloads)": ("ViT-L-14", "openai"),
    "ViT-H-14 / laion2b_s32b_b79k (SD 2.x, downloads)": ("ViT-H-14", "laion2b_s32b_b79k"),
    "ViT-bigG-14 / laion2b_s39b_b160k (SDXL, downloads)": ("ViT-bigG-14", "laion2b_s39b_b160k"),
}
CONFIG = "open_clip_config.json"

# the CLIP text encoders of Stable Diffusion, by width, and the CLIP Vision model that matches each
TEXT_KIND = {768: "CLIP-L (OpenAI ViT-L/14)", 1024: "OpenCLIP ViT-H/14", 1280: "OpenCLIP ViT-bigG/14"}
KIND_OF_TEXT = {768: "SD 1.5 / SDXL CLIP-L", 1024: "SD 2.x ViT-H", 1280: "SDXL bigG"}
VISION_KIND = {768: "CLIP ViT-L/14", 1024: "OpenCLIP ViT-H/14", 1280: "OpenCLIP ViT-bigG/14"}
MATCHING_VISION = {
    768: "OpenAI's CLIP ViT-L/14 at 224 px (e.g. openai/clip-vit-large-patch14's model.safetensors)",
    1024: "CLIP-ViT-H-14-laion2B-s32B-b79K (the IP-Adapter SD 1.5 image encoder)",
    1280: "clip_vision_g.safetensors (OpenCLIP ViT-bigG/14, the IP-Adapter SDXL image encoder)",
}


def entries_of(files: list[str]) -> list[str]:
    """From relative file names under a models folder: ``folder/`` for each open_clip local-dir, then the
    ``.safetensors`` files that are not inside one."""
    folders = sorted({os.path.dirname(f) for f in files if os.path.basename(f) == CONFIG and os.path.dirname(f)})
    singles = [f for f in files if f.endswith(".safetensors") and os.path.dirname(f) not in folders]
    return [d.replace(os.sep, "/") + "/" for d in folders] + sorted(singles)


def scan(folder: str | Path) -> list[str]:
    """:func:`entries_of` for every file under ``folder`` (none when it does not exist)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return entries_of([str(p.relative_to(root)) for p in sorted(root.rglob("*")) if p.is_file()])


def resolve_entry(path: str | Path) -> tuple[str, str | None]:
    """(source, pretrained) for ``core.load_clip`` of a local-dir folder or a ``.safetensors`` file."""
    path = Path(path)
    if path.is_dir():
        return str(path), None
    from .core import identify_architecture

    # load_clip reads the same evidence again and notes the activation and why
    return identify_architecture(str(path)).name, str(path)
