"""Test helper: an open_clip text tower's weights written in the Hugging Face ``CLIPTextModel`` layout.

This is how diffusion hosts (ComfyUI, diffusers) store CLIP text encoders; ``core.hf_text_tower``
reads that layout. The mapping here is written out by hand, independently of the module under test.
"""

from __future__ import annotations

import torch


def hf_text_state(tower, with_projection: bool = True) -> dict[str, torch.Tensor]:
    """``text_model.*`` (+ ``text_projection.weight``) tensors of an open_clip CLIP or TextTransformer."""
    sd = {k: v.detach().clone() for k, v in tower.state_dict().items() if not k.startswith("visual.")}
    out = {
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
    }
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.resblocks."))
    for i in range(layers):
        a, b = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
        for part in ("weight", "bias"):
            q, k, v = sd[f"{a}attn.in_proj_{part}"].chunk(3)
            out[f"{b}self_attn.q_proj.{part}"], out[f"{b}self_attn.k_proj.{part}"], out[f"{b}self_attn.v_proj.{part}"] = q, k, v
            out[f"{b}self_attn.out_proj.{part}"] = sd[f"{a}attn.out_proj.{part}"]
            out[f"{b}layer_norm1.{part}"] = sd[f"{a}ln_1.{part}"]
            out[f"{b}layer_norm2.{part}"] = sd[f"{a}ln_2.{part}"]
            out[f"{b}mlp.fc1.{part}"] = sd[f"{a}mlp.c_fc.{part}"]
            out[f"{b}mlp.fc2.{part}"] = sd[f"{a}mlp.c_proj.{part}"]
    if with_projection:
        out["text_projection.weight"] = sd["text_projection"].T.contiguous()  # a Linear weight: [out, width]
    return out


def random_text_tower(width: int, layers: int, heads: int, output_dim: int, seed: int, quickgelu: bool = False):
    """A small random open_clip ``TextTransformer`` over CLIP's full vocabulary."""
    from open_clip.transformer import QuickGELU, TextTransformer

    torch.manual_seed(seed)
    act = QuickGELU if quickgelu else torch.nn.GELU
    return TextTransformer(width=width, layers=layers, heads=heads, output_dim=output_dim, act_layer=act).eval()
