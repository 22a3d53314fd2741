"""Where PEZ runs inside a webui. ``auto`` is the webui's own device (``modules.devices.device``: the GPU it
generates on, or the CPU under ``--use-cpu all`` / ``--always-cpu``), as ComfyUI's nodes use ComfyUI's; a
device PEZ cannot run on (DirectML, XPU) falls back to the CPU, said in the result's notes."""

from __future__ import annotations

import torch

from ..core.loading import resolve_device

CHOICES = ("auto", "cpu", "cuda")
RUNS_PEZ = ("cpu", "cuda", "mps")


def webui_device() -> torch.device | None:
    """The webui's compute device, or None outside a webui."""
    try:
        from modules import devices
    except ImportError:
        return None
    found = getattr(devices, "device", None)
    return found if isinstance(found, torch.device) else None


def pick(choice) -> tuple[torch.device, tuple[str, ...]]:
    """(device, notes) for a request's ``device``: ``auto`` / empty → the webui's, else ``core.resolve_device``
    (``cuda`` on a machine without CUDA is one clear error)."""
    choice = str(choice or "auto").strip()
    if choice != "auto":
        try:
            return resolve_device(choice), ()
        except ValueError as e:  # the core's line ends with the CLI's flag: say the request's field instead
            raise ValueError(f"{str(e).split('; ')[0]}; use device \"auto\" (the webui's) or \"cpu\".") from None
    found = webui_device()
    if found is None:
        return torch.device("cpu"), ()
    if found.type not in RUNS_PEZ:
        return torch.device("cpu"), (f"PEZ ran on the CPU: the webui's device {found} is not one PEZ runs on "
                                     "(cpu, cuda, mps).",)
    return found, ()
