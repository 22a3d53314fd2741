"""The webui's loaded Stable Diffusion checkpoint as the PEZ model: its own CLIP text encoder(s), no CLIP reloaded.

Where the text encoders live (read from both webuis' code, checked by ``tests/test_webui_checkpoint.py``):

* Forge: ``sd_model.forge_objects.clip.cond_stage_model.clip_l / clip_h / clip_g`` — ``IntegratedCLIP``
  whose ``transformer`` is a ``transformers`` ``CLIPTextModel`` (SD 1.5: clip_l; SD 2.x: clip_h; SDXL: both
  clip_l and clip_g).
* AUTOMATIC1111: ``sd_model.cond_stage_model`` (SD 1.x / 2.x) or ``sd_model.conditioner.embedders`` (SDXL),
  each wrapping (``.wrapped``) either a ``CLIPTextModel`` (``.transformer``: CLIP-L) or an open_clip ``CLIP``
  without its visual half (``.model``: ViT-H, bigG); its token table is wrapped too (``EmbeddingsWithFixes``,
  for textual inversion), the weights are its ``.wrapped``.

Each is copied once into the core's fp32 text tower (``core.hf_text_tower``), as the ComfyUI side does
with ComfyUI's CLIP: the webui's model is never touched, and the copy is cached per checkpoint. SD 1.5 and
SDXL checkpoints leave CLIP-L's ``text_projection`` out; SD 2.x's ViT-H and SDXL's bigG keep theirs. For
images, each text encoder is paired with the CLIP Vision file of its width (``clip_vision.py``); a whole
CLIPModel file (OpenAI's ``clip-vit-large-patch14``) also lends CLIP-L its text projection. SDXL's two
encoders learn one prompt together (``core.JointClip``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import JointClip, Tower, text_backbone_from_hf, text_backbone_from_open_clip
from ..model_choices import MATCHING_VISION, TEXT_KIND
from . import clip_vision

CHOICE = "webui checkpoint (its own text encoder)"
ALIASES = ("webui", CHOICE)
NAMES = {768: "clip_l", 1024: "clip_h", 1280: "clip_g"}


@dataclass(frozen=True)
class TextPart:
    """One CLIP text encoder of the loaded checkpoint, before it is copied."""

    name: str  # clip_l / clip_h / clip_g
    module: torch.nn.Module  # a transformers CLIPTextModel, or an open_clip CLIP (text half)
    layout: str  # "hf" or "open_clip"
    width: int

    @property
    def has_projection(self) -> bool:
        """SD checkpoints keep ViT-H's and bigG's text projection, never CLIP-L's (Forge leaves an unloaded one)."""
        if self.layout == "open_clip":
            return getattr(self.module, "text_projection", None) is not None
        return self.name != "clip_l" and getattr(self.module, "text_projection", None) is not None

    @property
    def kind(self) -> str:
        return TEXT_KIND.get(self.width, f"a {self.width}-wide CLIP text encoder")


