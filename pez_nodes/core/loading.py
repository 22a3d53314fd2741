"""Load a CLIP through open_clip from any source a user names, with one clear error when it fails.

Sources:
    ``toy``                              the tiny CLIP bundled with the package (no download)
    ``ViT-L-14`` + pretrained ``openai``  an open_clip name and pretrained tag (downloads to open_clip's cache)
    ``ViT-L-14`` + pretrained ``/x.safetensors``  an open_clip name and a local weights file
    ``hf-hub:org/repo``                  an open_clip model on the Hugging Face hub (downloads)
    ``local-dir:/path`` or ``/path``     a folder with ``open_clip_config.json`` + ``open_clip_model.safetensors``
                                         (+ optional ``pez_vocabulary.txt``: the only words PEZ may use)

Only safetensors are read unless ``allow_pickle=True``: a pickled checkpoint can run code.
Nothing is downloaded unless the user names a remote model.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import torch

from .backbone import ClipBackbone

TOY_DIR = Path(__file__).resolve().parents[1] / "models" / "toy"
DEFAULT_MODEL = "ViT-L-14"
DEFAULT_PRETRAINED = "openai"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
VOCABULARY_FILE = "pez_vocabulary.txt"  # optional in a model folder: the words the model knows, one a line
OFFLINE_HINT = "with no network, use the bundled model (--model toy) or a local folder / safetensors file"


class ModelLoadError(ValueError):
    """A model could not be loaded; the message names the source and the fix."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, else MPS, else CPU; anything else is checked to exist."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps.") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu.")
    return device


