"""Load a CLIP through open_clip from any source a user names, with one clear error when it fails.

Sources:
    ``toy``                              the tiny CLIP bundled with the package (no download)
    ``ViT-L-14`` + pretrained ``openai``  an open_clip name and pretrained tag (downloads to open_clip's cache)
    ``ViT-L-14`` + pretrained ``/x.safetensors``  an open_clip name and a local weights file
    ``hf-hub:org/repo``                  an open_clip model on the Hugging Face hub (downloads)
    ``local-dir:/path`` or ``/path``     a folder with ``open_clip_config.json`` + ``open_clip_model.safetensors``
                                         (+ optional ``pez_vocabulary.txt``: words PEZ may be limited to
                                         with ``vocabulary="declared"``)

No pickle is unpickled unless ``allow_pickle=True`` (a pickled checkpoint can run code when loaded):
local ``.bin``/``.pt``/``.pth``/``.ckpt`` files are refused; a pretrained tag's or hub model's weights are
read from ``.safetensors``, or, by an open_clip whose ``create_model`` takes ``weights_only`` (3.x), from a
``.bin`` through torch's ``weights_only`` loader, which refuses anything but tensors. An older open_clip
(2.x) would read a downloaded ``.bin``/``.pt`` with a plain ``torch.load``, so there the file is looked up
here (:func:`_safetensors_plan`): its ``.safetensors`` (in the hub cache, or downloaded) is read here — for the
``openai`` tags, which 2.x knows only as OpenAI's pickled ``.pt``, the hub copy 3.x uses (``OPENAI_HUB``) — and
where there is none the model is refused in one line before anything is unpickled.
Nothing is downloaded unless the user names a remote model.

Offline: before a remote model is built, the model hub (``HF_ENDPOINT``, or the proxy in front of it) is tried with
one socket connect of at most ``HUB_PROBE_S`` seconds. Where it cannot be reached, huggingface_hub is held offline
for the attempt (:class:`_HubAccess`): a model already in the hub's cache loads from there, and one that is not
fails at once — one line naming the model, where its weights are and the fix, instead of huggingface_hub's five
retries a file (~50 s of warnings). The error's ``download`` tells a front end which files to put where.

Works with open_clip_torch 2.20.0 (what AUTOMATIC1111 and Forge pin) and newer. A model folder's config
is registered with ``open_clip.add_model_config`` (every version has it; ``local-dir:`` came later) and
built by name with the folder's weights file. Where ``create_model`` takes ``weights_only`` (3.x),
open_clip reads that file itself; older versions read only pickles, so it is read here with
safetensors. Newer keyword arguments are passed only where the signature names them.

The activation (GELU or OpenAI's QuickGELU, which shapes cannot tell apart) is decided from evidence
and said in the backbone's ``notes`` — see :mod:`pez_nodes.core.clip.architecture`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import logging
import os
import re
import socket
import threading
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..bundled import BUNDLED_MODELS
from ..device import resolve_device
from .architecture import (LABEL, NO_EVIDENCE, check_activation, config_activation, file_activation, register_config, twin)
from .backbone import ClipBackbone
TOY_DIR = BUNDLED_MODELS / "toy"
DEFAULT_MODEL = "ViT-L-14"
DEFAULT_PRETRAINED = "openai"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
VOCABULARY_FILE = "pez_vocabulary.txt"  # optional in a model folder: the words the model knows, one a line
VOCABULARIES = ("full", "declared")
WEIGHTS_FILE = "open_clip_model.safetensors"
HUB_CONFIG = "open_clip_config.json"
HUB_PICKLE = "open_clip_pytorch_model.bin"  # open_clip's default hub weights file (its safetensors: WEIGHTS_FILE)
# open_clip 3.x's hub copies of OpenAI's weights (its pretrained table); 2.x knows only OpenAI's pickled .pt URLs
OPENAI_HUB = {
    "ViT-B-32": "timm/vit_base_patch32_clip_224.openai/",
    "ViT-B-16": "timm/vit_base_patch16_clip_224.openai/",
    "ViT-L-14": "timm/vit_large_patch14_clip_224.openai/",
    "ViT-L-14-336": "timm/vit_large_patch14_clip_336.openai/",
}
OFFLINE_HINT = "with no network, use the bundled model (toy) or a local folder / .safetensors file"
HUB_PROBE_S = 3.0  # the longest the model hub's reachability check waits (DNS and connect together)


class ModelLoadError(ValueError):
    """A model could not be loaded; the message names the source and the fix.

    ``download`` is set where a remote model is neither in this machine's cache nor downloadable (no network,
    or the hub switched off), so that a front end can say where to put its files: ``model`` (e.g.
    ``ViT-L-14 / openai``), ``source``, ``pretrained``, ``url`` (the hub page or file of its weights),
    ``files`` (the files there that make the model), ``reason`` (why nothing could be downloaded).
    """

    def __init__(self, message: str, download: dict | None = None):
        super().__init__(message)
        self.download = download


def _local_dir(path: Path, allow_pickle: bool) -> tuple[dict, Path]:
    """The folder's open_clip config and its weights file, or a ``ModelLoadError`` naming what is missing."""
    config = path / "open_clip_config.json"
    if not config.is_file():
        raise ModelLoadError(f"model folder {str(path)!r} has no open_clip_config.json; it needs that file and "
                             "open_clip_model.safetensors (open_clip's local-dir layout).")
    weights = sorted(path.glob("*.safetensors"), key=lambda p: (p.name != WEIGHTS_FILE, p.name))
    pickles = sorted((p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES),
                     key=lambda p: ("open_clip" not in p.name, p.name))
    if not weights and not (pickles and allow_pickle):
        extra = f" (found pickled {pickles[0].name}: convert it to safetensors or pass allow_pickle)" if pickles else ""
        raise ModelLoadError(f"model folder {str(path)!r} has no open_clip_model.safetensors{extra}; "
                             "without weights the model would be random.")
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ModelLoadError(f"{config} is not valid JSON ({e}); re-download the model folder.") from e
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_cfg"), dict):
        raise ModelLoadError(f"{config} has no 'model_cfg'; it must be open_clip's config format "
                             "(model_cfg + preprocess_cfg).")
    return cfg, (weights or pickles)[0]


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


