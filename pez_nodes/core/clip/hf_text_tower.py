"""A CLIP text tower from Hugging Face-layout weights (``text_model.*``), as the core's own encoder.

Diffusion hosts keep CLIP text encoders in the Hugging Face ``CLIPTextModel`` layout (ComfyUI's
``comfy.clip_model.CLIPTextModel`` uses the same names). This module copies such weights, once, into
open_clip's ``TextTransformer`` so that PEZ runs on them through :class:`~pez_nodes.core.clip.backbone.ClipBackbone`'s
tested fast path: only ``[SOT, prompt, EOT]`` is computed, gradients flow through plain fp32 modules,
and nothing of the host's model is touched. Host-free: the caller hands over tensors.

Key mapping (per layer ``i``)::

    text_model.embeddings.token_embedding.weight      -> token_embedding.weight
    text_model.embeddings.position_embedding.weight   -> positional_embedding
    text_model.encoder.layers.i.layer_norm1 / 2       -> transformer.resblocks.i.ln_1 / ln_2
    text_model.encoder.layers.i.self_attn.{q,k,v}_proj -> transformer.resblocks.i.attn.in_proj_* (stacked q, k, v)
    text_model.encoder.layers.i.self_attn.out_proj    -> transformer.resblocks.i.attn.out_proj
    text_model.encoder.layers.i.mlp.fc1 / fc2         -> transformer.resblocks.i.mlp.c_fc / c_proj
    text_model.final_layer_norm                       -> ln_final
    text_projection.weight  ([out, width], a Linear)  -> text_projection ([width, out], open_clip's x @ P)
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import TYPE_CHECKING, Mapping

import torch
import torch.nn as nn

if TYPE_CHECKING:  # for annotations only: backbone.py builds on this module's towers
    from .backbone import ClipBackbone

HF_ACTIVATIONS = ("quick_gelu", "gelu", "gelu_pytorch_tanh")
_LAYER = re.compile(r"text_model\.encoder\.layers\.(\d+)\.")


def _act_layer(activation: str):
    from open_clip.transformer import QuickGELU

    if activation == "quick_gelu":
        return QuickGELU
    if activation == "gelu":
        return nn.GELU
    if activation == "gelu_pytorch_tanh":
        return functools.partial(nn.GELU, approximate="tanh")
    raise ValueError(f"text encoder activation {activation!r} is not one of {', '.join(HF_ACTIVATIONS)}.")


def convert_hf_text_state(state: Mapping[str, torch.Tensor], projection: torch.Tensor | None = None,
                          dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """open_clip ``TextTransformer`` keys for Hugging Face CLIP text keys; every tensor a fresh copy in ``dtype``.

    ``projection`` (a Linear weight, [out, width]) replaces ``text_projection.weight``; with neither,
    the result has no ``text_projection`` and the tower's feature is its pooled output.
    """
    def get(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"the text encoder's weights have no {key!r}; it is not a CLIP text model "
                             "(Hugging Face layout) or the file is incomplete.")
        return state[key].detach().to(device, dtype, copy=True)

    out = {
        "token_embedding.weight": get("text_model.embeddings.token_embedding.weight"),
        "positional_embedding": get("text_model.embeddings.position_embedding.weight"),
        "ln_final.weight": get("text_model.final_layer_norm.weight"),
        "ln_final.bias": get("text_model.final_layer_norm.bias"),
    }
    for i in range(count_layers(state)):
        src, dst = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for part in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{part}"] = torch.cat([get(f"{src}self_attn.{p}_proj.{part}") for p in "qkv"])
            for a, b in (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("self_attn.out_proj", "attn.out_proj"),
                         ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[f"{dst}{b}.{part}"] = get(f"{src}{a}.{part}")
    if projection is None and "text_projection.weight" in state:
        projection = state["text_projection.weight"]
    if projection is not None:
        out["text_projection"] = projection.detach().to(device, dtype, copy=True).T.contiguous()
    return out


def count_layers(state: Mapping[str, torch.Tensor]) -> int:
    found = {int(m.group(1)) for k in state for m in [_LAYER.match(k)] if m}
    if not found:
        raise ValueError("the text encoder's weights have no 'text_model.encoder.layers.*'; it is not a CLIP text model.")
    return max(found) + 1


def text_tower_from_hf(state: Mapping[str, torch.Tensor], heads: int, activation: str,
                       projection: torch.Tensor | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """An fp32 open_clip ``TextTransformer`` holding a copy of Hugging Face-layout CLIP text weights.

    Args:
        state: ``text_model.*`` (and optionally ``text_projection.weight``) tensors, any dtype / device.
        heads: attention heads (the host's config; 12 for CLIP-L, 16 for ViT-H, 20 for bigG).
        activation: the MLP activation by its Hugging Face name (``quick_gelu`` for OpenAI's CLIP-L).
        projection: a text projection to use instead of (or in the absence of) ``text_projection.weight``.
        device: where the tower lives.
    """
    weights = convert_hf_text_state(state, projection, device=device)  # fresh fp32 copies: used as they are
    return text_tower_from_open_clip(weights, heads, activation, device, copy=False)


def text_tower_from_open_clip(state: Mapping[str, torch.Tensor], heads: int, activation: str,
                              device: torch.device | str = "cpu", copy: bool = True) -> nn.Module:
    """An fp32 open_clip ``TextTransformer`` holding a copy of open_clip-layout text weights (``token_embedding.*``,
    ``positional_embedding``, ``transformer.*``, ``ln_final.*``, optional ``text_projection`` [width, out]) — the
    text half of an open_clip ``CLIP`` as hosts keep SD 2.x's ViT-H and SDXL's bigG. Other keys are ignored.
    ``copy=False`` only for tensors made for this tower (fp32, on ``device``): the tower then holds them as they are."""
    from open_clip.transformer import TextTransformer

    names = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
    weights = {k: v.detach().to(device, torch.float32, copy=copy) for k, v in state.items() if k.startswith(names)}
    missing = [k for k in ("token_embedding.weight", "positional_embedding", "ln_final.weight",
                           "transformer.resblocks.0.mlp.c_fc.weight") if k not in weights]
    if missing:
        raise ValueError(f"the text encoder's weights have no {missing[0]!r}; it is not an open_clip text tower.")
    vocab, width = weights["token_embedding.weight"].shape
    proj = weights.get("text_projection")
    if proj is not None and proj.shape[0] != width:
        raise ValueError(f"the text projection takes {proj.shape[0]}-wide input but the text encoder is {width} wide; "
                         "use the projection of this same CLIP model.")
    if width % heads:
        raise ValueError(f"{heads} attention heads do not divide the text encoder's width {width}.")
    layers = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("transformer.resblocks."))
    mlp_ratio = weights["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width
    options = {}
    if "mlp_ratio" in inspect.signature(TextTransformer).parameters:
        options["mlp_ratio"] = mlp_ratio
    elif mlp_ratio != 4:  # open_clip 2.20 (the webuis' pin) builds every text tower with 4× MLPs
        raise ValueError(f"this open_clip builds text towers with 4x MLPs, but the text encoder's is {mlp_ratio:g}x; "
                         "upgrade open_clip_torch.")
    with torch.device("meta"):
        tower = TextTransformer(
            context_length=weights["positional_embedding"].shape[0], vocab_size=vocab, width=width, heads=heads,
            layers=layers, output_dim=proj.shape[1] if proj is not None else width, act_layer=_act_layer(activation),
            **options,
        )
    if proj is None:
        tower.text_projection = None  # the pooled output is the feature (open_clip 2.20 cannot build one without)
    tower.load_state_dict(weights, strict=True, assign=True)
    build_mask = getattr(tower, "build_causal_mask", None) or tower.build_attention_mask  # open_clip 3.x / 2.x
    tower.attn_mask = build_mask().to(device)  # a non-persistent buffer: built here, not on meta
    return tower.to(device).eval().requires_grad_(False)


def text_backbone_from_hf(state: Mapping[str, torch.Tensor], heads: int, activation: str, name: str,
                          projection: torch.Tensor | None = None, device: torch.device | str = "cpu",
                          tokenizer=None) -> "ClipBackbone":
    """A text-only :class:`ClipBackbone` over :func:`text_tower_from_hf`. ``tokenizer`` defaults to open_clip's
    CLIP BPE tokenizer (the vocabulary file Hugging Face's and ComfyUI's CLIP tokenizers use too); a host
    may pass its own, so that prompts are scored exactly as it tokenizes them."""
    from open_clip.tokenizer import SimpleTokenizer

    from .backbone import ClipBackbone

    tower = text_tower_from_hf(state, heads, activation, projection, device)
    return ClipBackbone(tower, tokenizer or SimpleTokenizer(), name)


def text_backbone_from_open_clip(state: Mapping[str, torch.Tensor], heads: int, activation: str, name: str,
                                 device: torch.device | str = "cpu", tokenizer=None) -> "ClipBackbone":
    """:func:`text_backbone_from_hf` for open_clip-layout weights (:func:`text_tower_from_open_clip`)."""
    from open_clip.tokenizer import SimpleTokenizer

    from .backbone import ClipBackbone

    return ClipBackbone(text_tower_from_open_clip(state, heads, activation, device), tokenizer or SimpleTokenizer(), name)
