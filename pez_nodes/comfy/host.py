"""The few ComfyUI services the nodes use — progress bar, live text on the node, interrupts, devices.

Each is looked up when called, so this module (and the node logic) imports and runs without ComfyUI:
outside a host, progress and text are dropped and nothing interrupts.
"""

from __future__ import annotations

import time


def _comfy(name: str):
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


def comfy_device():
    """ComfyUI's compute device, or None outside ComfyUI."""
    mm = _comfy("comfy.model_management")
    return mm.get_torch_device() if mm else None


def _prompt_server():
    server = _comfy("server")
    return getattr(getattr(server, "PromptServer", None), "instance", None) if server else None


def show_on_node(node_id: str | None, text: str) -> None:
    """Put ``text`` in the node's text box, where the live best prompt ran (ComfyUI's progress text).

    ComfyUI's frontend shows no ``ui`` text of a custom node by itself, and the live text is throttled,
    so without this the node would keep showing an intermediate step after it finished.
    """
    server = _prompt_server()
    if server is not None and node_id:
        server.send_progress_text(text, node_id)


class NodeProgress:
    """The core's callback inside ComfyUI: moves the node's progress bar, shows the best prompt on
    the node when it changes (and the step count at least each second), and raises ComfyUI's interrupt exception within one step of a click
    on Cancel (ComfyUI then stops the prompt and keeps serving)."""

    def __init__(self, node_id: str | None, total: int):
        utils = _comfy("comfy.utils")
        self.bar = utils.ProgressBar(total, node_id=node_id) if utils else None
        self.mm = _comfy("comfy.model_management")
        self.server = _prompt_server()
        self.node_id = node_id
        self.last_text = None
        self.last_sent = 0.0

    def __call__(self, step: int, total: int, text: str, sim: float) -> bool:
        if self.mm is not None:
            self.mm.throw_exception_if_processing_interrupted()
        if self.bar is not None:
            self.bar.update_absolute(step, total)
        now = time.monotonic()
        # a new best prompt within 0.25 s; otherwise the step count moves once a second
        due = now - self.last_sent > (0.25 if text != self.last_text else 1.0)
        if self.server is not None and self.node_id and due:
            self.last_text, self.last_sent = text, now
            self.server.send_progress_text(f"step {step}/{total}  similarity {sim:.4f}\n{text}", self.node_id)
        return False

    def should_stop(self) -> bool:
        """Whether Cancel was clicked: checked by the core after every step, without waiting for the GPU."""
        return bool(self.mm is not None and getattr(self.mm, "processing_interrupted", lambda: False)())
