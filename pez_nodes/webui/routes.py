"""``/pez/v1/invert``, ``/pez/v1/distill``, ``/pez/v1/concat``: PEZ for the webuis' headless users, JSON in and out.

Request: ``{"images": [base64 or data URL or a path, ...]}`` (invert), ``{"text": "..."}`` (distill) or
``{"texts": ["...", "..."]}`` (concat), plus ``"model"`` (default ``toy``; a file or folder in the webui's
``models/open_clip``, a preset, an open_clip name, ``hf-hub:``, a path; ``"webui"``: the loaded checkpoint's
own text encoder(s), with ``"clip_vision"`` / ``"clip_vision_2"`` files from ``models/clip_vision`` for
images — ``checkpoint_clip.py``), ``"pretrained"``, ``"device"`` (``auto``: the webui's own — ``device.py``;
``cpu``, ``cuda``, ``cuda:N``) and any ``PEZConfig`` field (``prompt_len``, ``steps``, ``seed``, ...). Response:
``{"prompt", "text", "similarity", "steps", "stop_reason", "model", "device", "notes"}`` — ``prompt`` is
``text`` (the learned prompt) written for the webuis' prompt box (:func:`for_webui_prompt`). Bad input is a 400 with
``{"error": "one clear line"}``, and the webui keeps serving. Runs in FastAPI's thread pool; progress and
Interrupt through ``shared.state`` (``progress.WebuiProgress``).
"""

from __future__ import annotations

import base64
import io
import re
import threading
from dataclasses import fields

from ..core import PEZConfig, concat, distill, invert, load_clip
from ..core.images import load_image
from . import checkpoint_clip, device, models
from .progress import WebuiProgress

CONFIG_KEYS = {f.name for f in fields(PEZConfig)} - {"device"}
VISION_KEYS = ("clip_vision", "clip_vision_2")
REQUEST_KEYS = {"images", "text", "texts", "model", "pretrained", "device", *VISION_KEYS} | CONFIG_KEYS
_models: dict = {}
_lock = threading.Lock()  # one optimisation at a time, as the webui runs one job at a time
MODELS_FOLDER: list = [None]  # the webui's models/open_clip, set by mount()
VISION_FOLDER: list = [None]  # the webui's models/clip_vision, set by mount()


def for_webui_prompt(text: str) -> str:
    """A learned prompt as the webuis' prompt box must receive it: ``\\``, ``(``, ``)``, ``[``, ``]`` escaped, or
    they read them as emphasis and prompt editing — escaped, the webui encodes exactly the tokens PEZ scored."""
    return re.sub(r"([\\()\[\]])", r"\\\1", text)


def load_model(body: dict, target=None):
    """The CLIP a request (or the tab) names, on ``target`` (default: the request's ``device``), loaded once and
    kept while the same one is asked for."""
    target = target if target is not None else device.pick(body.get("device"))[0]
    choice = str(body.get("model") or "toy").strip()
    if choice in checkpoint_clip.ALIASES:
        sd_model = checkpoint_clip.loaded_model()
        visions = [str(body.get(k) or "none") for k in VISION_KEYS]
        key = ("webui", id(sd_model), getattr(sd_model, "filename", None), *visions, str(target))
        make = lambda: checkpoint_clip.load(sd_model, visions, VISION_FOLDER[0], target)  # noqa: E731
    else:
        source, tag = models.resolve(choice, body.get("pretrained"), MODELS_FOLDER[0])
        key = (source, tag, str(target))
        make = lambda: load_clip(source, tag, device=target)  # noqa: E731
    if key not in _models:
        _models.clear()  # keep one model in memory
        _models[key] = make()
    return _models[key]


def decode_image(value, index: int):
    """A PIL image from base64 (optionally a ``data:image/...;base64,`` URL) or a file path on the server."""
    from PIL import Image

    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"images[{index}] is empty; give a base64 PNG/JPEG or a path.")
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return load_image(value)
    try:
        return Image.open(io.BytesIO(raw)).convert("RGB")
    except OSError as e:
        raise ValueError(f"images[{index}] is base64 but not an image ({e}); send a PNG or JPEG.") from e


def config_of(body: dict) -> PEZConfig:
    unknown = sorted(set(body) - REQUEST_KEYS)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; known: images/text/texts, model, pretrained, device, "
                         f"clip_vision(_2) and PEZConfig's fields ({', '.join(sorted(CONFIG_KEYS))}).")
    return PEZConfig(**{k: v for k, v in body.items() if k in CONFIG_KEYS}).validate()


def run(kind: str, body: dict, state) -> dict:
    """One request: parse, load (cached), optimise with the webui's progress; the result as JSON."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object.")
    config = config_of(body)
    if kind == "invert":
        images = body.get("images")
        if not isinstance(images, list) or not images:
            raise ValueError("images is missing or empty; give a list of base64 images (or server paths).")
        inputs = [decode_image(v, i) for i, v in enumerate(images)]
    elif kind == "distill":
        if not isinstance(body.get("text"), str) or not body["text"].strip():
            raise ValueError("text is missing or empty; give the prompt to distill.")
    elif not isinstance(body.get("texts"), list):
        raise ValueError("texts is missing; give a list of two or more prompts.")
    target, device_notes = device.pick(body.get("device"))
    with _lock:
        model = load_model(body, target)
        with WebuiProgress(state, config.steps) as progress:
            if kind == "invert":
                result = invert(model, inputs, config, progress)
            elif kind == "distill":
                result = distill(model, body["text"], config, progress)
            else:
                result = concat(model, body["texts"], config, progress)
            stopped = bool(state.interrupted)
    return {"prompt": for_webui_prompt(result.text), "text": result.text, "similarity": result.similarity,
            "steps": result.steps, "stop_reason": "interrupted" if stopped else result.stop_reason,
            "model": result.model, "device": str(target), "notes": [*result.notes, *device_notes]}


def mount(app, state, models_folder=None, vision_folder=None) -> None:
    """Add the three routes to the webui's FastAPI ``app``; ``models_folder`` is where listed CLIPs live,
    ``vision_folder`` the CLIP Vision files for the webui's own checkpoint."""
    MODELS_FOLDER[0], VISION_FOLDER[0] = models_folder, vision_folder
    from fastapi import Body
    from fastapi.responses import JSONResponse

    def endpoint(kind: str):
        def handler(body: dict = Body(...)):
            try:
                return run(kind, body, state)
            except ValueError as e:
                return JSONResponse({"error": str(e).splitlines()[0]}, status_code=400)
        handler.__name__ = f"pez_{kind}"
        return handler

    for kind in ("invert", "distill", "concat"):
        app.add_api_route(f"/pez/v1/{kind}", endpoint(kind), methods=["POST"])
