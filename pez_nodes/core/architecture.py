"""Recognise which open_clip architecture a bare ``.safetensors`` CLIP file holds, from tensor shapes.

A file dropped into ComfyUI's ``models/open_clip`` folder carries no config. Its tensor shapes give
the text and vision widths, depths, patch size, image size and embedding size; the open_clip
config with the same numbers is the architecture. A sidecar ``<file>.json`` wins when present:
either ``{"model_name": "ViT-L-14"}`` or an open_clip config (``open_clip_config.json`` format).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path


def _signature_of_file(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        shapes = {k.removeprefix("module."): tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    if "token_embedding.weight" not in shapes or "visual.conv1.weight" not in shapes:
        raise ValueError(f"{path.name} does not look like an open_clip CLIP state dict (no token_embedding / "
                         "visual.conv1); put it in a folder with its open_clip_config.json instead.")
    proj = shapes.get("text_projection") or shapes.get("text_projection.weight")[::-1]
    patches = shapes["visual.positional_embedding"][0] - 1
    return {
        "embed_dim": proj[1],
        "text_width": shapes["token_embedding.weight"][1],
        "vocab_size": shapes["token_embedding.weight"][0],
        "context_length": shapes["positional_embedding"][0],
        "text_layers": _depth(shapes, r"^transformer\.resblocks\.(\d+)\."),
        "vision_width": shapes["visual.conv1.weight"][0],
        "patch_size": shapes["visual.conv1.weight"][-1],
        "vision_layers": _depth(shapes, r"^visual\.transformer\.resblocks\.(\d+)\."),
        "image_size": int(round(math.sqrt(patches))) * shapes["visual.conv1.weight"][-1],
    }


_SIDECAR_DIR: Path | None = None


def _register_sidecar(path: Path, cfg: dict) -> str:
    """A sidecar is either ``{"model_name": "ViT-L-14"}`` or an open_clip config (with ``model_cfg``)."""
    import open_clip

    if "model_cfg" not in cfg:
        name = cfg.get("model_name") or cfg.get("architecture")
        if not name:
            raise ValueError(f"{path.with_suffix('.json').name} needs 'model_name' or open_clip's 'model_cfg'.")
        return name
    global _SIDECAR_DIR
    if _SIDECAR_DIR is None:  # one folder per process, however many files are loaded
        _SIDECAR_DIR = Path(tempfile.mkdtemp(prefix="pez-config-"))
    name = f"pez-local-{path.stem}"
    (_SIDECAR_DIR / f"{name}.json").write_text(json.dumps(cfg["model_cfg"]))
    open_clip.add_model_config(_SIDECAR_DIR / f"{name}.json")
    return name


def _depth(shapes: dict, pattern: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _signature_of_config(cfg: dict) -> dict | None:
    v, t = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    if cfg.get("custom_text") or "hf_model_name" in t or "timm_model_name" in v or not isinstance(v.get("layers"), int):
        return None
    size = v.get("image_size", 224)
    return {
        "embed_dim": cfg.get("embed_dim"),
        "text_width": t.get("width", 512),
        "vocab_size": t.get("vocab_size", 49408),
        "context_length": t.get("context_length", 77),
        "text_layers": t.get("layers", 12),
        "vision_width": v.get("width", 768),
        "patch_size": v.get("patch_size", 16),
        "vision_layers": v.get("layers"),
        "image_size": size[0] if isinstance(size, (list, tuple)) else size,
    }


def identify_architecture(path: str | Path) -> str:
    """The open_clip model name whose shapes match the weights in ``path`` (or a ``ValueError``)."""
    import open_clip

    path = Path(path)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        return _register_sidecar(path, json.loads(sidecar.read_text()))
    try:
        sig = _signature_of_file(path)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"weights file {path.name} is corrupt or not safetensors ({e}); re-download it.") from e
    matches = [n for n in open_clip.list_models() if _signature_of_config(open_clip.get_model_config(n) or {}) == sig]
    if not matches:
        raise ValueError(f"no open_clip architecture matches the shapes in {path.name} ({sig}); put it in a folder "
                         "with its open_clip_config.json (open_clip's local-dir layout).")
    return sorted(matches, key=len)[0]
