"""ComfyUI's own CLIP text encoders as the core's text towers (copied once, per loaded model and LoRA set).

ComfyUI (0.3.64) keeps each CLIP text encoder as ``clip.cond_stage_model.<name>`` (``clip_l``, ``clip_h``,
``clip_g``), an ``SDClipModel`` whose ``transformer`` is a Hugging Face-layout ``CLIPTextModel``. Running
PEZ through those modules directly is fragile (the prompt runs under ``inference_mode``, ``CLIPLayer``
adds in place, ``manual_cast`` shares fp32 weights, offloaded weights are cast per call), so the weights
are copied, once, into the core's own fp32 encoder (``core.hf_text_tower``): the tested fast path runs
on them and the user's CLIP is never touched.

Whether a checkpoint held a ``text_projection`` cannot be told from its values (a missing weight is
``torch.empty``: NaN, zeros or plausible numbers), so :func:`record_loaded_projections` — installed when
the pack registers, before any model loads — notes it from ComfyUI's own missing-key lists.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from ..core import ClipBackbone, text_backbone_from_hf
from ..model_choices import TEXT_KIND as KIND
from .prompt_syntax import for_text_encode

TOWER_NAMES = ("clip_l", "clip_h", "clip_g")
_PROJECTION_KEY = "text_projection.weight"
_FLAG = "_pez_has_text_projection"


def record_loaded_projections() -> None:
    """Wrap ComfyUI's CLIP weight loading so each text encoder remembers whether ``text_projection`` was loaded.

    Both ways weights reach a text encoder are covered: ``SDClipModel.load_sd`` (CLIPLoader, DualCLIPLoader,
    text-encoder files) and ``CLIP.load_sd(full_model=True)`` (checkpoints). Idempotent; behaviour unchanged.
    """
    import comfy.sd
    import comfy.sd1_clip

    sub_load = comfy.sd1_clip.SDClipModel.load_sd
    if not getattr(sub_load, "_pez_wrapped", False):
        def load_sd(self, sd, *args, **kwargs):
            result = sub_load(self, sd, *args, **kwargs)
            _note(self, _PROJECTION_KEY not in result.missing_keys)
            return result

        load_sd._pez_wrapped = True
        comfy.sd1_clip.SDClipModel.load_sd = load_sd

    clip_load = comfy.sd.CLIP.load_sd
    if not getattr(clip_load, "_pez_wrapped", False):
        def clip_load_sd(self, sd, full_model=False):
            result = clip_load(self, sd, full_model)
            if full_model:
                missing = set(result[0])
                for name in TOWER_NAMES:
                    sub = getattr(self.cond_stage_model, name, None)
                    if sub is not None and any(k.startswith(f"{name}.transformer.text_model.") for k in sd):
                        _note(sub, f"{name}.transformer.{_PROJECTION_KEY}" not in missing)
            return result

        clip_load_sd._pez_wrapped = True
        comfy.sd.CLIP.load_sd = clip_load_sd


def _note(sub, loaded: bool) -> None:
    setattr(sub, _FLAG, getattr(sub, _FLAG, False) or loaded)  # any load that held it counts


def has_text_projection(sub) -> bool | None:
    """Whether ``text_projection`` was loaded into this text encoder; None when its loading was not seen."""
    return getattr(sub, _FLAG, None)


@dataclass(frozen=True)
class TextPart:
    """One CLIP text encoder of a ComfyUI CLIP, before conversion."""

    name: str  # clip_l / clip_h / clip_g
    sub: object  # comfy.sd1_clip.SDClipModel
    width: int
    projection: bool | None  # loaded? (None: not seen)

    @property
    def has_projection(self) -> bool:
        """Loaded — or not seen, for ViT-H / bigG, whose every known source holds it (CLIP-L's rarely do)."""
        return bool(self.projection) or (self.projection is None and self.name != "clip_l")

    @property
    def kind(self) -> str:
        return KIND.get(self.width, f"a {self.width}-wide CLIP text encoder")


def text_parts(clip) -> list[TextPart]:
    """The CLIP text encoders inside a ComfyUI ``CLIP``, or one error naming what it holds instead."""
    import comfy.clip_model

    model = getattr(clip, "cond_stage_model", None)
    if model is None:
        raise ValueError(f"clip is a {type(clip).__name__}, not a ComfyUI CLIP; connect the CLIP output of a "
                         "checkpoint loader, CLIPLoader or DualCLIPLoader.")
    parts = []
    for name in TOWER_NAMES:
        sub = getattr(model, name, None)
        if sub is not None and isinstance(getattr(sub, "transformer", None), comfy.clip_model.CLIPTextModel):
            width = sub.transformer.get_input_embeddings().weight.shape[1]
            parts.append(TextPart(name, sub, width, has_text_projection(sub)))
    if not parts:
        held = ", ".join(n for n, _ in model.named_children()) or type(model).__name__
        raise ValueError(f"clip ({type(model).__name__}: {held}) has no CLIP text encoder; PEZ needs a CLIP-L, ViT-H "
                         "or bigG text encoder — load an SD 1.5, SD 2.x, SDXL, SD3 or Flux CLIP.")
    return parts


def other_encoders(clip) -> list[str]:
    """The text encoders of a ComfyUI CLIP that are not CLIPs (Flux / SD3: ``t5xxl``), which PEZ leaves out."""
    model = getattr(clip, "cond_stage_model", None)
    return [n for n, m in model.named_children() if n not in TOWER_NAMES and m is not None] if model is not None else []


def _activation(sub) -> str:
    import comfy.clip_model

    act = sub.transformer.text_model.encoder.layers[0].mlp.activation
    for name, fn in comfy.clip_model.ACTIVATIONS.items():
        if act is fn:
            return name
    raise ValueError(f"the text encoder {sub!r} uses an activation PEZ does not know; supported: "
                     f"{', '.join(comfy.clip_model.ACTIVATIONS)}.")


class ComfyTokenizer:
    """CLIP's BPE tokenizer as CLIPTextEncode applies it: ``encode`` is ComfyUI's own tokenization of the
    prompt the PEZ nodes output (parentheses escaped), so a returned prompt's scored tokens are exactly the
    tokens ComfyUI encodes — prompt syntax, its text cleaning and ``embedding:`` words included (a
    textual-inversion embedding a prompt happens to spell is not a token and is left out). Decoding and
    the vocabulary's texts come from open_clip's tokenizer over the same vocabulary file.

    Args:
        clip: the ComfyUI ``CLIP``; only its tokenizer and tokenizer options are kept (not its model, so
            the converted copy never keeps a ComfyUI model alive).
        key: the text encoder's key in ComfyUI's token dict (``l``, ``h``, ``g``).
    """

    def __init__(self, clip, key: str):
        from open_clip.tokenizer import SimpleTokenizer

        self._tokenizer, self._options, self._key = clip.tokenizer, dict(clip.tokenizer_options), key
        self._bpe = SimpleTokenizer()
        self.decoder, self.byte_decoder = self._bpe.decoder, self._bpe.byte_decoder
        self.sot_token_id = self._bpe.encoder["<start_of_text>"]
        self.eot_token_id = self._bpe.encoder["<end_of_text>"]
        self.all_special_ids = [self.sot_token_id, self.eot_token_id]

    def encode(self, text: str) -> list[int]:
        ids = []
        options = {"tokenizer_options": self._options} if self._options else {}
        for chunk in self._tokenizer.tokenize_with_weights(for_text_encode(text), False, **options)[self._key]:
            row = [t[0] for t in chunk]
            end = next((i for i, t in enumerate(row) if t == self.eot_token_id), len(row))  # padding follows
            ids += [int(t) for t in row[1:end] if not isinstance(t, torch.Tensor)]
        return ids

    def decode(self, ids) -> str:
        return self._bpe.decode(ids)


def unscaled(state: dict) -> dict:
    """Weights as the encoder computes with them: a scaled-fp8 Linear (ComfyUI's ``scale_weight`` beside an fp8
    ``weight``, as in ``*_fp8_scaled`` downloads) becomes ``weight × scale_weight`` in fp32; ``scale_input`` and
    the ``scaled_fp8`` marker are dropped. Other tensors pass unchanged."""
    out = {}
    for key, value in state.items():
        if key.endswith(("scale_weight", "scale_input")) or key.rsplit(".", 1)[-1] == "scaled_fp8":
            continue
        scale = state.get(key[: -len("weight")] + "scale_weight") if key.endswith("weight") else None
        out[key] = value.float() * scale.float() if scale is not None else value
    return out


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def convert(clip, part: TextPart, device: torch.device, projection: torch.Tensor | None = None) -> ClipBackbone:
    """The core's fp32 copy of ``part`` with this CLIP's patches (LoRA) merged, cached per (model, patches, device).

    ``projection`` (a Linear weight) stands in for a ``text_projection`` the checkpoint left out; without
    either, the tower's feature is its pooled output (fine for texts, not comparable with images).
    """
    import comfy.model_management as mm

    # the projection by content: a tensor freed and re-read from file may reuse an address with other values
    given = None if projection is None else hash(projection.detach().float().cpu().numpy().tobytes())
    key = (str(device), getattr(clip.patcher, "patches_uuid", None), given)
    cached = _CACHE.get(part.sub)
    if cached is not None and cached[0] == key:
        return cached[1]
    _CACHE.pop(part.sub, None)  # one copy per text encoder: a new LoRA set replaces the old copy
    mm.load_models_gpu([clip.patcher], force_full_load=True)  # merges LoRA patches into the weights
    transformer = part.sub.transformer
    with torch.inference_mode(False), torch.no_grad():
        weights = unscaled(transformer.state_dict())
        state = {k: v for k, v in weights.items() if k.startswith("text_model.")}
        if part.has_projection and projection is None:
            projection = weights["text_projection.weight"]
        heads = transformer.text_model.encoder.layers[0].self_attn.heads
        backbone = text_backbone_from_hf(state, heads, _activation(part.sub), part.name, projection, device,
                                         tokenizer=ComfyTokenizer(clip, part.name.removeprefix("clip_")))
    _CACHE[part.sub] = (key, backbone)
    return backbone
