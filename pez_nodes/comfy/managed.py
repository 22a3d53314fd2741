"""PEZ's models inside ComfyUI's model management: counted, offloaded when a sampler needs the memory, freed.

Each torch module a PEZ model owns (PEZ Load CLIP's open_clip model, PEZ CLIP from Workflow's fp32 copies of
the text encoders; CLIP Vision stays ComfyUI's own) gets a ``comfy.model_patcher.ModelPatcher``. Before a PEZ
node optimises, :func:`load` asks ``model_management.load_models_gpu`` for it, fully (PEZ's step needs every
weight on one device) — so ComfyUI counts it, frees room for it by offloading others, honours ``--cpu`` /
``--lowvram`` / ``--novram`` through its own device choice, and offloads it in turn when a sampler needs the
memory. ComfyUI keeps only weak references to loaded models: when its ``POST /free`` drops the cached node
outputs, PEZ's copy goes with them and its memory is handed back to the system.
"""

from __future__ import annotations

import threading
import weakref

import torch

from ..core import trim_heap


def _modules(model) -> list[torch.nn.Module]:
    """The torch modules PEZ itself holds for ``model`` (a ``ClipBackbone`` or a ``JointClip`` of them)."""
    towers = getattr(model, "towers", None)
    backbones = [t.text for t in towers] if towers is not None else [model]
    return [b.model for b in backbones if isinstance(getattr(b, "model", None), torch.nn.Module)]


def manage(model):
    """Register ``model``'s modules with ComfyUI's model management (on the device they were built on); returns
    ``model``. Outside ComfyUI (the pack's tests of the node bodies) it returns ``model`` untouched."""
    modules = _modules(model)
    if not modules:
        return model
    try:
        import comfy.model_management as mm
        import comfy.model_patcher
    except ImportError:
        return model
    patchers = []
    for module in modules:
        module.pez_managed = True
        load_device = next(module.parameters()).device
        offload = mm.text_encoder_offload_device() if load_device.type != "cpu" else load_device
        patchers.append(comfy.model_patcher.ModelPatcher(module, load_device=load_device, offload_device=offload))
    model.pez_patchers = patchers
    weakref.finalize(model, _trim_soon)  # freed by ComfyUI (POST /free): hand the pages back to the system
    return model


def _trim_soon() -> None:
    """``trim_heap`` once the model's tensors are gone too (a finalizer runs before its object's attributes go)."""
    timer = threading.Timer(1.0, trim_heap)
    timer.daemon = True
    timer.start()


def load(model) -> None:
    """Put ``model``'s modules on their device through ComfyUI (offloading others if it must)."""
    patchers = getattr(model, "pez_patchers", None)
    if patchers:
        import comfy.model_management as mm

        mm.load_models_gpu(patchers, force_full_load=True)


def loaded() -> list[torch.nn.Module]:
    """The modules of PEZ models that ComfyUI counts as loaded now."""
    import comfy.model_management as mm

    return [m.model.model for m in mm.current_loaded_models
            if m.model is not None and getattr(m.model.model, "pez_managed", False)]