def _check_vocabulary(value: str) -> str:
    choice = (value or "").strip().lower() if isinstance(value, str) else value
    if choice not in VOCABULARIES:
        raise ValueError(f"vocabulary {value!r} is not 'full' or 'declared'; use 'full' (every token) or 'declared' "
                         f"(only the words in the model folder's {VOCABULARY_FILE}).")
    return choice


@dataclass
class _Plan:
    """What to build and why: an open_clip name (+ tag, or + a local weights file read here)."""

    model_id: str
    label: str
    pretrained: str | None = None
    weights: Path | None = None
    remote: bool = False
    activation: str | None = None  # wanted; None: whatever a hub config says
    reason: str = ""
    guessed: bool = False  # no evidence: the activation is the plain name's, and the note says so loudly
    stated: bool = False  # the model folder's own config states it: nothing was decided, nothing to note
    folder: Path | None = None
    preprocess: dict = field(default_factory=dict)
    create_kwargs: dict = field(default_factory=dict)


def _takes(fn, **candidates) -> dict:
    """The keyword arguments ``fn`` names in its signature (feature detection across open_clip versions)."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in candidates.items() if k in params}


def _takes_any_keyword(fn) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def _named_config(name: str, activation: str, hint: str) -> str:
    """``name`` or its open_clip twin with ``activation``; failing both, a registered copy of its config."""
    import open_clip

    found = twin(name, activation)
    if found:
        return found
    cfg = open_clip.get_model_config(name)
    cfg["quick_gelu"] = activation == "quickgelu"
    return register_config(cfg, hint)


def _plan_folder(folder: Path, label: str, allow_pickle: bool, explicit: str | None) -> _Plan:
    cfg, weights = _local_dir(folder, allow_pickle)
    model_cfg = dict(cfg["model_cfg"])
    activation = explicit or ("quickgelu" if model_cfg.get("quick_gelu") else "gelu")
    reason = f"you chose activation={explicit}" if explicit else "from the folder's open_clip_config.json"
    model_cfg["quick_gelu"] = activation == "quickgelu"
    name = register_config(model_cfg, folder.name)
    return _Plan(name, label, weights=weights, activation=activation, reason=reason, stated=not explicit,
                 folder=folder, preprocess=dict(cfg.get("preprocess_cfg") or {}))


def _plan_file(name: str, path: Path, explicit: str | None) -> _Plan:
    """``name`` + a local weights file: the activation from the caller, the name, then the file's evidence."""
    try:
        found = file_activation(path)
    except ValueError as e:  # a broken sidecar
        raise ModelLoadError(str(e)) from e
    if explicit:
        activation, reason = explicit, f"you chose activation={explicit}"
    elif config_activation(name) == "quickgelu":
        activation = "quickgelu"
        reason = found[1] if found and found[0] == "quickgelu" else f"open_clip's {name} uses QuickGELU"
        if found and found[0] != "quickgelu":
            reason += f", although the file says {LABEL[found[0]]} ({found[1]})"
    elif found:
        activation, reason = found
    else:
        activation, reason = "gelu", NO_EVIDENCE.format(name=name)
    model_id = _named_config(name, activation, name)
    return _Plan(model_id, name, weights=path, activation=activation, reason=reason,
                 guessed=found is None and not explicit and activation == "gelu")


