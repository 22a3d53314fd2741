"""``pez_nodes.webui.memory``: how the hooks read the webuis' calls, and that they never break them.

The real webuis run the hooks in ``test_webui_host.py`` (Forge: ``/sdapi/v1/unload-checkpoint`` releases PEZ's
model). Here the functions hooked are plain stand-ins with the webuis' signatures, to reach every way they are
called (a GPU sampler's room-making cannot happen on a CPU-only host).
"""

from __future__ import annotations

import types

import pytest
import torch

from pez_nodes.webui import memory, routes


def _forge():
    calls = []

    def free_memory(memory_required, device, keep_loaded=[], free_all=False):  # Forge's signature
        calls.append((memory_required, device, free_all))
        return "forge's own result"

    return types.SimpleNamespace(free_memory=free_memory), calls


@pytest.mark.parametrize("args, kwargs, expected", [
    ((1e30, torch.device("cpu")), {"free_all": True}, [{}]),                       # "Unload checkpoint"
    ((1e30, torch.device("cpu"), [], True), {}, [{}]),                              # free_all given positionally
    ((2e9, torch.device("cuda", 0), []), {}, [{"device": torch.device("cuda", 0)}]),  # a sampler wants VRAM
    ((2e9, torch.device("cpu")), {}, []),                                           # a CPU generation: kept
    ((), {"memory_required": 2e9, "device": "cuda:1"}, [{"device": "cuda:1"}]),
])
def test_forge_free_memory_releases_after_forge_on_unload_or_for_the_gpu(args, kwargs, expected):
    module, calls = _forge()
    released = []
    hooked = memory.install(memory_management=module, release=lambda **kw: released.append(kw) or [])
    assert hooked == ["memory_management.free_memory"]
    assert module.free_memory(*args, **kwargs) == "forge's own result" and len(calls) == 1
    assert released == expected


def test_hooks_wrap_once_never_raise_into_the_webui_and_a1111_is_hooked_by_its_unload(capsys):
    module, calls = _forge()
    failing = lambda **kw: 1 / 0  # noqa: E731
    assert memory.install(memory_management=module, release=failing) == ["memory_management.free_memory"]
    assert memory.install(memory_management=module, release=failing) == []  # already wrapped: not twice
    assert module.free_memory(1, "cpu", free_all=True) == "forge's own result"
    assert "PEZ: could not release its models after free_memory: division by zero" in capsys.readouterr().out
    released, loaded = [], []
    a1111 = types.SimpleNamespace(unload_model_weights=lambda sd_model=None, info=None: "unloaded")
    callbacks = types.SimpleNamespace(on_model_loaded=loaded.append)
    assert memory.install(a1111, None, callbacks, release=lambda **kw: released.append(kw) or []) == \
        ["sd_models.unload_model_weights", "script_callbacks.on_model_loaded"]
    assert a1111.unload_model_weights() == "unloaded" and released == [{}]
    loaded[0]("the new checkpoint")
    assert released == [{}, {"checkpoint_only": True}]


def test_release_idle_drops_only_what_was_asked_and_nothing_while_a_run_holds_the_models(toy):
    saved_models, saved_lms = dict(routes._models), dict(routes._lms)
    try:
        routes._models.clear(), routes._lms.clear()
        routes._models[("webui", "sd15.safetensors", "none", "none", "cpu")] = toy
        routes._lms[("/models/LLM/tiny", "cuda:0")] = types.SimpleNamespace(name="tiny")
        with routes.model_lock():
            assert routes.release_idle() == []  # a run holds them
        assert routes.release_idle(device="cpu") == [toy.name]  # only the CPU one
        assert list(routes._lms) == [("/models/LLM/tiny", "cuda:0")]
        assert routes.release_idle(checkpoint_only=True) == []  # an LM is not the checkpoint's CLIP
        assert routes.release_idle(device=torch.device("cuda", 0)) == ["tiny"] and not routes._lms
    finally:
        routes._models.clear(), routes._lms.clear()
        routes._models.update(saved_models), routes._lms.update(saved_lms)
