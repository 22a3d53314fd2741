"""``/pez/v1/invert``, ``/pez/v1/distill``, ``/pez/v1/concat``, ``/pez/v1/unload``: PEZ for the webuis' headless
users, JSON in and out, registered as the webui registers its own API.

Request: ``{"images": [base64 or data URL, ...]}`` (invert), ``{"text": "..."}`` (distill) or
``{"texts": ["...", "..."]}`` (concat), plus ``"model"`` (default ``toy``; one of the CLIPs the PEZ tab lists: a
file or folder in the webui's ``models/open_clip``, a preset; ``"webui"``: the loaded checkpoint's own text
encoder(s), with ``"clip_vision"`` / ``"clip_vision_2"`` files from ``models/clip_vision`` for images —
``checkpoint_clip.py``), ``"device"`` (``auto``: the webui's own — ``device.py``; ``cpu``, ``cuda``, ``cuda:N``)
and any ``PEZConfig`` field (``prompt_len``, ``steps``, ``seed``, ...) within the owner's limits
(``limits.py``; what is checked: ``request.py``); with ``"method": "guided"``, ``"lm"``: the language model that
writes the prompt, a bundled toy LM or a folder in the webui's ``models/LLM`` (default with the toy CLIP:
``toy_lm_small``). Response: ``{"prompt", "text", "similarity", "steps", "stop_reason", "model", "method", "lm",
"device", "notes"}`` — ``prompt`` is ``text`` (the learned prompt) written for the webuis'
prompt box (:func:`for_webui_prompt`). Bad input is a 400 with ``{"error": "one clear line"}``, a bug a 500 with
one line (the traceback on the webui's console), and the webui keeps serving.

The routes exist only when the webui serves its API (``--api``), and carry the same dependencies as the
webui's own ``/sdapi/v1/*`` routes, so ``--api-auth`` guards them too. A run holds the webui's queue lock
(``modules.call_queue.queue_lock``) for its whole length: PEZ waits behind generation and generation behind PEZ,
exactly as two webui jobs do; progress and Interrupt go through ``shared.state`` (``progress.WebuiProgress``).
"""

from __future__ import annotations

import base64
import gc
import json
import re
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..core import concat, decode_image, distill, invert, load_clip, trim_heap
from . import checkpoint_clip, device, model_choices
from .limits import Limits
from .progress import WebuiProgress
from .request import VISION_KEYS, PEZRequest, parse

__all__ = ["HOST", "VISION_KEYS", "Job", "configure", "for_webui_prompt", "load_lm", "load_model", "mount", "run",
           "unload"]

_models: dict = {}
_lms: dict = {}  # guided decoding's language model, cached as the CLIP is
_lock = threading.Lock()  # the cached models: held by a run (and the txt2img script) while it uses them
API_ROUTE = "/sdapi/v1/txt2img"  # the webui's own API: its dependencies are ours
DEFAULT_MAX_SIDE = 224  # images decoded for a model of unknown input size: short side 448 px or more


@dataclass
class Host:
    """What ``mount`` learns from the webui (defaults: outside a webui, as in the no-webui tests)."""

    state: object = None
    queue_lock: object = field(default_factory=threading.Lock)  # the webui's call_queue.queue_lock
    models_folder: Path | None = None  # <webui>/models/open_clip
    vision_folder: Path | None = None  # <webui>/models/clip_vision
    limits: object = Limits  # () -> Limits: the owner's Settings → PEZ
    lm_folder: Path | None = None  # <webui>/models/LLM


HOST = Host()


class Job:
    """One PEZ run as the webui's queue sees it: ``cancel()`` before it starts keeps it from running, after
    it starts interrupts it (through ``state``); ``on_start`` runs when it takes the queue lock."""

    def __init__(self, on_start=None):
        self.on_start = on_start
        self.started, self.finished, self.cancelled = threading.Event(), threading.Event(), threading.Event()

    def cancel(self, state) -> None:
        """Drop the run if it waits; interrupt it if it runs; nothing once it has ended (nor to another job)."""
        if self.finished.is_set():
            return
        self.cancelled.set()
        if self.started.is_set() and state is not None:
            state.interrupt()


def for_webui_prompt(text: str) -> str:
    """A learned prompt as the webuis' prompt box must receive it: ``\\``, ``(``, ``)``, ``[``, ``]`` escaped, or
    they read them as emphasis and prompt editing — escaped, the webui encodes exactly the tokens PEZ scored."""
    return re.sub(r"([\\()\[\]])", r"\\\1", text)


