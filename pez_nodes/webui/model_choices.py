"""The CLIPs the webui side offers: the bundled toy, the webui's loaded checkpoint (``checkpoint_clip.py``),
files in the webui's ``models/open_clip`` folder, the presets — or, where the webui's owner allows any CLIP
(``limits.py``), anything ``core.load_clip`` takes, typed in (an open_clip name, ``hf-hub:``, a path)."""

from __future__ import annotations

from pathlib import Path

from ..model_choices import PRESETS, TOY, resolve_entry, scan
from .checkpoint_clip import CHOICE as CHECKPOINT

FOLDER = "open_clip"


def models_folder(models_path: str | Path) -> Path:
    """``<webui>/models/open_clip``: where the PEZ tab looks for CLIPs (``.safetensors`` or open_clip folders)."""
    return Path(models_path) / FOLDER


def choices(folder: str | Path | None) -> list[str]:
    return [TOY, CHECKPOINT, *(scan(folder) if folder else []), *PRESETS]


def resolve(choice: str, pretrained: str | None = None, folder: str | Path | None = None) -> tuple[str, str | None]:
    """(source, pretrained) for ``core.load_clip``: a listed choice, else what the user typed, as given."""
    choice = (choice or "").strip()
    if choice in ("", "toy", TOY):
        return "toy", None
    if choice in PRESETS:
        return PRESETS[choice]
    if folder and choice in scan(folder):
        return resolve_entry(Path(folder) / choice.rstrip("/"))
    return choice, (pretrained or None)
