"""One PEZ request from the network, checked before it waits for the webui: JSON types, the owner's limits
(``limits.py``), the CLIPs it may name, and its images as base64 only.

Nothing a request says reaches the server's file system or the model hub unless the owner allows other
sources: ``model`` is one of the CLIPs the PEZ tab lists, ``clip_vision`` one of the files listed in
``models/clip_vision``, ``lm`` (``method="guided"``'s language model) one of the bundled toy LMs or a folder
listed in ``models/LLM`` (always: "any CLIP" in Settings does not extend to LMs), and an image is the bytes
of a PNG / JPEG / WebP / BMP / GIF / TIFF, never a path.
Images stay compressed until the run holds the webui (their pixel count is read from the header here), so a
queued request holds its bytes, never full-size pixels. Every refusal is one ``ValueError`` line (a 400)
that names the field and the fix, and never echoes a payload.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass, field, fields

from ..core import METHODS, PEZConfig, task_config
from . import checkpoint_clip, clip_vision, model_choices
from .limits import SETTINGS, Limits
from .model_choices import quoted

CONFIG_KEYS = {f.name for f in fields(PEZConfig)} - {"device"}
WEBUI_METHODS = tuple(METHODS)
VISION_KEYS = ("clip_vision", "clip_vision_2")
KINDS = ("invert", "distill", "concat")
REQUEST_KEYS = {"images", "text", "texts", "model", "pretrained", "device", "lm", *VISION_KEYS} | CONFIG_KEYS
TEXT_FIELDS = ("model", "pretrained", "device", "lm", *VISION_KEYS)
# guided decoding's bounds in a request (each step scores beams × candidates texts)
MAX_BEAMS, MAX_CANDIDATES, MAX_LM_WEIGHT, MAX_GUIDE_CHARS = 32, 64, 10.0, 500
IMAGE_FORMATS = ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"]  # what Pillow may parse from the network
MAX_TEXTS = 64
SETTING = "Settings → PEZ"


@dataclass
class PEZRequest:
    """A checked request: its kind, config, CLIP choice, device and inputs (images still compressed)."""

    kind: str
    config: PEZConfig
    model: dict  # model, pretrained, clip_vision, clip_vision_2, as load_model reads them
    device: str | None
    lm: str | None = None  # method guided: one of model_choices.lm_choices
    images: list[bytes] = field(default_factory=list)
    text: str | None = None
    texts: list[str] | None = None


def parse(kind: str, body, limits: Limits, folder=None, vision_folder=None, lm_folder=None) -> PEZRequest:
    """``body`` (parsed JSON) as a :class:`PEZRequest`, or one ``ValueError`` line. ``folder``,
    ``vision_folder``, ``lm_folder``: the webui's ``models/open_clip``, ``models/clip_vision``, ``models/LLM``."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object, e.g. {\"text\": \"a cat\"}.")
    unknown = sorted(set(body) - REQUEST_KEYS)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown[:5]}; known: images/text/texts, model, pretrained, device, lm, "
                         f"clip_vision(_2) and PEZConfig's fields ({', '.join(sorted(CONFIG_KEYS))}).")
    for key in TEXT_FIELDS:
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ValueError(f"{key} must be a string (got {type(body[key]).__name__}).")
    for key in CONFIG_KEYS:
        if key in body and len(json.dumps(body[key])) > limits.max_text_chars:
            raise ValueError(f"{key} is longer than this webui allows ({limits.max_text_chars} characters); shorten it.")
    for key in ("compile", "compile_step"):
        if body.get(key) not in (None, False, "off"):
            raise ValueError(f"{key} is not taken from a request (it costs tens of seconds of compilation each "
                             "time); leave it out.")
    config = task_config(kind, **{k: v for k, v in body.items() if k in CONFIG_KEYS}).validate()  # omitted: the task's
    for name in ("steps", "restarts", "top_k"):
        _at_most(name, getattr(config, name), getattr(limits, f"max_{name}"), f"max_{name}")
    check_guided(config)
    choice = check_model(body, limits, folder, vision_folder)
    request = PEZRequest(kind, config, choice, body.get("device"), lm=check_lm(body, config, choice, lm_folder))
    if kind == "invert":
        images = body.get("images")
        if not isinstance(images, list) or not images:
            raise ValueError("images is missing or empty; give a list of base64 images (PNG, JPEG or WebP bytes).")
        _at_most("the number of images", len(images), limits.max_images, "max_images")
        request.images = [image_bytes(v, i, limits) for i, v in enumerate(images)]
    elif kind == "distill":
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is missing or empty; give the prompt to distill.")
        _text_length("text", text, limits)
        request.text = text
    else:
        texts = body.get("texts")
        if not isinstance(texts, list):
            raise ValueError("texts is missing; give a list of two or more prompts.")
        _at_most("the number of texts", len(texts), MAX_TEXTS)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{i}] is not a text ({type(t).__name__}); give a list of prompts.")
            _text_length(f"texts[{i}]", t, limits)
        request.texts = texts
    return request


