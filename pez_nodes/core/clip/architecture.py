"""Recognise which open_clip architecture — and which activation — a bare ``.safetensors`` CLIP file holds.

A file dropped into ComfyUI's ``models/open_clip`` folder carries no config. Its tensor shapes give
the text and vision widths, depths, patch size, image size and embedding size; the open_clip
config with the same numbers is the architecture. A sidecar ``<file>.json`` wins when present:
``{"model_name": "ViT-L-14"}``, an open_clip config (``open_clip_config.json`` format), or just
``{"quick_gelu": true}`` (architecture from the shapes).

Shapes cannot tell the activation: open_clip builds ``ViT-L-14`` (GELU) and ``ViT-L-14-quickgelu``
(QuickGELU) — likewise ViT-B-32, B-16, H-14, RN50 ... — with identical tensors. OpenAI's weights
(SD 1.5's CLIP is OpenAI's ViT-L-14) were trained with QuickGELU, most LAION / DataComp weights with
GELU, and running weights with the other activation silently degrades every feature. So the
activation comes from evidence, strongest first (:func:`file_activation` reads 2–4):

1. the caller's explicit choice (``load_clip(..., activation="quickgelu")``) or a model name that
   already says so (``ViT-L-14-quickgelu``);
2. a sidecar ``<file>.json``: an open_clip config (its ``quick_gelu``), or ``quick_gelu`` /
   ``activation`` keys, or a ``model_name`` naming ``quickgelu`` or ``openai``;
3. the safetensors ``__metadata__``: ``quick_gelu``, ``activation``, ``act_layer``, or a
   ``model_name`` / ``architecture`` / ``modelspec.architecture`` / ``pretrained`` naming
   ``quickgelu`` or ``openai``;
4. the file name containing ``openai`` or ``quickgelu`` (open_clip's ``openai`` weights are QuickGELU);
5. nothing: see :data:`NO_EVIDENCE`.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

ACTIVATIONS = ("auto", "gelu", "quickgelu")
LABEL = {"gelu": "GELU", "quickgelu": "QuickGELU"}
NO_EVIDENCE = (
    "no evidence of the activation in the file (no sidecar .json, no safetensors metadata, no 'openai' or "
    "'quickgelu' in its name), so GELU, what open_clip's {name} means; if these are OpenAI weights "
    "(SD 1.5's CLIP), choose activation=quickgelu or put 'openai' in the file name"
)
"""Why GELU when nothing is known, although SD 1.5's CLIP (OpenAI, QuickGELU) is a common file here:

* the name shown is the open_clip name, and in open_clip a plain name *is* GELU — the same file given
  to ``open_clip.create_model("ViT-L-14", pretrained=file)`` builds GELU, so results agree with open_clip;
* GELU files with these shapes are just as easy to find (LAION, DataComp, DFN ViT-L-14 / B-32 / H-14),
  and open_clip's own hub names its OpenAI files ``*.openai``, which step 4 recognises;
