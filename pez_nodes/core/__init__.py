"""PEZ core: pure torch + open_clip, no host imports. Every name a front end or a capability uses is here;
nothing outside ``pez_nodes.core`` imports its inner modules (``ARCHITECTURE.md`` says why).

    from pez_nodes.core import load_clip, invert, PEZConfig
    model = load_clip("toy")
    result = invert(model, ["photo.png"], PEZConfig(steps=300))
    print(result.text, result.similarity)

Inside: ``clip/`` is the frozen model (building, loading, encoding images and text), ``optim/`` is
Algorithm 1 with its objectives and methods (it sees a model only as a ``TextEncoder``), ``api.py``
joins the two: config in, result out.
"""

from .api import (Target, concat, distill, image_features, invert, invert_each, optimize, target_features,
                  with_negatives)
from .bundled import BUNDLED_MODELS
from .clip.architecture import ACTIVATIONS, identify_architecture
from .clip.backbone import ClipBackbone
from .clip.hf_text_tower import text_backbone_from_hf, text_backbone_from_open_clip, text_tower_from_hf
from .clip.images import decode_image, load_image, preprocess, split_batch, to_tensor
from .clip.joint import JointClip, Tower
from .clip.loading import (DEFAULT_MODEL, DEFAULT_PRETRAINED, TOY_DIR, VOCABULARIES, VOCABULARY_FILE, ModelLoadError,
                           load_clip)
from .defaults import PAPER, TASK_PROMPT_LEN, TASKS, task_config, task_defaults
from .device import RUNS_PEZ, check_device_name, resolve_device, trim_heap
from .optim.config import PEZConfig
from .optim.fluency import PromptFluency
from .optim.layout import PromptLayout
from .optim.loop import Callback, optimize_prompt
from .optim.methods import METHODS
from .optim.projection import VocabularyProjector, projector_for
from .optim.result import Candidate, PEZResult
from .optim.text_encoder import TextEncoder, encode_text, encode_token_ids
from .optim.vocabulary import VocabularyFilter, allowed_token_ids

__all__ = [
    "ACTIVATIONS", "BUNDLED_MODELS", "Callback", "Candidate", "ClipBackbone", "DEFAULT_MODEL", "DEFAULT_PRETRAINED",
    "JointClip", "METHODS", "ModelLoadError", "PAPER", "PEZConfig", "PEZResult", "PromptFluency", "PromptLayout",
    "RUNS_PEZ", "TASKS", "TASK_PROMPT_LEN", "TOY_DIR", "Target", "TextEncoder", "Tower", "VOCABULARIES",
    "VOCABULARY_FILE", "VocabularyFilter", "VocabularyProjector", "allowed_token_ids", "check_device_name",
    "concat", "decode_image", "distill", "encode_text", "encode_token_ids", "identify_architecture",
    "image_features", "invert", "invert_each", "load_clip", "load_image", "optimize", "optimize_prompt",
    "preprocess", "projector_for", "resolve_device", "split_batch", "target_features", "task_config",
    "task_defaults", "text_backbone_from_hf", "text_backbone_from_open_clip", "text_tower_from_hf", "to_tensor",
    "trim_heap", "with_negatives",
]
