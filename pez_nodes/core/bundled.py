"""Where the models that ship with PEZ live (``pez_nodes/models``: the toy CLIP, its reference CLIP, the toy
diffusion model and the toy language models). The one definition every loader reads, so moving a module
cannot silently lose them."""

from pathlib import Path

BUNDLED_MODELS = Path(__file__).resolve().parents[1] / "models"
