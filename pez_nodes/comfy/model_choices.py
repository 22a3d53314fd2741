"""The loader's choices: the bundled toy model, CLIPs in ComfyUI's ``models/open_clip`` folder, presets.

Listing reads folders only — no network. ``models/open_clip`` is registered with ``folder_paths``
(so ``extra_model_paths.yaml`` can add more places); it holds ``.safetensors`` files (architecture
recognised from their shapes, activation from a sidecar, metadata or the file name — see
``core/architecture.py``) or open_clip local-dir folders (``open_clip_config.json`` +
``open_clip_model.safetensors``).
"""

from __future__ import annotations

import os

from ..model_choices import CONFIG, PRESETS, TOY, entries_of, resolve_entry

FOLDER = "open_clip"
LM_FOLDER = "LLM"  # causal LMs for the fluency term: transformers folders (config.json + *.safetensors)
BUNDLED_LMS = ("toy_lm_small", "toy_lm_large")


def _folder_paths():
    try:
        import folder_paths
    except ImportError:
        return None
    return folder_paths


def register_folder() -> None:
    """Add ``models/open_clip`` and ``models/LLM`` to ComfyUI's model folders (idempotent; nothing outside ComfyUI)."""
    fp = _folder_paths()
    for name in (FOLDER, LM_FOLDER):  # also when extra_model_paths.yaml named the folder first: keep models/<name>
        default = os.path.join(fp.models_dir, name) if fp is not None else None
        if fp is not None and (name not in fp.folder_names_and_paths or default not in fp.get_folder_paths(name)):
            fp.add_model_folder_path(name, default, is_default=True)


def local_entries() -> list[str]:
    """Relative names in ``models/open_clip``: ``name.safetensors`` files and ``folder/`` local-dirs."""
    fp = _folder_paths()
    if fp is None or FOLDER not in fp.folder_names_and_paths:
        return []
    return entries_of(fp.get_filename_list(FOLDER))


def choices() -> list[str]:
    return [TOY, *local_entries(), *PRESETS]


def resolve(choice: str) -> tuple[str, str | None]:
    """(source, pretrained) for :func:`pez_nodes.core.load_clip`, or a ``ValueError`` that says where files go."""
    if choice == TOY or choice == "toy":
        return "toy", None
    if choice in PRESETS:
        return PRESETS[choice]
    fp = _folder_paths()
    if fp is not None and FOLDER in fp.folder_names_and_paths:
        if choice.endswith("/"):
            for base in fp.get_folder_paths(FOLDER):
                path = os.path.join(base, choice.rstrip("/"))
                if os.path.isfile(os.path.join(path, CONFIG)):
                    return resolve_entry(path)
        else:
            path = fp.get_full_path(FOLDER, choice)
            if path:
                return resolve_entry(path)
    raise ValueError(f"model {choice!r} was not found; put .safetensors files or open_clip folders in "
                     f"ComfyUI/models/{FOLDER}/ and refresh, or choose '{TOY}'.")


def models_folder() -> str:
    """Where ComfyUI looks for PEZ's CLIPs on this machine (the first ``open_clip`` models folder)."""
    fp = _folder_paths()
    if fp is not None and FOLDER in fp.folder_names_and_paths and fp.get_folder_paths(FOLDER):
        return fp.get_folder_paths(FOLDER)[0]
    return f"ComfyUI/models/{FOLDER}"


def offline_fix(download: dict) -> str:
    """ComfyUI's line for a remote model this machine can neither download nor find in its cache (the core's
    ``ModelLoadError.download``): which files to fetch elsewhere and where in ``models/open_clip`` to put them."""
    folder, files, url = models_folder(), list(download.get("files") or []), download.get("url") or ""
    source, tag = download.get("source") or "", download.get("pretrained")
    head = f"model {download.get('model')} cannot be downloaded here ({download.get('reason')}) and is not in the cache"
    if len(files) > 1:  # a hub model: its config and weights, as an open_clip folder
        name = source.removeprefix("hf-hub:").rstrip("/").rsplit("/", 1)[-1] or "model"
        put = f"download {' and '.join(files)} from {url} into a folder {os.path.join(folder, name, '')}"
    elif files:  # a name + tag: one weights file, named so the loader recognises it (an 'openai' name: QuickGELU)
        name = f"{source}-{tag}.safetensors" if tag else files[0]
        put = f"download {files[0]} from {url} and save it as {os.path.join(folder, name)}"
        if not files[0].endswith(".safetensors"):
            put += " (converted to .safetensors: pickles are not loaded)"
    else:
        put = f"put its weights as a .safetensors file in {os.path.join(folder, '')}"
    return (f"{head}; on a machine with a network, {put}, then refresh (R) and choose it in PEZ Load CLIP, "
            f"or choose '{TOY}'.")


def lm_choices() -> list[str]:
    """The bundled toy LMs, then each ``models/LLM`` folder that holds a ``config.json``."""
    fp = _folder_paths()
    found = []
    if fp is not None and LM_FOLDER in fp.folder_names_and_paths:
        found = sorted({os.path.dirname(f).replace(os.sep, "/") + "/" for f in fp.get_filename_list(LM_FOLDER)
                        if os.path.basename(f) == "config.json" and os.path.dirname(f)})
    return [*BUNDLED_LMS, *found]


def resolve_lm(choice: str) -> str:
    """A bundled name as it is, or the full path of a ``models/LLM`` folder choice."""
    if choice in BUNDLED_LMS:
        return choice
    fp = _folder_paths()
    if fp is not None and LM_FOLDER in fp.folder_names_and_paths and choice.endswith("/"):
        for base in fp.get_folder_paths(LM_FOLDER):
            path = os.path.join(base, choice.rstrip("/"))
            if os.path.isfile(os.path.join(path, "config.json")):
                return path
    raise ValueError(f"language model {choice!r} was not found; put transformers folders (config.json, *.safetensors, "
                     f"tokenizer files) in ComfyUI/models/{LM_FOLDER}/ and refresh, or choose toy_lm_small.")