def _local_dir(path: Path, allow_pickle: bool) -> str:
    config = path / "open_clip_config.json"
    if not config.is_file():
        raise ModelLoadError(f"model folder {str(path)!r} has no open_clip_config.json; it needs that file and "
                             "open_clip_model.safetensors (open_clip's local-dir layout).")
    weights = sorted(path.glob("*.safetensors"))
    pickles = [p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if not weights and not (pickles and allow_pickle):
        extra = f" (found pickled {pickles[0].name}: convert it to safetensors or pass allow_pickle)" if pickles else ""
        raise ModelLoadError(f"model folder {str(path)!r} has no open_clip_model.safetensors{extra}; "
                             "without weights the model would be random.")
    return f"local-dir:{path}"


def _check_weights_file(path: Path, allow_pickle: bool) -> None:
    if not path.is_file():
        raise ModelLoadError(f"weights file {str(path)!r} does not exist; give the path of a .safetensors file.")
    if path.suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise ModelLoadError(f"weights file {str(path)!r} is a pickle, which can run code when loaded; convert it to "
                             ".safetensors (or pass allow_pickle=True if you trust it).")


def _check_name(name: str, pretrained: str | None) -> None:
    import open_clip

    models = open_clip.list_models()
    if name not in models:
        close = difflib.get_close_matches(name, models, n=4, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"model {name!r} is not an open_clip model name, folder or 'hf-hub:'/'local-dir:' "
                             f"source.{hint} Use 'toy' for the bundled model.")
    if pretrained and not Path(pretrained).suffix:
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained not in tags:
            raise ModelLoadError(f"pretrained tag {pretrained!r} is unknown for {name}; known tags: "
                                 f"{', '.join(tags) or 'none'} (or give a .safetensors file).")


def load_clip(
    source: str = DEFAULT_MODEL,
    pretrained: str | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
    allow_pickle: bool = False,
) -> ClipBackbone:
    """Load a frozen CLIP as a :class:`ClipBackbone`.

    Args:
        source: ``toy``, an open_clip model name, ``hf-hub:org/repo``, ``local-dir:/path`` or a folder path.
        pretrained: for a model name: a pretrained tag (default ``openai`` for ViT-L-14) or a weights file.
        device: where the model lives (``auto``, ``cpu``, ``cuda`` ...).
        cache_dir: open_clip's download cache (default: its own).
        allow_pickle: also read ``.bin``/``.pt`` checkpoints (they can run code; off by default).
    """
    import open_clip

    if not isinstance(source, str) or not source.strip():
        raise ModelLoadError("model source is empty; give 'toy', an open_clip name such as ViT-L-14, or a folder.")
    source = source.strip()
    remote = False
    if source == "toy":
        model_id, pretrained = _local_dir(TOY_DIR, allow_pickle), None
    elif source.startswith("local-dir:"):
        model_id, pretrained = _local_dir(Path(source[len("local-dir:"):]).expanduser(), allow_pickle), None
    elif source.startswith("hf-hub:"):
        model_id, pretrained, remote = source, None, True
    elif Path(source).expanduser().is_dir():
        model_id, pretrained = _local_dir(Path(source).expanduser(), allow_pickle), None
    elif Path(source).suffix in (".safetensors", *PICKLE_SUFFIXES):
        raise ModelLoadError(f"model {source!r} is a weights file; give the architecture as the model and the file as "
                             "pretrained, e.g. --model ViT-L-14 --pretrained /path/model.safetensors.")
    else:
        if pretrained is None and source == DEFAULT_MODEL:
            pretrained = DEFAULT_PRETRAINED
        if pretrained is None:
            raise ModelLoadError(f"model {source!r} needs pretrained weights: a tag (see open_clip.list_pretrained()) "
                                 "or a .safetensors file; random weights are useless for PEZ.")
        _check_name(source, pretrained)
        if Path(pretrained).suffix:
            _check_weights_file(Path(pretrained).expanduser(), allow_pickle)
        else:
            remote = True
        model_id = source
    target = resolve_device(device)
    quiet = _QuietOpenClip()
    logging.getLogger().addFilter(quiet)  # open_clip logs download failures itself; we raise one clear error
    try:
        with torch.inference_mode(False):
            model = open_clip.create_model(model_id, pretrained=pretrained, device=target, cache_dir=cache_dir,
                                           weights_only=not allow_pickle)
            tokenizer = open_clip.get_tokenizer(model_id, cache_dir=cache_dir) if remote else open_clip.get_tokenizer(model_id)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear message
        what = f"{source}" + (f" / {pretrained}" if pretrained else "")
        text = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        if remote and _looks_offline(e):
            raise ModelLoadError(f"could not download model {what} (offline, or the hub is unreachable); {OFFLINE_HINT}.") from e
        if "safetensor" in text.lower() or "header" in text.lower() or "deserializ" in text.lower():
            raise ModelLoadError(f"weights of model {what} are corrupt or not safetensors ({text}); re-download them.") from e
        if any(w in text for w in ("size mismatch", "Missing key", "Unexpected key", "changed!", "shape")):
            raise ModelLoadError(f"weights of model {what} do not fit its architecture ({text}); check the model name.") from e
        raise ModelLoadError(f"could not load model {what}: {text}") from e
    finally:
        logging.getLogger().removeFilter(quiet)
    from open_clip.model import get_model_preprocess_cfg

    pp = get_model_preprocess_cfg(model)
    size = pp.get("size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else size
    name = "toy" if source == "toy" else source + (f"/{pretrained}" if pretrained and not Path(pretrained).suffix else "")
    words = None
    vocabulary = Path(model_id[len("local-dir:"):]) / VOCABULARY_FILE if model_id.startswith("local-dir:") else None
    if vocabulary is not None and vocabulary.is_file():
        words = vocabulary.read_text(encoding="utf-8").split()
    return ClipBackbone(model, tokenizer, name, pp["mean"], pp["std"], size, vocabulary_words=words)


class _QuietOpenClip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "open_clip" not in record.pathname or record.levelno < logging.ERROR


def _looks_offline(error: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(error)}
    text = " ".join(str(e) for e in _chain(error)).lower()
    offline = {"LocalEntryNotFoundError", "ConnectionError", "ConnectError", "MaxRetryError", "OfflineModeIsEnabled",
               "Timeout", "NameResolutionError", "gaierror"}
    return bool(names & offline) or any(w in text for w in ("connection", "resolve", "offline", "network", "timed out"))


def _chain(error: BaseException):
    seen = 0
    while error is not None and seen < 10:
        yield error
        error = error.__cause__ or error.__context__
        seen += 1
