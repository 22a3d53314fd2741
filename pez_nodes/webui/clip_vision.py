"""CLIP Vision files from the webui's ``models/clip_vision`` as image encoders for its own text encoders.

The files users keep there (IP-Adapter's image encoders, OpenAI's ``clip-vit-large-patch14``
``model.safetensors``) are Hugging Face ``CLIPVisionModelWithProjection`` / ``CLIPModel`` weights:
``vision_model.*`` + ``visual_projection.weight`` (+ ``text_projection.weight`` in a whole CLIPModel — the
projection SD checkpoints leave out of CLIP-L). They carry no config, so the architecture is read from
the shapes; heads and activation from the known models (OpenAI ViT-L/14: QuickGELU; LAION ViT-H and
bigG: GELU). Built with ``transformers`` — which both webuis ship — and fed CLIP's own preprocessing
(short side to the model's size, centre crop, OpenAI's mean and std).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import preprocess
from ..model_choices import VISION_KIND

FOLDER = "clip_vision"
NONE = "none"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
HEADS = {768: 12, 1024: 16, 1280: 16, 1664: 16}  # ViT-B, ViT-L, ViT-H, bigG vision widths
_LAYER = re.compile(r"vision_model\.encoder\.layers\.(\d+)\.")


def folder(models_path: str | Path) -> Path:
    return Path(models_path) / FOLDER


def choices(where: str | Path | None) -> list[str]:
    """``none`` + the ``.safetensors`` files under ``models/clip_vision`` (a local listing only)."""
    root = Path(where) if where else None
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*.safetensors")) if root and root.is_dir() else []
    return [NONE, *found]


@dataclass
class VisionFile:
    """A loaded CLIP Vision file: ``encode(images) -> image_embeds`` ([N, dim])."""

    name: str
    model: torch.nn.Module
    dim: int
    image_size: int
    text_projection: torch.Tensor | None  # a Linear weight [dim, text width], when the file is a whole CLIPModel
    notes: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return VISION_KIND.get(self.dim, f"a CLIP vision model with {self.dim}-wide features")

    def encode(self, images: list) -> torch.Tensor:
        pixels = preprocess(images, self.image_size, OPENAI_MEAN, OPENAI_STD).to(self.model.device)
        with torch.no_grad():
            return self.model(pixel_values=pixels).image_embeds.float()


def load(choice: str, where: str | Path, device: str | torch.device = "cpu") -> VisionFile | None:
    """The CLIP Vision file ``choice`` (a name under ``where``) on ``device``, or None for ``none`` / empty."""
    if not choice or choice == NONE:
        return None
    from safetensors import SafetensorError, safe_open

    path = Path(where) / choice
    if not path.is_file():
        raise ValueError(f"clip_vision {choice!r} is not in {where}; put the file there or choose one of "
                         f"{', '.join(choices(where)[1:]) or 'none (the folder is empty)'}.")
    try:
        with safe_open(str(path), "pt") as f:
            keys = [k for k in f.keys() if k.startswith("vision_model.") or k.endswith("_projection.weight")]
            state = {k: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"clip_vision {choice!r} could not be read ({e}); re-download it.") from e
    if "vision_model.embeddings.patch_embedding.weight" not in state or "visual_projection.weight" not in state:
        raise ValueError(f"clip_vision {choice!r} is not a CLIP vision model in the Hugging Face layout (no "
                         "vision_model.* / visual_projection.weight); use a CLIPVisionModelWithProjection or "
                         "CLIPModel .safetensors, e.g. an IP-Adapter image encoder.")
    return _build(choice, state, torch.device(device))


def _build(name: str, state: dict, device: torch.device) -> VisionFile:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    try:  # skips the random initialisation the file's weights replace (transformers 4.x / 5.x)
        from transformers.initialization import no_init_weights
    except ImportError:
        from transformers.modeling_utils import no_init_weights

    width, _, patch, _ = state["vision_model.embeddings.patch_embedding.weight"].shape
    positions = state["vision_model.embeddings.position_embedding.weight"].shape[0]
    image_size = patch * round((positions - 1) ** 0.5)
    dim = state["visual_projection.weight"].shape[0]
    layers = 1 + max(int(m.group(1)) for k in state for m in [_LAYER.match(k)] if m)
    openai = width in (768, 1024) and dim in (512, 768)  # OpenAI's ViT-B / ViT-L: QuickGELU
    heads = HEADS.get(width, max(1, width // 64))
    config = CLIPVisionConfig(
        hidden_size=width, intermediate_size=state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=layers, num_attention_heads=heads, image_size=image_size, patch_size=patch,
        projection_dim=dim, hidden_act="quick_gelu" if openai else "gelu", layer_norm_eps=1e-5)
    with no_init_weights():
        model = CLIPVisionModelWithProjection(config)
    vision = {k: v.float() for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))}
    missing, unexpected = model.load_state_dict(vision, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"clip_vision {name!r} does not match a CLIP vision model ({(missing + unexpected)[0]!r}); "
                         "use a CLIPVisionModelWithProjection or CLIPModel .safetensors.")
    notes = () if width in HEADS else (f"{name}: an unknown {width}-wide vision tower; read with {heads} heads "
                                       "and GELU.",)
    projection = state.get("text_projection.weight")
    return VisionFile(name, model.to(device).eval().requires_grad_(False), dim, image_size,
                      None if projection is None else projection.float(), notes)
