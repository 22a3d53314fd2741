"""ComfyUI's CLIP Vision models as the core's image encoders — exactly CLIPVisionEncode's ``image_embeds``.

``clip_vision.encode_image(image, crop)`` is what ComfyUI's CLIPVisionEncode node calls (crop "center":
``crop=True``; "none": squash); its ``image_embeds`` are open_clip's ``encode_image``. PEZ calls the same
method on each target image, so its image features are the ones the user's workflow computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import load_image, to_tensor
from ..model_choices import KIND_OF_TEXT, MATCHING_VISION, VISION_KIND

CROPS = ("center", "none")


@dataclass(frozen=True)
class VisionPart:
    """A checked ComfyUI CLIP Vision model: its projection width and input size."""

    model: object  # comfy.clip_vision.ClipVisionModel
    dim: int
    image_size: int

    @property
    def kind(self) -> str:
        return VISION_KIND.get(self.dim, f"a CLIP vision model with {self.dim}-wide features")


def vision_part(clip_vision, input_name: str) -> VisionPart:
    """``clip_vision`` checked to be a CLIP with a projection, or one error saying what it is and what to load."""
    import comfy.clip_model

    model = getattr(clip_vision, "model", None)
    if not hasattr(clip_vision, "encode_image") or model is None:
        raise ValueError(f"{input_name} is a {type(clip_vision).__name__}, not a CLIP Vision model; connect a "
                         "CLIPVisionLoader.")
    projection = getattr(model, "visual_projection", None)
    is_clip = isinstance(model, comfy.clip_model.CLIPVisionModelProjection) and isinstance(projection, torch.nn.Module)
    if not is_clip or getattr(clip_vision, "return_all_hidden_states", False):
        what = "a SigLIP model" if isinstance(model, comfy.clip_model.CLIPVisionModelProjection) else f"a {type(model).__name__}"
        raise ValueError(f"{input_name} is {what}, not a CLIP: its image features have no text counterpart. Load the "
                         "CLIP Vision model that matches your text encoder: " + "; ".join(
                             f"{KIND_OF_TEXT[d]} → {v}" for d, v in MATCHING_VISION.items()) + ".")
    return VisionPart(clip_vision, projection.weight.shape[0], int(getattr(clip_vision, "image_size", 224)))



def _as_comfy_image(image, size: int) -> torch.Tensor:
    """A ComfyUI IMAGE batch of one ([1, H, W, 3], 0..1) from what the core accepts: IMAGE rows pass unchanged
    (alpha dropped, as ComfyUI does), files and PIL images of any mode or size are read as the core reads them."""
    if isinstance(image, (str, Path)):
        image = load_image(image, max_side=size)
    return to_tensor(image, max_side=size).permute(1, 2, 0).unsqueeze(0)


def image_encoder(part: VisionPart, crop: str):
    """``images -> image_embeds`` ([N, F]) through the CLIP Vision model, as CLIPVisionEncode computes them."""
    if crop not in CROPS:
        raise ValueError(f"crop={crop!r} is unknown; use one of {', '.join(CROPS)} (as in CLIPVisionEncode).")

    def encode(images: list) -> torch.Tensor:
        feats = []
        for image in images:
            with torch.no_grad():
                out = part.model.encode_image(_as_comfy_image(image, part.image_size), crop=crop == "center")["image_embeds"]
            feats.append(out.float().clone())  # a plain tensor even when ComfyUI made an inference tensor
        return torch.cat(feats)

    return encode


class VisionJudge:
    """A CLIP Vision model as something the paper's metric can score images with (``encode_images``)."""

    def __init__(self, clip_vision, crop: str = "center", input_name: str = "clip_vision"):
        part = vision_part(clip_vision, input_name)
        self.name = f"{part.kind} (ComfyUI CLIP Vision)"
        self.encode_images = image_encoder(part, crop)
        self.device = torch.device("cpu")