* a wrong guess either way degrades quietly, so the choice is never silent: the note names the fix.
Only where every open_clip architecture with these shapes is a QuickGELU one is QuickGELU the default.
"""


@dataclass(frozen=True)
class Architecture:
    """What :func:`identify_architecture` found: the open_clip name to build, its activation and why."""

    name: str
    activation: str
    reason: str


def check_activation(value: str | None) -> str:
    """``value`` normalised (``None`` → ``auto``, ``quick_gelu`` → ``quickgelu``) if it is one of
    :data:`ACTIVATIONS`, else a ``ValueError`` naming them."""
    if value is None:
        return "auto"
    choice = str(value).strip().lower().replace("_", "").replace("-", "")
    if choice not in ACTIVATIONS:
        raise ValueError(f"activation {value!r} is not one of {', '.join(ACTIVATIONS)}; use 'auto' unless you know "
                         "which activation the weights were trained with (OpenAI's CLIP: quickgelu).")
    return choice


def _parse(value, key: str = "") -> str | None:
    """'gelu' / 'quickgelu' from a metadata or sidecar value (booleans for ``quick_gelu`` keys), else None."""
    text = str(value).strip().lower().replace("_", "").replace("-", "")
    if key.replace("_", "") == "quickgelu" and text in ("true", "1", "yes", "false", "0", "no"):
        return "quickgelu" if text in ("true", "1", "yes") else "gelu"
    if text in ("quickgelu", "gelu"):
        return text
    return None


def _named(value) -> str | None:
    """'quickgelu' when a model / architecture / pretrained name says QuickGELU or OpenAI, else None."""
    text = str(value).lower()
    return "quickgelu" if ("quickgelu" in text.replace("_", "") or "openai" in text) else None


def _from_mapping(data: dict, where: str) -> tuple[str, str] | None:
    """Evidence in a sidecar or metadata mapping: explicit activation keys first, then names."""
    for key in ("quick_gelu", "activation", "act_layer"):
        if key in data and (found := _parse(data[key], key)):
            return found, f"from the {where}'s {key!r}"
    for key in ("model_name", "architecture", "modelspec.architecture", "pretrained"):
        if key in data and (found := _named(data[key])):
            return found, f"from the {where}'s {key!r}: {str(data[key])[:60]}"
    return None


def _sidecar_evidence(path: Path) -> tuple[str, str] | None:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    cfg = _read_sidecar(sidecar)
    if isinstance(cfg.get("model_cfg"), dict):
        found = "quickgelu" if cfg["model_cfg"].get("quick_gelu") else "gelu"
        return found, f"from the open_clip config in {sidecar.name}"
    return _from_mapping(cfg, sidecar.name)


def _read_sidecar(sidecar: Path) -> dict:
    try:
        cfg = json.loads(sidecar.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"sidecar {sidecar.name} is not valid JSON ({e}); fix it or remove it.") from e
    if not isinstance(cfg, dict):
        raise ValueError(f"sidecar {sidecar.name} must hold a JSON object such as {{\"model_name\": \"ViT-L-14\"}}.")
    return cfg


def _metadata_evidence(path: Path) -> tuple[str, str] | None:
    from safetensors import safe_open

    if path.suffix != ".safetensors":
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception:  # noqa: BLE001 - an unreadable file says nothing here; loading it reports the damage
        return None
    return _from_mapping(metadata, "file's metadata")


def _name_evidence(path: Path) -> tuple[str, str] | None:
    name = path.name.lower()
    if "quickgelu" in name.replace("_", "").replace("-", ""):
        return "quickgelu", f"the file name {path.name!r} says quickgelu"
    if "openai" in name:
        return "quickgelu", f"the file name {path.name!r} says openai (OpenAI's CLIPs use QuickGELU)"
    return None


def file_activation(path: str | Path) -> tuple[str, str] | None:
    """``(activation, reason)`` from what a weights file says about itself — sidecar, metadata, file
    name, in that order — or ``None`` when it says nothing."""
    path = Path(path)
    for look in (_sidecar_evidence, _metadata_evidence, _name_evidence):
        found = look(path)
        if found:
            return found
    return None


def config_activation(name: str) -> str:
    """The activation open_clip's config ``name`` builds ('gelu' or 'quickgelu')."""
    import open_clip

    return "quickgelu" if (open_clip.get_model_config(name) or {}).get("quick_gelu") else "gelu"


def twin(name: str, activation: str) -> str | None:
    """The open_clip config with ``name``'s shapes and ``activation`` (``name`` itself, its ``-quickgelu``
    twin or the plain name), or ``None`` where this open_clip has none (e.g. 2.20 lacks ViT-L-14-quickgelu)."""
    import open_clip

    def shapes(cfg: dict) -> dict:
        return {k: v for k, v in cfg.items() if k != "quick_gelu"}

    base = shapes(open_clip.get_model_config(name) or {})
    for other in (name, f"{name}-quickgelu", name.removesuffix("-quickgelu")):
        cfg = open_clip.get_model_config(other)
        if cfg is not None and config_activation(other) == activation and shapes(cfg) == base:
            return other
    return None


