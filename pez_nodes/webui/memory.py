"""PEZ's cached models inside the webuis' memory management: released when the webui unloads its own.

A PEZ tab run or route keeps its CLIP (and guided decoding's LM) loaded for the next request (``routes.py``),
outside the webui's accounting. These hooks give that memory back whenever the webui clears its own:

* **Forge**: ``backend.memory_management.free_memory(memory_required, device, ...)`` is where Forge makes room —
  before a sampler loads its models and, with ``free_all``, for "Unload checkpoint"
  (``/sdapi/v1/unload-checkpoint`` → ``unload_model_weights`` → ``unload_all_models``). After Forge's own
  unloading, PEZ's models are released when Forge frees everything, or when they sit on the GPU it is making
  room on (a CPU generation does not drop them: the RAM is not what a sampler is short of).
* **AUTOMATIC1111**: ``sd_models.unload_model_weights`` ("Unload SD checkpoint to RAM" and the same API route).
* **Both**: a checkpoint load (``script_callbacks.on_model_loaded``) drops a CLIP PEZ copied from the previous
  checkpoint (PEZ's "webui checkpoint" choice).

A run that holds the models is never disturbed: the release is skipped while one runs (``routes.release_idle``).
Each hook wraps the webui's function once, keeps its signature's behaviour and returns what it returns.
"""

from __future__ import annotations

import functools
from typing import Callable

HOOKED = "_pez_release_hook"


def install(sd_models=None, memory_management=None, script_callbacks=None,
            release: Callable[..., list] | None = None) -> list[str]:
    """Hook the webui's unload functions (whichever exist); the names hooked. ``release(checkpoint_only=False,
    device=None)`` frees PEZ's idle models (default ``routes.release_idle``)."""
    if release is None:
        from .routes import release_idle as release
    hooked = []
    if memory_management is not None and callable(getattr(memory_management, "free_memory", None)):
        def after_free(*args, **kwargs):  # free_memory(memory_required, device, keep_loaded=[], free_all=False)
            device = kwargs.get("device", args[1] if len(args) > 1 else None)
            free_all = kwargs.get("free_all", args[3] if len(args) > 3 else False)
            if free_all:
                release()
            elif str(getattr(device, "type", device)).startswith("cuda"):
                release(device=device)

        if _wrap(memory_management, "free_memory", after_free):
            hooked.append("memory_management.free_memory")
    elif sd_models is not None and callable(getattr(sd_models, "unload_model_weights", None)):
        if _wrap(sd_models, "unload_model_weights", lambda *args, **kwargs: release()):
            hooked.append("sd_models.unload_model_weights")
    if script_callbacks is not None and callable(getattr(script_callbacks, "on_model_loaded", None)):
        script_callbacks.on_model_loaded(lambda sd_model: release(checkpoint_only=True))
        hooked.append("script_callbacks.on_model_loaded")
    return hooked


def _wrap(module, name: str, after: Callable) -> bool:
    """Make ``module.name`` call ``after`` with the same arguments once it has run; False if already wrapped."""
    original = getattr(module, name)
    if getattr(original, HOOKED, False):
        return False

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        try:
            after(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - freeing PEZ's cache must never break the webui's unload
            print(f"PEZ: could not release its models after {name}: {err}")
        return result

    setattr(wrapper, HOOKED, True)
    setattr(module, name, wrapper)
    return True
