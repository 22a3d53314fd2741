"""Where PEZ runs: the one place a device name becomes a ``torch.device`` (every front end comes here).

A host with a device of its own (ComfyUI's model manager, a webui) passes it as ``host``: ``auto`` then
means the host's device, as the host's own nodes use it.
"""

from __future__ import annotations

import re

import torch

RUNS_PEZ = ("cpu", "cuda", "mps")
CHOICES = "auto, cpu, cuda, cuda:N or mps"
_NAME = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device_name(name) -> str:
    """``name`` lower-cased if it could name a device PEZ runs on (checked before any model loads; whether
    this machine has it is :func:`resolve_device`'s question), else a ``ValueError`` naming the choices."""
    text = str(name or "auto").strip().lower()
    if not _NAME.fullmatch(text):
        raise ValueError(f"device {str(name)!r} cannot run PEZ; use {CHOICES}.")
    return text


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str | torch.device = "auto", host: torch.device | None = None) -> torch.device:
    """``"auto"`` → ``host`` if given, else CUDA if available, else MPS, else CPU; any other name is checked
    to exist on this machine."""
    if isinstance(name, torch.device):
        return name
    text = check_device_name(name)
    if text == "auto":
        if host is not None:
            return host
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    device = torch.device(text)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {text!r} was asked for but CUDA is not available on this machine; use cpu or auto.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {text!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}; use one of them or auto.")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"device {text!r} was asked for but MPS is not available on this machine; use cpu or auto.")
    return device



def trim_heap() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise, and the process's RSS stays up after a
    model is freed); a no-op where there is no glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