def _plan_tag(name: str, tag: str, explicit: str | None) -> _Plan:
    """``name`` + a pretrained tag: the caller, the name, then open_clip's record of the tag's training."""
    import open_clip

    tag_cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    named = config_activation(name)
    if explicit:
        activation, reason = explicit, f"you chose activation={explicit}"
    elif named == "quickgelu":
        activation, reason = "quickgelu", f"open_clip's {name} uses QuickGELU"
    elif tag_cfg.get("quick_gelu") or tag.lower() == "openai":
        # open_clip 3.x builds ViT-L-14 + openai with GELU (it only warns); 2.x's OpenAI loader used QuickGELU
        activation, reason = "quickgelu", f"open_clip's pretrained tag {tag!r} was trained with QuickGELU"
    else:
        activation, reason = "gelu", f"open_clip's {name} with tag {tag!r} uses GELU"
    return _Plan(name, f"{name}/{tag}", pretrained=tag, remote=True, activation=activation, reason=reason,
                 create_kwargs=_override_activation(activation, named))


def _override_activation(activation: str | None, built: str | None) -> dict:
    """``create_model`` keywords that turn the config's activation ``built`` into ``activation``."""
    import open_clip

    if activation is None or activation == built:
        return {}
    if activation == "quickgelu":
        return {"force_quick_gelu": True}
    if _takes_any_keyword(open_clip.create_model):  # open_clip 3.x: model overrides as keywords
        return {"quick_gelu": False}
    return {}  # open_clip 2.x can only force QuickGELU; the built model is checked after loading


def _plan(source: str, pretrained: str | None, allow_pickle: bool, explicit: str | None) -> _Plan:
    carries_weights = source == "toy" or source.startswith(("local-dir:", "hf-hub:")) or Path(source).expanduser().is_dir()
    if pretrained and carries_weights:
        raise ModelLoadError(f"model {source!r} brings its own weights, so pretrained {pretrained!r} would be ignored; "
                             "drop pretrained, or give an open_clip name (e.g. ViT-L-14) with it.")
    if source == "toy":
        return _plan_folder(TOY_DIR, "toy", allow_pickle, explicit)
    if source.startswith("local-dir:"):
        return _plan_folder(Path(source[len("local-dir:"):]).expanduser(), source, allow_pickle, explicit)
    if source.startswith("hf-hub:"):
        reason = f"you chose activation={explicit}" if explicit else "from the hub model's open_clip_config.json"
        return _Plan(source, source, remote=True, activation=explicit, reason=reason,
                     create_kwargs=_override_activation(explicit, None))
    if Path(source).expanduser().is_dir():
        return _plan_folder(Path(source).expanduser(), source, allow_pickle, explicit)
    if Path(source).suffix in (".safetensors", *PICKLE_SUFFIXES):
        raise ModelLoadError(f"model {source!r} is a weights file; give the architecture as the model and the file as "
                             "pretrained, e.g. model ViT-L-14 with pretrained /path/model.safetensors.")
    if pretrained is None and source == DEFAULT_MODEL:
        pretrained = DEFAULT_PRETRAINED
    if pretrained is None:
        raise ModelLoadError(f"model {source!r} needs pretrained weights: a tag (see open_clip.list_pretrained()) "
                             "or a .safetensors file; random weights are useless for PEZ.")
    _check_name(source, pretrained)
    if Path(pretrained).suffix:
        path = Path(pretrained).expanduser()
        _check_weights_file(path, allow_pickle)
        return _plan_file(source, path, explicit)
    return _plan_tag(source, pretrained, explicit)


