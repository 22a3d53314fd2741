"""Where PEZ runs inside a webui. ``auto`` is the webui's own device (``modules.devices.device``: the GPU it
generates on, or the CPU under ``--use-cpu all`` / ``--always-cpu``), as ComfyUI's nodes use ComfyUI's; a
device PEZ cannot run on (DirectML, XPU) falls back to the CPU, said in the result's notes."""

from __future__ import annotations

import torch

from ..core import RUNS_PEZ, resolve_device

CHOICES = ("auto", "cpu", "cuda")


def webui_device() -> torch.device | None:
    """The webui's compute device, or None outside a webui."""
    try:
        from modules import devices
    except ImportError:
        return None
    found = getattr(devices, "device", None)
    return found if isinstance(found, torch.device) else None


def pick(choice) -> tuple[torch.device, tuple[str, ...]]:
    """(device, notes) for a request's ``device``: ``auto`` / empty → the webui's (the CPU outside a webui),
    else ``core.resolve_device`` (``cuda`` on a machine without CUDA is one clear error)."""
    found = webui_device() or torch.device("cpu")
    device = resolve_device(str(choice or "auto"), host=found)
    if device.type in RUNS_PEZ:
        return device, ()
    return torch.device("cpu"), (f"PEZ ran on the CPU: the webui's device {found} is not one PEZ runs on "
                                 f"({', '.join(RUNS_PEZ)}).",)