def load_model(body: dict, target=None):
    """The CLIP a (checked) request or the txt2img script names, on ``target`` (default: the request's
    ``device``), loaded once and kept while the same one is asked for. The webui's checkpoint is keyed on its
    identity (file, hash and a fingerprint of its weights: AUTOMATIC1111 loads a same-architecture checkpoint
    into the same model object)."""
    target = target if target is not None else device.pick(body.get("device"))[0]
    choice = str(body.get("model") or "toy").strip()
    if choice in checkpoint_clip.ALIASES:
        sd_model = checkpoint_clip.loaded_model()
        visions = [str(body.get(k) or "none") for k in VISION_KEYS]
        key = ("webui", *checkpoint_clip.identity(sd_model), *visions, str(target))
        make = lambda: checkpoint_clip.load(sd_model, visions, HOST.vision_folder, target)  # noqa: E731
    else:
        source, tag = model_choices.resolve(choice, body.get("pretrained"), HOST.models_folder)
        key = (source, tag, str(target))
        make = lambda: load_clip(source, tag, device=target)  # noqa: E731
    if key not in _models:
        _free(_models)  # keep one model in memory
        _models[key] = make()
    return _models[key]


def load_lm(choice: str, target):
    """The language model a checked request names (a choice of ``model_choices.lm_choices``) on ``target``,
    loaded once and kept while the same one is asked for."""
    source = model_choices.resolve_lm(choice, HOST.lm_folder)
    key = (source, str(target))
    if key not in _lms:
        from ..lm.load import load_lm as load

        _free(_lms)  # keep one LM in memory
        try:
            _lms[key] = load(source, device=target)
        except ValueError as exc:  # the caller named a choice: the server's folder stays unsaid
            raise ValueError(str(exc).replace(str(source), choice)) from None
    return _lms[key]


def model_lock():
    """Hold the cached model (for a run already inside a webui job: the txt2img script)."""
    return _lock


def unload() -> dict:
    """Release the cached CLIP and LM (RAM, and VRAM on a GPU); a ``RuntimeError`` while a run holds them."""
    if not _lock.acquire(blocking=False):
        raise RuntimeError("a PEZ run is using the model; unload after it ends (or interrupt it).")
    try:
        names = [getattr(m, "name", str(k[0])) for cache in (_models, _lms) for k, m in cache.items()]
        _free(_models, _lms)
        return {"unloaded": names}
    finally:
        _lock.release()


def release_idle(checkpoint_only: bool = False, device=None) -> list[str]:
    """Release the cached models no run is using (``memory.py``'s hooks: the webui unloads its own); the names
    released. ``checkpoint_only``: only a CLIP copied from the webui's checkpoint; ``device``: only models on
    that kind of device (e.g. the GPU a sampler is making room on). Nothing while a run holds them."""
    if not _lock.acquire(blocking=False):
        return []
    try:
        kind = None if device is None else str(getattr(device, "type", device)).split(":")[0]
        names = []
        for cache in (_models, _lms):
            for key in [k for k in cache if (not checkpoint_only or k[0] == "webui")
                        and (kind is None or str(k[-1]).split(":")[0] == kind)]:
                names.append(getattr(cache[key], "name", str(key[0])))
                del cache[key]
        if names:
            _free()
        return names
    finally:
        _lock.release()


def _free(*caches: dict) -> None:
    for cache in caches:
        cache.clear()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 — freeing is best effort
        pass
    trim_heap()


def run(kind: str, body, job: Job | None = None) -> dict:
    """One request: check it (400s before waiting), wait for the webui's queue, load (cached), optimise with
    the webui's progress; the result as JSON."""
    request = parse(kind, body, HOST.limits(), HOST.models_folder, HOST.vision_folder, HOST.lm_folder)
    target, device_notes = device.pick(request.device)
    job = job or Job()
    state = HOST.state
    with HOST.queue_lock:
        if job.cancelled.is_set():
            job.finished.set()
            return {"prompt": "", "text": "", "similarity": 0.0, "steps": 0, "stop_reason": "interrupted",
                    "model": request.model.get("model") or "toy", "method": request.config.method, "lm": request.lm,
                    "device": str(target), "notes": ["interrupted before it started"]}
        job.started.set()
        try:
            if job.on_start is not None:
                job.on_start()
            with _lock:
                model = load_model({**request.model, "device": request.device}, target)
                lm = load_lm(request.lm, target) if request.lm else None
                fluent = _fluency_lm(model, request, target)
                with WebuiProgress(state, request.config.steps, stop=job.cancelled.is_set) as progress:
                    result = _optimise(model, request, progress, lm, fluent)
                    stopped = bool(getattr(state, "interrupted", False)) or job.cancelled.is_set()
        finally:
            job.finished.set()
    return {"prompt": for_webui_prompt(result.text), "text": result.text, "similarity": result.similarity,
            "steps": result.steps, "stop_reason": "interrupted" if stopped else result.stop_reason,
            "model": result.model, "method": result.method, "lm": lm.name if lm is not None else None,
            "device": str(target), "notes": [*result.notes, *device_notes]}


def _fluency_lm(model, request: PEZRequest, target):
    """The fluency term's LM: the CLIP's own bundled one (the toy CLIP's toy_lm_small), or one clear error."""
    if not request.config.fluency or request.config.method == "guided":
        return None
    from ..lm.load import default_fluency_lm

    name = default_fluency_lm(getattr(model, "name", ""))
    if name is None:
        raise ValueError(f"fluency in the webui uses the CLIP's own bundled LM, and {getattr(model, 'name', 'this model')} "
                         "has none (the toy CLIP's is toy_lm_small); set fluency 0, or for readable prompts choose "
                         "method guided with a language model.")
    return load_lm(name, target)


