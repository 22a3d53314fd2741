"""Test helper: a tiny random-weight Stable Diffusion pipeline, saved as a diffusers folder, built offline.

The parts are diffusers' and transformers' real classes at toy sizes (diffusers' own tests do the same);
the tokenizer files are written from open_clip's copy of CLIP's BPE vocabulary, so nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pez_nodes.lm.clip_tokenizer import write_clip_tokenizer  # noqa: F401  (tests import it from here)


def write_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """A StableDiffusionPipeline with ~1 M random parameters (16×16 px images) saved to ``folder``."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), norm_num_groups=8, cross_attention_dim=32,
                                attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
                        norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                        vocab_size=49408, max_position_embeddings=77, bos_token_id=49406,
                                        eos_token_id=49407, pad_token_id=49407))
    write_clip_tokenizer(folder / "_tokenizer_files")
    tokenizer = CLIPTokenizer(str(folder / "_tokenizer_files" / "vocab.json"), str(folder / "_tokenizer_files" / "merges.txt"),
                              model_max_length=77)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _unet_to_ldm(sd: dict, layers: int) -> dict:
    """diffusers ``UNet2DConditionModel`` keys -> the original ``model.diffusion_model.*`` (LDM) keys."""
    resnet = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
              ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    up_with_attention = {k.split(".")[1] for k in sd if k.startswith("up_blocks.") and ".attentions." in k}
    out = {}
    for key, value in sd.items():
        p = key.split(".")
        if p[0] in ("down_blocks", "up_blocks"):  # input_blocks.0 is conv_in; a down block has layers (+ downsampler)
            b, part = int(p[1]), p[2]             # slots, an up block layers + 1 (its upsampler after any attention)
            j = layers if part in ("downsamplers", "upsamplers") else int(p[3])
            index = 1 + b * (layers + 1) + j if p[0] == "down_blocks" else b * (layers + 1) + j
            slot = {"resnets": "0", "attentions": "1", "downsamplers": "0.op",
                    "upsamplers": "2.conv" if p[1] in up_with_attention else "1.conv"}[part]
            rest = p[5:] if part in ("downsamplers", "upsamplers") else p[4:]  # a sampler's "0.conv" is in its slot
            new = f"{'input' if p[0] == 'down_blocks' else 'output'}_blocks.{index}.{slot}." + ".".join(rest)
        elif p[0] == "mid_block":
            part = p[1]
            new = f"middle_block.{2 * int(p[2]) if part == 'resnets' else 1}." + ".".join(p[3:])
        else:
            part, new = None, fixed[".".join(p[:-1])] + "." + p[-1]
        if part == "resnets":
            for old, ldm in resnet:
                new = new.replace(f".{old}.", f".{ldm}.")
        out["model.diffusion_model." + new] = value
    return out


def _vae_to_ldm(sd: dict) -> dict:
    """diffusers ``AutoencoderKL`` keys -> the original ``first_stage_model.*`` keys (mid attention as 1x1 convs)."""
    n = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("decoder.up_blocks."))
    attention = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]
    out = {}
    for key, value in sd.items():
        p = key.split(".")
        if p[1] in ("down_blocks", "up_blocks"):
            i = int(p[2]) if p[1] == "down_blocks" else n - 1 - int(p[2])  # LDM numbers decoder blocks bottom-up
            where = f"{p[0]}.{'down' if p[1] == 'down_blocks' else 'up'}.{i}"
            if p[3] == "resnets":
                new = f"{where}.block.{p[4]}." + ".".join(p[5:]).replace("conv_shortcut", "nin_shortcut")
            else:
                new = f"{where}.{'downsample' if p[3] == 'downsamplers' else 'upsample'}.conv.{p[-1]}"
        elif p[1] == "mid_block" and p[2] == "resnets":
            new = f"{p[0]}.mid.block_{int(p[3]) + 1}." + ".".join(p[4:])
        elif p[1] == "mid_block":
            new = f"{p[0]}.mid.attn_1." + ".".join(p[4:])
            for old, ldm in attention:
                new = new.replace(f".{old}.", f".{ldm}.")
            value = value[:, :, None, None] if value.ndim == 2 else value
        else:
            new = key.replace("conv_norm_out", "norm_out")
        out["first_stage_model." + new] = value
    return out


def write_tiny_sd_single_file(folder: Path, out_file: Path) -> Path:
    """The pipeline in ``folder`` (from ``write_tiny_sd``) as ONE ``.safetensors`` in the original SD 1.x layout —
    what users download (e.g. v1-5-pruned-emaonly.safetensors): ``model.diffusion_model.*`` (UNet),
    ``first_stage_model.*`` (VAE), ``cond_stage_model.transformer.text_model.*`` (CLIP text encoder)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
    checkpoint = {**_unet_to_ldm(unet.state_dict(), unet.config.layers_per_block), **_vae_to_ldm(vae.state_dict())}
    for key, value in text.state_dict().items():  # transformers >= 5.6 dropped the "text_model." level
        key = key if key.startswith("text_model.") else "text_model." + key
        checkpoint["cond_stage_model.transformer." + key] = value
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(out_file))
    return out_file
