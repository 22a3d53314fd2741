"""The reference CLIP: the paper's larger CLIP "not used during optimisation" that judges generations.

For the toy world it is a second toy CLIP trained independently of the one PEZ optimises against
(another seed and dataset, wider: text 96 / vision 128, 5 layers instead of 3 / 4); see
``tools/train_toy_clip.py``. PEZ never optimises against it.
"""

from __future__ import annotations

from ..core import BUNDLED_MODELS

REFERENCE_DIR = BUNDLED_MODELS / "toy_reference"


def load_reference_clip(device: str = "cpu"):
    """The bundled reference toy CLIP (a local-dir open_clip folder)."""
    from ..core import load_clip

    if not (REFERENCE_DIR / "open_clip_model.safetensors").is_file():
        raise ValueError(f"the reference CLIP is missing from {REFERENCE_DIR}; reinstall the package or train it "
                         "with tools/train_toy_clip.py (see its docstring).")
    return load_clip(str(REFERENCE_DIR), device=device)
