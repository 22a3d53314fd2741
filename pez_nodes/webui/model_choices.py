"""The CLIPs the webui side offers: the bundled toy, the webui's loaded checkpoint (``checkpoint_clip.py``),
files in the webui's ``models/open_clip`` folder, the presets — or, where the webui's owner allows any CLIP
(``limits.py``), anything ``core.load_clip`` takes, typed in (an open_clip name, ``hf-hub:``, a path).

Also the language models guided decoding may use: the bundled toy LMs and the ``transformers`` folders in
the webui's ``models/LLM`` — always only those (a request never names an LM by path)."""

from __future__ import annotations

from pathlib import Path

from ..lm.load import BUNDLED as BUNDLED_LMS
from ..lm.load import default_fluency_lm
from ..model_choices import PRESETS, TOY, resolve_entry, scan
from .checkpoint_clip import CHOICE as CHECKPOINT

FOLDER = "open_clip"
LM_FOLDER = "LLM"
LM_CONFIG = "config.json"


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


def lm_folder(models_path: str | Path) -> Path:
    """``<webui>/models/LLM``: where the PEZ tab looks for guided decoding's language models."""
    return Path(models_path) / LM_FOLDER


def lm_choices(folder: str | Path | None) -> list[str]:
    """The bundled toy LMs, then each folder under ``folder`` that holds a ``config.json`` (as ``name/``)."""
    root = Path(folder) if folder else None
    found = []
    if root is not None and root.is_dir():
        found = sorted({p.parent.relative_to(root).as_posix() + "/" for p in root.rglob(LM_CONFIG)
                        if p.is_file() and p.parent != root})
    return [*BUNDLED_LMS, *found]


def default_lm(clip_choice: str | None) -> str | None:
    """The LM guided decoding uses when a request names none: the toy CLIP's own (toy_lm_small), else None."""
    choice = (clip_choice or "").strip()
    return default_fluency_lm("toy") if choice in ("", "toy", TOY) else None


def quoted(value) -> str:
    """A user's value, quoted and cut to 60 characters, for an error line (never a whole payload)."""
    return repr(value if not isinstance(value, str) or len(value) <= 60 else value[:57] + "...")


def check_lm(choice, folder: str | Path | None) -> str:
    """``choice`` if it is one of :func:`lm_choices`, else one ``ValueError`` line listing them (never a path)."""
    listed = lm_choices(folder)
    if isinstance(choice, str) and choice.strip() in listed:
        return choice.strip()
    shown = ", ".join(repr(c) for c in listed[:8]) + (", …" if len(listed) > 8 else "")
    raise ValueError(f"lm {quoted(choice)} is not one of the language models this webui offers ({shown}); choose "
                     f"one of them, or put a transformers folder (config.json, *.safetensors, tokenizer files) in the "
                     f"webui's models/{LM_FOLDER} and refresh.")


def resolve_lm(choice: str, folder: str | Path | None) -> str:
    """The source ``pez_nodes.lm.load.load_lm`` reads for a listed choice: a bundled name, or the folder's path."""
    choice = check_lm(choice, folder)
    return choice if choice in BUNDLED_LMS else str(Path(folder) / choice.rstrip("/"))