def _optimise(model, request: PEZRequest, progress, lm=None, fluency_lm=None):
    """The core's run of the request; ``lm``: guided decoding's language model (one step: one decoded token),
    ``fluency_lm``: the fluency term's."""
    lms = {"guide_lm": lm, "fluency_lm": fluency_lm}
    if request.kind == "invert":
        side = getattr(model, "image_size", None) or DEFAULT_MAX_SIDE
        images = [decode_image(raw, f"images[{i}]", side) for i, raw in enumerate(request.images)]
        return invert(model, images, request.config, progress, **lms)
    if request.kind == "distill":
        return distill(model, request.text, request.config, progress, **lms)
    return concat(model, request.texts, request.config, progress, **lms)


def image_field(data: bytes) -> str:
    """An image file's bytes as a request's ``images`` entry (base64)."""
    return base64.b64encode(data).decode("ascii")


def api_dependencies(app) -> list | None:
    """The dependencies the webui's own API routes carry (its ``--api-auth`` check; none without it), read
    from ``/sdapi/v1/txt2img``, which only the webui's ``Api`` adds; None when the webui does not serve its
    API (started without ``--api``; other extensions may add ``/sdapi/v1/*`` routes of their own)."""
    for route in getattr(app, "routes", []):
        if getattr(route, "path", "") == API_ROUTE and hasattr(route, "dependencies"):
            return list(route.dependencies)
    return None


def configure(state, models_folder=None, vision_folder=None, queue_lock=None, limits=None, lm_folder=None) -> None:
    """What every PEZ run in this webui uses (routes, tab, txt2img script): ``state`` (``shared.state``), the
    CLIP folders, the webui's ``queue_lock``, ``limits`` (() -> the owner's ``Limits``) and the LM folder
    (default: ``models/LLM`` beside ``models_folder``)."""
    HOST.state, HOST.models_folder, HOST.vision_folder = state, models_folder, vision_folder
    HOST.lm_folder = lm_folder or (model_choices.lm_folder(Path(models_folder).parent) if models_folder else None)
    if queue_lock is not None:
        HOST.queue_lock = queue_lock
    if limits is not None:
        HOST.limits = limits


def mount(app, api_auth: bool = False) -> bool:
    """Add the routes to the webui's FastAPI ``app`` beside its own API, with the same dependencies; not at all
    when the webui serves no API. ``api_auth``: the webui was started with ``--api-auth`` (then the routes are
    added only with its check). Returns whether they were added."""
    dependencies = api_dependencies(app)
    if dependencies is None:
        print("[pez] the webui serves no API (start it with --api for /pez/v1/*); the PEZ tab works without it", flush=True)
        return False
    if api_auth and not dependencies:
        print("[pez] --api-auth is set but the webui's API routes carry no check: /pez/v1/* not added", flush=True)
        return False
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    def answer(work):
        async def handler(request):
            try:
                body = await _json_body(request, HOST.limits().max_request_bytes)
                return await run_in_threadpool(work, body)
            except ValueError as e:
                return JSONResponse({"error": _line(e)}, status_code=400)
            except RuntimeError as e:
                return JSONResponse({"error": _line(e)}, status_code=409)
            except Exception as e:  # noqa: BLE001 — a bug: one line to the caller, the traceback on the console
                traceback.print_exc()
                return JSONResponse({"error": f"PEZ failed ({type(e).__name__}: {_line(e)}); the webui's console has "
                                              "the traceback — please report it."}, status_code=500)
        handler.__annotations__ = {"request": Request}  # a class, not a string: FastAPI passes the request
        return handler

    for kind in ("invert", "distill", "concat"):
        handler = answer(lambda body, kind=kind: run(kind, body))
        handler.__name__ = f"pez_{kind}"
        app.add_api_route(f"/pez/v1/{kind}", handler, methods=["POST"], dependencies=dependencies)
    unload_handler = answer(lambda body: unload())
    unload_handler.__name__ = "pez_unload"
    app.add_api_route("/pez/v1/unload", unload_handler, methods=["POST"], dependencies=dependencies)
    return True


async def _json_body(request, limit: int):
    """The request's JSON, read up to ``limit`` bytes: the rest of a larger body is read and dropped (the
    connection stays sound for the 400), never kept."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise ValueError(f"the request is {size / 2**20:.0f} MB, more than this webui takes ({limit / 2**20:.0f} MB); "
                         "send fewer or smaller images.")
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"the request body is not JSON ({e.__class__.__name__} at byte {getattr(e, 'pos', 0)}); "
                         "send a JSON object.") from None


def _line(e: BaseException) -> str:
    text = str(e)
    return text.splitlines()[0] if text.strip() else type(e).__name__