def loaded_model():
    """The webui's current SD model, loading the selected checkpoint as Generate would when none is loaded."""
    try:
        from modules import sd_models, shared
    except ImportError:
        raise ValueError("model \"webui\" is the webui's loaded checkpoint, and PEZ is not running inside a webui "
                         "here; choose a CLIP (e.g. \"toy\").") from None
    reload = getattr(sd_models, "forge_model_reload", None)  # Forge loads on demand
    try:
        if reload is not None:
            reload()
        model = shared.sd_model  # AUTOMATIC1111 loads the selected checkpoint on first access
    except Exception as e:  # noqa: BLE001 — the webui's own loading error, as one line
        raise ValueError(f"the webui could not load its checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                         "put a Stable Diffusion checkpoint in models/Stable-diffusion and select it.") from e
    if model is None or not text_modules(model):
        raise ValueError("the webui has no Stable Diffusion checkpoint loaded; put one in models/Stable-diffusion and "
                         "select it (or choose a CLIP from the list).")
    return model


def identity(sd_model) -> tuple:
    """What tells one loaded checkpoint from another: its file, its hash and a fingerprint of its first text
    encoder's token table. AUTOMATIC1111 loads a same-architecture checkpoint into the same model object (and
    never sets ``sd_model.filename``), so neither the object nor a name alone says which weights it holds."""
    info = getattr(sd_model, "sd_checkpoint_info", None)
    file = getattr(info, "filename", None) or getattr(sd_model, "filename", None)
    digest = getattr(info, "sha256", None) or getattr(info, "shorthash", None) or getattr(info, "hash", None)
    modules, fingerprint = text_modules(sd_model), None
    try:
        table = _token_table(modules[0])
        with torch.inference_mode(False), torch.no_grad():
            fingerprint = float(table[:64].double().sum()) + float(table[-64:].double().abs().sum())
    except (IndexError, AttributeError, RuntimeError, NotImplementedError):  # no encoder, or weights not in memory
        pass
    return id(sd_model), file, digest, fingerprint


def _token_table(module) -> torch.Tensor:
    table = module.text_model.embeddings.token_embedding if hasattr(module, "text_model") else module.token_embedding
    return getattr(table, "wrapped", table).weight


def text_modules(sd_model) -> list:
    """The text-encoder modules of a Forge or AUTOMATIC1111 SD model (unwrapped), in the model's order."""
    forge = getattr(sd_model, "forge_objects", None)
    if forge is not None:
        cond = getattr(getattr(forge, "clip", None), "cond_stage_model", None)
        return [getattr(cond, n).transformer for n in ("clip_l", "clip_h", "clip_g") if hasattr(cond, n)]
    conditioner = getattr(sd_model, "conditioner", None)
    candidates = list(conditioner.embedders) if conditioner is not None else [getattr(sd_model, "cond_stage_model", None)]
    found = []
    for m in candidates:
        inner = getattr(m, "wrapped", m)
        found += [x for x in (getattr(inner, "transformer", None), getattr(inner, "model", None)) if _is_text(x)]
    return found


def _is_text(module) -> bool:
    return module is not None and (hasattr(module, "text_model") or hasattr(module, "token_embedding"))


def text_parts(sd_model) -> list[TextPart]:
    parts = []
    for module in text_modules(sd_model):
        layout = "hf" if hasattr(module, "text_model") else "open_clip"
        width = _token_table(module).shape[1]  # AUTOMATIC1111 wraps the table (textual inversion)
        parts.append(TextPart(NAMES.get(width, f"clip_{width}"), module, layout, width))
    return parts


def _copy(part: TextPart, projection: torch.Tensor | None, device: torch.device):
    """The core's fp32 copy of one text encoder (outside the webui's inference mode: a plain, frozen copy)."""
    with torch.inference_mode(False), torch.no_grad():
        state = {k.replace("token_embedding.wrapped.", "token_embedding."): v for k, v in part.module.state_dict().items()}
        if part.layout == "hf":
            m = part.module
            state = {k: v for k, v in state.items() if k.startswith("text_model.")}
            if projection is None and part.has_projection:
                projection = m.text_projection.weight
            return text_backbone_from_hf(state, m.config.num_attention_heads, m.config.hidden_act, part.name,
                                         projection, device)
        block = part.module.transformer.resblocks[0]
        activation = "quick_gelu" if type(block.mlp.gelu).__name__ == "QuickGELU" else "gelu"
        return text_backbone_from_open_clip(state, block.attn.num_heads, activation, part.name, device)


def checkpoint_clip(sd_model, visions: list, device: str | torch.device = "cpu") -> JointClip:
    """PEZ over the webui's ``sd_model`` text encoder(s), with ``visions`` (loaded ``VisionFile`` s, or None)."""
    parts = text_parts(sd_model)
    if not parts:
        raise ValueError("the webui's model has no CLIP text encoder PEZ can use (SD 1.5, SD 2.x or SDXL).")
    by_width = {p.width: p for p in parts}
    paired, notes = {}, []
    for vision in (v for v in visions if v is not None):
        part = by_width.get(vision.dim)
        if part is None:
            raise ValueError(f"clip_vision {vision.name!r} is {vision.kind} ({vision.dim}-wide features), which does not "
                             f"match the checkpoint's text encoder ({', '.join(p.kind for p in parts)}): choose "
                             + "; ".join(f"{p.kind} → {MATCHING_VISION.get(p.width, 'its own vision model')}" for p in parts) + ".")
        if part.name in paired:
            raise ValueError(f"two CLIP Vision files are {vision.kind} for {part.name}; choose one per text encoder.")
        if not part.has_projection and vision.text_projection is None:
            raise ValueError(f"the checkpoint's {part.kind} has no text_projection (SD 1.5 and SDXL checkpoints leave "
                             f"it out), so its features cannot be compared with {vision.name!r}'s images: use a whole "
                             "CLIP file for CLIP Vision, e.g. openai/clip-vit-large-patch14's model.safetensors.")
        paired[part.name] = vision
        notes += vision.notes
    towers = []
    title = getattr(getattr(sd_model, "sd_checkpoint_info", None), "title", None) or "checkpoint"
    for part in parts:
        vision = paired.get(part.name)
        projection = vision.text_projection if vision is not None and not part.has_projection else None
        backbone = _copy(part, projection, torch.device(device))
        if backbone.tower.text_projection is None:
            notes.append(f"{part.name} has no text_projection: texts are compared in its pooled space, images cannot be.")
        towers.append(Tower(part.name, backbone, vision.encode if vision is not None else None))
    hint = "Choose the CLIP Vision file that matches it (models/clip_vision): " + "; ".join(
        f"{p.name} → {MATCHING_VISION.get(p.width, 'the vision half of the same CLIP')}" for p in parts) + "."
    return JointClip(towers, f"{title} ({' + '.join(p.name for p in parts)})", notes, image_hint=hint)


def load(sd_model, vision_choices: list[str], vision_folder, device: str | torch.device = "cpu") -> JointClip:
    """:func:`checkpoint_clip` with the chosen ``models/clip_vision`` files (``none`` / empty skipped), all on
    ``device``."""
    return checkpoint_clip(sd_model, [clip_vision.load(c, vision_folder, device) for c in vision_choices], device)
