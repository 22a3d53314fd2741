"""What a request from the network may ask of the webui's PEZ, and the webui owner's Settings that change it.

Webuis are often started with ``--listen``, ``--share`` or ``--api-auth`` so that other machines can use
them; PEZ's routes answer those machines, so every request is bounded (steps, restarts, images, pixels,
text, body size) and may only name the CLIPs the PEZ tab lists, unless the owner allows more under
Settings → PEZ. The defaults suit a GPU webui shared by a few people: the paper's 3000 steps, 16 restarts,
16 images of up to 40 megapixels each, a 64 MB request.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

SECTION = ("pez", "PEZ")


@dataclass(frozen=True)
class Limits:
    """The bounds of one request (a webui's Settings → PEZ, or these defaults outside a webui)."""

    max_steps: int = 3000
    max_restarts: int = 16
    max_top_k: int = 16
    max_images: int = 16
    max_megapixels: float = 40.0
    max_request_mb: float = 64.0
    max_text_chars: int = 20000
    allow_any_model: bool = False

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)


# (field, label in the webui's Settings, slider range or None for a checkbox)
SETTINGS = [
    ("max_steps", "PEZ requests: most steps", (1, 100000, 1)),
    ("max_restarts", "PEZ requests: most restarts (memory grows with them)", (1, 256, 1)),
    ("max_top_k", "PEZ requests: most candidates listed (top_k)", (1, 256, 1)),
    ("max_images", "PEZ requests: most images in one invert", (1, 256, 1)),
    ("max_megapixels", "PEZ requests: largest image, in megapixels (shrunk to the model's size on decoding)",
     (1, 400, 1)),
    ("max_request_mb", "PEZ requests: largest request body, in MB", (1, 1024, 1)),
    ("max_text_chars", "PEZ requests: longest text field, in characters", (100, 1000000, 100)),
    ("allow_any_model", "PEZ: let the routes and the tab load any CLIP — an open_clip name, hf-hub:, a path on "
                        "this server — which downloads from the model hub and reads the server's files; off: "
                        "only the CLIPs the PEZ tab lists", None),
]


def option_key(name: str) -> str:
    """The key of a limit in the webui's ``shared.opts`` (and ``/sdapi/v1/options``)."""
    return f"pez_{name}"


def from_options(opts) -> Limits:
    """The limits the webui owner set (``shared.opts``), each falling back to the default."""
    data = getattr(opts, "data", None) or {}
    values = {}
    for f in fields(Limits):
        value = data.get(option_key(f.name), f.default)
        try:
            values[f.name] = bool(value) if isinstance(f.default, bool) else type(f.default)(value)
        except (TypeError, ValueError):
            values[f.name] = f.default
    return Limits(**values)


def register(shared) -> None:
    """Add the limits to the webui's Settings (section PEZ); called from ``script_callbacks.on_ui_settings``.
    ``restrict_api``, as the webui's own security settings: ``/sdapi/v1/options`` cannot change them, so a
    caller cannot lift the limits that bound it; the owner sets them on the Settings page (or config.json)."""
    import gradio as gr

    defaults = Limits()
    for name, label, span in SETTINGS:
        default = getattr(defaults, name)
        if span is None:
            info = shared.OptionInfo(default, label, gr.Checkbox, section=SECTION, restrict_api=True)
        else:
            lo, hi, step = span
            info = shared.OptionInfo(default, label, gr.Slider, {"minimum": lo, "maximum": hi, "step": step},
                                     section=SECTION, restrict_api=True)
        shared.opts.add_option(option_key(name), info)