_CONFIG_DIR: Path | None = None
_REGISTERED: set[str] = set()


def register_config(model_cfg: dict, hint: str) -> str:
    """Register ``model_cfg`` with open_clip (``add_model_config``, which every open_clip has) under a
    generated name, and return it; the same config always gets the same name (one temporary folder per
    process, which open_clip rescans at each registration, removed when the process exits)."""
    import open_clip

    global _CONFIG_DIR
    digest = hashlib.sha1(json.dumps(model_cfg, sort_keys=True).encode()).hexdigest()[:8]
    name = f"pez-local-{re.sub(r'[^A-Za-z0-9_.-]+', '-', hint)[:40]}-{digest}"
    if name in _REGISTERED and name in open_clip.list_models():
        return name
    if _CONFIG_DIR is None:
        _CONFIG_DIR = Path(tempfile.mkdtemp(prefix="pez-config-"))
        atexit.register(shutil.rmtree, _CONFIG_DIR, True)
    (_CONFIG_DIR / f"{name}.json").write_text(json.dumps(model_cfg))
    open_clip.add_model_config(_CONFIG_DIR / f"{name}.json")
    _REGISTERED.add(name)
    return name


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


def _sidecar_name(path: Path, cfg: dict) -> str | None:
    """The architecture a sidecar names: an open_clip config (``model_cfg``, registered here) or a
    ``model_name``; ``None`` when it only says the activation (the shapes then give the architecture)."""
    if isinstance(cfg.get("model_cfg"), dict):
        return register_config(cfg["model_cfg"], path.stem)
    name = cfg.get("model_name") or cfg.get("architecture")
    if not name and not any(k in cfg for k in ("quick_gelu", "activation", "act_layer")):
        raise ValueError(f"{path.with_suffix('.json').name} needs 'model_name', open_clip's 'model_cfg' or "
                         "'quick_gelu'; add one of them.")
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


def _shape_matches(path: Path) -> list[str]:
    """open_clip names (not ones registered here) whose configs have the shapes of the weights in ``path``."""
    import open_clip

    try:
        sig = _signature_of_file(path)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"weights file {path.name} is corrupt or not safetensors ({e}); re-download it.") from e
    matches = [n for n in open_clip.list_models() if n not in _REGISTERED
               and _signature_of_config(open_clip.get_model_config(n) or {}) == sig]
    if not matches:
        raise ValueError(f"no open_clip architecture matches the shapes in {path.name} ({sig}); put it in a folder "
                         "with its open_clip_config.json (open_clip's local-dir layout).")
    return sorted(matches, key=lambda n: (len(n), n))


def identify_architecture(path: str | Path, activation: str = "auto") -> Architecture:
    """The open_clip architecture of the weights in ``path``, its activation and the reason (or a ``ValueError``).

    ``activation`` is the caller's choice (``auto`` reads the evidence, see the module doc). The name
    is the config with the chosen activation where open_clip has one (``ViT-L-14-quickgelu``); otherwise
    the plain name, which :func:`pez_nodes.core.load_clip` builds with the chosen activation.
    """
    path = Path(path)
    chosen = check_activation(activation)
    sidecar = path.with_suffix(".json")
    named = _sidecar_name(path, _read_sidecar(sidecar)) if sidecar.is_file() else None
    names = [named] if named else _shape_matches(path)
    found = file_activation(path)
    if chosen != "auto":
        reason = f"you chose activation={chosen}"
    elif found:
        chosen, reason = found
    elif all(config_activation(n) == "quickgelu" for n in names):
        chosen, reason = "quickgelu", f"open_clip's {names[0]} uses QuickGELU"
    else:
        name = next(n for n in names if config_activation(n) == "gelu")
        return Architecture(name, "gelu", NO_EVIDENCE.format(name=name))
    exact = [n for n in names if config_activation(n) == chosen]
    name = exact[0] if exact else (twin(names[0], chosen) or names[0])
    return Architecture(name, chosen, reason)
