"""PEZ core: pure torch + open_clip, no host imports.

    from pez_nodes.core import load_clip, invert, PEZConfig
    model = load_clip("toy")
    result = invert(model, ["photo.png"], PEZConfig(steps=300))
    print(result.text, result.similarity)
"""

from .api import (Target, concat, distill, image_features, invert, invert_each, optimize, target_features,
                  with_negatives)
from .backbone import ClipBackbone
from .config import PEZConfig
from .encoder import TextEncoder, encode_text, encode_token_ids
from .hf_text_tower import text_backbone_from_hf, text_tower_from_hf
from .joint import JointClip, Tower
from .layout import PromptLayout
from .loading import DEFAULT_MODEL, DEFAULT_PRETRAINED, TOY_DIR, ModelLoadError, load_clip, resolve_device
from .loop import Callback, optimize_prompt
from .projection import VocabularyProjector, projector_for
from .result import Candidate, PEZResult

__all__ = [
    "Callback", "Candidate", "ClipBackbone", "DEFAULT_MODEL", "JointClip", "DEFAULT_PRETRAINED", "ModelLoadError", "PEZConfig",
    "PEZResult", "PromptLayout", "Target", "TOY_DIR", "TextEncoder", "Tower", "VocabularyProjector", "concat", "distill",
    "encode_text", "encode_token_ids", "image_features", "invert", "invert_each", "load_clip", "optimize", "optimize_prompt",
    "projector_for", "resolve_device", "target_features", "text_backbone_from_hf", "text_tower_from_hf",
    "with_negatives",
]