def allowed_models(folder=None) -> list[str]:
    """The CLIP choices a request may name without the owner's "any CLIP" setting: the tab's list."""
    return [*model_choices.choices(folder), *checkpoint_clip.ALIASES, "toy"]


def check_model(body: dict, limits: Limits, folder=None, vision_folder=None) -> dict:
    """The request's CLIP fields, refused unless the PEZ tab lists them (or the owner allows any source)."""
    choice = {k: (body.get(k) or "").strip() or None for k in ("model", "pretrained", *VISION_KEYS)}
    if limits.allow_any_model:
        return choice
    listed = allowed_models(folder)
    if choice["model"] is not None and choice["model"] not in listed:
        shown = ", ".join(repr(c) for c in model_choices.choices(folder)[:8])
        raise ValueError(f"model {quoted(choice['model'])} is not one of the CLIPs this webui offers ({shown}"
                         f"{', …' if len(model_choices.choices(folder)) > 8 else ''}); choose one of them, or put the CLIP "
                         f"in models/open_clip; the webui's owner may allow other sources in {SETTING}.")
    if choice["pretrained"] is not None:
        raise ValueError("pretrained is taken only for a CLIP named freely, which this webui does not allow; "
                         f"leave it out (the listed CLIPs know their weights) or the owner allows it in {SETTING}.")
    visions = clip_vision.choices(vision_folder)
    for key in VISION_KEYS:
        if choice[key] is not None and choice[key] not in visions:
            raise ValueError(f"{key} {quoted(choice[key])} is not in this webui's models/clip_vision; choose one of "
                             f"{', '.join(visions[:8])}{', …' if len(visions) > 8 else ''}.")
    return choice


def check_guided(config: PEZConfig) -> None:
    """Guided decoding's fields within a request's bounds (the core has checked their types)."""
    _at_most("beams", config.beams, MAX_BEAMS)
    _at_most("candidates", config.candidates, MAX_CANDIDATES)
    if config.lm_weight > MAX_LM_WEIGHT:
        raise ValueError(f"lm_weight={config.lm_weight!r} is more than this webui allows ({MAX_LM_WEIGHT:g}); give a "
                         f"weight from 0 to {MAX_LM_WEIGHT:g} (guided's default: 0.05).")
    for name in ("start_text", "instruction"):
        text = getattr(config, name) or ""
        if len(text) > MAX_GUIDE_CHARS:
            raise ValueError(f"{name} has {len(text)} characters, more than this webui takes ({MAX_GUIDE_CHARS}); "
                             "shorten it.")


def check_lm(body: dict, config: PEZConfig, choice: dict, lm_folder=None) -> str | None:
    """The request's ``lm``: checked against the listed LMs whenever given, kept for ``method="guided"`` only
    (default there: the toy CLIP's toy_lm_small; another CLIP must name one)."""
    name = body.get("lm")
    name = name.strip() if isinstance(name, str) and name.strip() else None
    if name is not None:
        name = model_choices.check_lm(name, lm_folder)
    if config.method != "guided":
        return None
    name = name or model_choices.default_lm(choice.get("model"))
    if name is None:
        listed = ", ".join(repr(c) for c in model_choices.lm_choices(lm_folder)[:8])
        raise ValueError(f"method guided needs a language model for this CLIP: set lm to one of {listed} (the "
                         f"bundled toy LMs and the webui's models/{model_choices.LM_FOLDER} folders).")
    return name


def image_bytes(value, index: int, limits: Limits) -> bytes:
    """The bytes of ``images[index]`` (base64, line-wrapped or not, or a ``data:image/...;base64,`` URL),
    checked to be an image within the pixel limit — read from its header, not decoded."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"images[{index}] is empty; give the image as base64 (PNG, JPEG or WebP bytes).")
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"images[{index}] is not base64: the routes take an image as its file's bytes in base64 "
                         "(or a data: URL), as the webui's own API does, never as a path.") from None
    try:
        with Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
        raise ValueError(f"images[{index}] is base64 but not an image ({type(e).__name__}); send a PNG, JPEG or "
                         "WebP file's bytes.") from None
    megapixels = width * height / 1e6
    if megapixels > limits.max_megapixels:
        raise ValueError(f"images[{index}] is {width}x{height} ({megapixels:.0f} megapixels), more than this webui "
                         f"takes ({limits.max_megapixels:g}); downscale it (CLIP sees 224 px), or the owner raises "
                         f"the limit in {SETTING}.")
    return raw


def _at_most(name: str, value: int, limit: int, setting: str | None = None) -> None:
    if value > limit:
        label = dict((k, v) for k, v, _ in SETTINGS).get(setting)
        where = f"; the webui's owner may raise '{label}' in {SETTING}" if label else ""
        raise ValueError(f"{name} is {value}, more than this webui allows ({limit}); ask for at most {limit}{where}.")


def _text_length(name: str, text: str, limits: Limits) -> None:
    if len(text) > limits.max_text_chars:
        raise ValueError(f"{name} has {len(text)} characters, more than this webui takes ({limits.max_text_chars}); "
                         "shorten it (CLIP reads 77 tokens).")