def _read_state_dict(path: Path, allow_pickle: bool) -> dict:
    """A state dict from safetensors (or, with ``allow_pickle``, a torch checkpoint), ``module.`` prefixes removed."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=not allow_pickle)
        state = state.get("state_dict", state) if isinstance(state, dict) else state.state_dict()
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_weights(model: torch.nn.Module, path: Path, allow_pickle: bool) -> None:
    """Load a local weights file strictly, as open_clip's ``load_checkpoint`` does (open_clip 2.20's reads
    only pickles, so the file is read here)."""
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed

    state = _read_state_dict(path, allow_pickle)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    resize_pos_embed(state, model)
    model.load_state_dict(state, strict=True)


def _tokenizer(plan: _Plan, model: torch.nn.Module, cache_dir: str | None):
    """open_clip's tokenizer for the model; CLIP's BPE ``SimpleTokenizer`` where open_clip 2.x returns a
    ``tokenize`` function (or a HF tokenizer for a hub CLIP) instead."""
    import open_clip

    try:
        extra = _takes(open_clip.get_tokenizer, cache_dir=cache_dir) if plan.remote else {}
        tokenizer, error = open_clip.get_tokenizer(plan.model_id, **extra), None
    except Exception as e:  # noqa: BLE001 - open_clip 2.x fails on hub CLIPs without `transformers`
        tokenizer, error = None, e
    if hasattr(tokenizer, "encode"):
        return tokenizer
    vocab = getattr(getattr(model, "token_embedding", None), "num_embeddings", None)
    if vocab is None and hasattr(model, "text"):
        vocab = getattr(getattr(model.text, "token_embedding", None), "num_embeddings", None)
    if vocab == 49408:  # CLIP's BPE vocabulary
        return _bpe_tokenizer()
    if error is not None:
        raise error
    return tokenizer


@functools.lru_cache(maxsize=1)
def _bpe_tokenizer():
    """open_clip 2.x's ``SimpleTokenizer``, callable like 3.x's (texts → [N, 77] ids); built once."""
    import open_clip

    class CallableTokenizer(open_clip.SimpleTokenizer):
        def __call__(self, texts, context_length: int = 77) -> torch.Tensor:
            return open_clip.tokenize(texts, context_length)

    return CallableTokenizer()


def _safe_names(filename: str) -> list[str]:
    """The ``.safetensors`` a hub repo keeps beside ``filename`` (open_clip's own naming)."""
    if filename.endswith(".safetensors"):
        return [filename]
    if filename == HUB_PICKLE:
        return [WEIGHTS_FILE]
    stem, suffix = os.path.splitext(filename)
    return [stem + ".safetensors"] if suffix in PICKLE_SUFFIXES else []


def _hub_safetensors(repo: str, filename: str, cache_dir: str | None) -> tuple[Path | None, str]:
    """(path, "") of the ``.safetensors`` beside ``repo``'s ``filename`` (from the hub cache, else downloaded),
    or (None, why there is none). Offline with neither file cached, the download's own error is raised."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    why, offline = f"{repo} has no .safetensors of them", None
    for name in _safe_names(filename):
        try:
            return Path(hf_hub_download(repo, name, cache_dir=cache_dir)), ""
        except Exception as e:  # noqa: BLE001 - not on the hub, not cached while offline, gated ...
            offline = e if _looks_offline(e) else offline
    if offline is not None:
        if not isinstance(try_to_load_from_cache(repo, filename, cache_dir=cache_dir), str):
            raise offline  # nothing of the model here: the download is what failed
        why = "no .safetensors of them is cached and the hub cannot be reached"
    return None, why


def _pickle_refusal(label: str, pickle: str, why: str) -> ModelLoadError:
    from open_clip.version import __version__

    return ModelLoadError(f"model {label}: open_clip {__version__} would unpickle its weights ({pickle}), which can "
                          f"run code, and {why}; pass the model's .safetensors as pretrained (e.g. {WEIGHTS_FILE} from "
                          "its Hugging Face repo) or use a model folder, upgrade open_clip_torch to 3.x (it reads .bin "
                          "files safely), or pass allow_pickle=True if you trust the file.")


def _safetensors_plan(plan: _Plan, cache_dir: str | None) -> _Plan:
    """``plan`` (a tag or hub model) with its weights as a local ``.safetensors`` read here, for an open_clip
    without ``weights_only`` (2.x), which would unpickle a ``.bin``/``.pt`` with a plain ``torch.load``; or a
    ``ModelLoadError`` before anything is unpickled (or downloaded, for a pickle-only URL)."""
    import open_clip
    from huggingface_hub import hf_hub_download

    if plan.model_id.startswith("hf-hub:"):
        repo = plan.model_id[len("hf-hub:"):]
        config = Path(hf_hub_download(repo, HUB_CONFIG, cache_dir=cache_dir))  # offline: "could not download"
        weights, why = _hub_safetensors(repo, HUB_PICKLE, cache_dir)
        if weights is None:
            raise _pickle_refusal(plan.label, f"{repo}/{HUB_PICKLE}", why)
        found = _plan_folder(config.parent, plan.label, False, plan.activation)  # the snapshot: a local-dir
        return replace(found, weights=weights, remote=True, reason=plan.reason, stated=plan.stated, folder=None)
    cfg = open_clip.get_pretrained_cfg(plan.model_id, plan.pretrained) or {}
    preprocess = {k: cfg[k] for k in ("mean", "std") if cfg.get(k)}
    hub, url = cfg.get("hf_hub") or "", cfg.get("url") or ""
    if not hub and str(plan.pretrained).lower() == "openai":  # the hub copy open_clip 3.x reads instead of the .pt
        hub = OPENAI_HUB.get(plan.model_id, "")
    if hub:  # open_clip 3.x prefers the hub too
        repo, filename = os.path.split(hub)
        weights, why = _hub_safetensors(repo, filename or HUB_PICKLE, cache_dir)
        pickle = f"{repo}/{filename or HUB_PICKLE}"
    elif url.endswith(".safetensors"):
        from open_clip.pretrained import download_pretrained_from_url

        weights, why, pickle = Path(download_pretrained_from_url(url, cache_dir=cache_dir)), "", ""
    else:  # e.g. the openai tags: a TorchScript/pickle .pt at a URL
        weights, why, pickle = None, "no .safetensors of them is known to it", url.rsplit("/", 1)[-1] or "no file"
    if weights is None:
        raise _pickle_refusal(plan.label, pickle, why)
    return replace(plan, weights=weights, preprocess=preprocess)


def _build(plan: _Plan, target: torch.device, cache_dir: str | None, allow_pickle: bool):
    """Create the model (weights from the plan's file or tag) and its tokenizer; returns them with the plan
    (for open_clip 2.x, a remote model's becomes its local ``.safetensors``)."""
    import open_clip

    safe = _takes(open_clip.create_model, weights_only=not allow_pickle)
    if plan.remote and plan.weights is None and not safe and not allow_pickle:  # 2.x would unpickle what it gets
        plan = _safetensors_plan(plan, cache_dir)
    if plan.weights is not None and not safe:  # open_clip 2.x: build, then read the file here
        no_downloads = _takes(open_clip.create_model, pretrained_hf=False)
        model = open_clip.create_model(plan.model_id, pretrained=None, device="cpu", **no_downloads,
                                       **plan.create_kwargs)
        _load_weights(model, plan.weights, allow_pickle)
        model = model.to(target)
    else:  # a tag or hub model; or a local file, which open_clip 3.x (it has ``weights_only``) reads itself
        pretrained = str(plan.weights) if plan.weights is not None else plan.pretrained
        model = open_clip.create_model(plan.model_id, pretrained=pretrained, device=target, cache_dir=cache_dir,
                                       **safe, **plan.create_kwargs)
    return model, _tokenizer(plan, model, cache_dir), plan


def _preprocess(model: torch.nn.Module, override: dict) -> tuple:
    """(mean, std, size) of the model's image preprocessing; a model folder's ``preprocess_cfg`` wins."""
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    try:
        from open_clip.model import get_model_preprocess_cfg  # not in open_clip 2.20
    except ImportError:
        get_model_preprocess_cfg = None
    visual = model.visual
    pp = dict(get_model_preprocess_cfg(model)) if get_model_preprocess_cfg else {}
    mean = override.get("mean") or pp.get("mean") or getattr(visual, "image_mean", None) or OPENAI_DATASET_MEAN
    std = override.get("std") or pp.get("std") or getattr(visual, "image_std", None) or OPENAI_DATASET_STD
    size = getattr(visual, "image_size", None) or pp.get("size") or override.get("size") or 224
    size = size[0] if isinstance(size, (tuple, list)) else size
    return mean, std, size


def _declared_words(plan: _Plan) -> list[str] | None:
    """The words of the model folder's ``pez_vocabulary.txt`` (None without one)."""
    path = plan.folder / VOCABULARY_FILE if plan.folder is not None else None
    return path.read_text(encoding="utf-8").split() if path is not None and path.is_file() else None


def _vocabulary_words(choice: str, plan: _Plan) -> list[str] | None:
    if choice == "full":
        return None
    words = _declared_words(plan)
    if words is None:
        raise ModelLoadError(f"model {plan.label} declares no vocabulary (no {VOCABULARY_FILE} in a model folder); "
                             f"use vocabulary='full', or put {VOCABULARY_FILE} (one word a line) in its folder.")
    return words


def load_clip(
    source: str = DEFAULT_MODEL,
    pretrained: str | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
    allow_pickle: bool = False,
    activation: str = "auto",
    vocabulary: str = "full",
) -> ClipBackbone:
    """Load a frozen CLIP as a :class:`ClipBackbone`.

    Args:
        source: ``toy``, an open_clip model name, ``hf-hub:org/repo``, ``local-dir:/path`` or a folder path.
        pretrained: for a model name: a pretrained tag (default ``openai`` for ViT-L-14) or a weights file.
        device: where the model lives (``auto``, ``cpu``, ``cuda`` ...).
        cache_dir: open_clip's download cache (default: its own).
        allow_pickle: also read ``.bin``/``.pt`` checkpoints (they can run code; off by default).
        activation: ``auto`` (decide from the evidence, see :mod:`~pez_nodes.core.clip.architecture`), ``gelu`` or
            ``quickgelu`` (OpenAI's CLIPs, e.g. SD 1.5's). The choice and its reason are in ``notes``.
        vocabulary: ``full`` (every token) or ``declared`` (only the words of the model folder's
            ``pez_vocabulary.txt``, e.g. the bundled toy model's 20 attribute words).
    """
    explicit = check_activation(activation)
    explicit = None if explicit == "auto" else explicit
    vocabulary = _check_vocabulary(vocabulary)
    if not isinstance(source, str) or not source.strip():
        raise ModelLoadError("model source is empty; give 'toy', an open_clip name such as ViT-L-14, or a folder.")
    source = source.strip()
    plan = _plan(source, pretrained, allow_pickle, explicit)
    words = _vocabulary_words(vocabulary, plan)
    target = resolve_device(device)
    quiet = _QuietOpenClip()
    logging.getLogger().addFilter(quiet)  # open_clip logs download failures itself; we raise one clear error
    hub = _HubAccess(plan.remote)
    try:
        with torch.inference_mode(False), warnings.catch_warnings(), hub:
            warnings.filterwarnings("ignore", message="QuickGELU mismatch")  # decided and noted here
            model, tokenizer, plan = _build(plan, target, cache_dir, allow_pickle)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear message
        what = f"{source}" + (f" / {pretrained}" if pretrained else "")
        text = " ".join(f"{type(e).__name__}: {e}".split())[:200]  # one line: the error's lines joined
        refused = _refused_pickle(e)
        if refused is not None:
            raise ModelLoadError(f"weights of model {what} are a pickle that torch's safe loader refused ({refused}); "
                                 "use the model's .safetensors, or pass allow_pickle=True if you trust the file.") from e
        if plan.remote and (_looks_offline(e) or (hub.unreachable and _missing_file(e))):
            raise _download_error(plan, what, source, pretrained, hub.unreachable) from e
        if "safetensor" in text.lower() or "header" in text.lower() or "deserializ" in text.lower():
            raise ModelLoadError(f"weights of model {what} are corrupt or not safetensors ({text}); re-download them.") from e
        if any(w in text for w in ("size mismatch", "Missing key", "Unexpected key", "changed!", "shape")):
            raise ModelLoadError(f"weights of model {what} do not fit its architecture ({text}); check the model name.") from e
        raise ModelLoadError(f"could not load model {what}: {text}") from e
    finally:
        logging.getLogger().removeFilter(quiet)
    mean, std, size = _preprocess(model, plan.preprocess)
    clip = ClipBackbone(model, tokenizer, plan.label, mean, std, size, vocabulary_words=words,
                        declared_words=_declared_words(plan))
    return _note_activation(clip, plan)


def _note_activation(clip: ClipBackbone, plan: _Plan) -> ClipBackbone:
    """Record which activation the model runs and why; refuse one that contradicts the caller's choice."""
    built = clip.activation
    if plan.activation is not None and built != plan.activation:
        raise ModelLoadError(f"model {plan.label} was built with {LABEL.get(built, built)} although {plan.reason}; "
                             "this open_clip version cannot change it for this source: use activation='auto' "
                             "or upgrade open_clip_torch.")
    note = f"activation {LABEL.get(built, built)}: {plan.reason}"
    if not plan.stated:
        clip.notes.append(note)
    if plan.guessed:
        warnings.warn(f"model {plan.label}: {note}", UserWarning, stacklevel=3)
    return clip


def _download_error(plan: _Plan, what: str, source: str, pretrained: str | None, reason: str | None) -> ModelLoadError:
    """One line: the model, why nothing could be downloaded, the fix, and where its weights are."""
    url, files = _weights_on_hub(plan)
    if plan.pretrained and not pretrained:  # the default tag (ViT-L-14: openai) was taken: say which
        what, pretrained = f"{what} / {plan.pretrained}", plan.pretrained
    reason = reason or "the download failed (offline, or the hub is unreachable)"
    where = f" (files: {url})" if url and not plan.model_id.startswith("hf-hub:") else ""  # hf-hub: the name says it
    return ModelLoadError(f"could not download model {what}: {reason}, and it is not cached here; "
                          f"{OFFLINE_HINT}{where}.",
                          download={"model": what, "source": source, "pretrained": pretrained, "url": url,
                                    "files": files, "reason": reason})


def _weights_on_hub(plan: _Plan) -> tuple[str, list[str]]:
    """(the hub page or URL of a remote model's weights, the files there that make the model); ("", []) unknown."""
    import open_clip

    endpoint = _hub_endpoint()
    if plan.model_id.startswith("hf-hub:"):
        return f"{endpoint}/{plan.model_id[len('hf-hub:'):]}", [HUB_CONFIG, WEIGHTS_FILE]
    cfg = open_clip.get_pretrained_cfg(plan.model_id, plan.pretrained) or {}
    hub = cfg.get("hf_hub") or ""
    if not hub and str(plan.pretrained).lower() == "openai":
        hub = OPENAI_HUB.get(plan.model_id, "")
    if hub:
        repo, filename = os.path.split(hub)
        return f"{endpoint}/{repo}", (_safe_names(filename or HUB_PICKLE) or [filename])[:1]
    url = cfg.get("url") or ""
    return url, [url.rsplit("/", 1)[-1]] if url else []


def _hub_endpoint() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return "https://huggingface.co"
    return str(getattr(constants, "ENDPOINT", "https://huggingface.co")).rstrip("/")


class _HubAccess:
    """For a remote model's build: is the model hub reachable? Where it is not, huggingface_hub is held offline
    (``HF_HUB_OFFLINE``, which it reads once at import, set on its ``constants`` for the block) and its logging
    quietened: a cached model loads from the cache at once, a missing one fails at once, with no retries.
    ``unreachable`` says why the hub cannot be used (None: it can, or the model is not remote)."""

    def __init__(self, remote: bool):
        self.remote, self.unreachable, self._restore = remote, None, None

    def __enter__(self) -> "_HubAccess":
        if not self.remote:
            return self
        try:
            from huggingface_hub import constants
        except ImportError:
            return self
        if constants.HF_HUB_OFFLINE:
            self.unreachable = "HF_HUB_OFFLINE switches the model hub off on this machine"
            return self
        self.unreachable = _unreachable(_hub_endpoint())
        if self.unreachable:
            hub_log = logging.getLogger("huggingface_hub")
            self._restore = (constants, hub_log, hub_log.level)
            constants.HF_HUB_OFFLINE = True
            hub_log.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc) -> None:
        if self._restore is not None:
            constants, hub_log, level = self._restore
            constants.HF_HUB_OFFLINE = False
            hub_log.setLevel(level)
            self._restore = None


def _unreachable(url: str, timeout: float = HUB_PROBE_S) -> str | None:
    """Why ``url``'s host (or the proxy this machine uses for it) cannot be reached — None when a TCP connection
    opens within ``timeout`` seconds. All of it (proxy settings, name lookup, connect) runs in a thread that is
    given up on after ``timeout``: a name lookup has no timeout of its own."""
    parts = urllib.parse.urlsplit(url)
    target = {"what": parts.hostname or url}
    outcome: list = []

    def connect() -> None:
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        try:
            proxies = urllib.request.getproxies()
            proxy = proxies.get(parts.scheme) or proxies.get("all")
            if proxy and not urllib.request.proxy_bypass(host):
                p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
                target["what"] = f"{host} (through the proxy {p.hostname})"
                host, port = p.hostname or "", p.port or 80
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(e)

    probe = threading.Thread(target=connect, name="pez-hub-probe", daemon=True)
    probe.start()
    probe.join(timeout)
    if outcome and outcome[0] is None:
        return None
    detail = (f"no answer in {timeout:g} s" if not outcome or isinstance(outcome[0], TimeoutError)
              else "name not resolved" if isinstance(outcome[0], socket.gaierror)
              else (outcome[0].strerror or type(outcome[0]).__name__).lower())
    return f"{target['what']} cannot be reached ({detail})"


def _missing_file(error: BaseException) -> bool:
    """A file was not found (in the cache, with the hub held offline), rather than e.g. corrupt or wrong weights."""
    names = {type(e).__name__ for e in _chain(error)}
    return bool(names & {"FileNotFoundError", "LocalEntryNotFoundError", "EntryNotFoundError", "OfflineModeIsEnabled"})


class _QuietOpenClip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "open_clip" not in record.pathname or record.levelno < logging.ERROR


def _looks_offline(error: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(error)}
    text = " ".join(str(e) for e in _chain(error)).lower()
    offline = {"LocalEntryNotFoundError", "ConnectionError", "ConnectError", "MaxRetryError", "OfflineModeIsEnabled",
               "Timeout", "NameResolutionError", "gaierror"}
    return bool(names & offline) or any(w in text for w in ("connection", "resolve", "offline", "network", "timed out"))


def _refused_pickle(error: BaseException) -> str | None:
    """What torch's ``weights_only`` loader refused in a pickle (e.g. ``builtins.open``), if that was the error."""
    for e in _chain(error):
        text = str(e)
        if "Weights only load failed" in text:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            return f"it names {found.group(1)}" if found else "it holds more than tensors"
    return None


def _chain(error: BaseException):
    seen = 0
    while error is not None and seen < 10:
        yield error
        error = error.__cause__ or error.__context__
        seen += 1
