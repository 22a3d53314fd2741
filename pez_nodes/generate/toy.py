"""A toy text-to-image model for the toy world, built from diffusers' parts.

Stable Diffusion in miniature: a diffusers ``UNet2DConditionModel`` denoises 32×32 RGB pictures (the
toy CLIP's input size) in a 16×16×12 "latent" space — a lossless 2×2 space-to-depth of the pixels
(``pixel_unshuffle``) stands in for SD's VAE and makes each step 4× cheaper — conditioned through cross-attention on the per-token hidden
states of the bundled toy CLIP's text tower — after its final LayerNorm, padded to 77 tokens with the
end token, as SD 1.x conditions on CLIP-L — with classifier-free guidance (trained with 10 % empty
captions). Sampling uses diffusers' ``DDIMScheduler``, 25 steps; the paper's guidance 9 over-saturates this small
model, whose own default is 2 (``TOY_GUIDANCE``, measured in the README).
``tools/train_toy_diffusion.py`` trains it; the shipped weights live in ``pez_nodes/models/toy_diffusion/``
in diffusers' folder layout (``unet/``, ``scheduler/``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..core import BUNDLED_MODELS

TOY_DIFFUSION_DIR = BUNDLED_MODELS / "toy_diffusion"
IMAGE_SIZE = 32
LATENT = 2  # pixels per latent side: 32×32×3 ↔ 16×16×12
CONTEXT = 77
GUIDANCE = 9.0  # the paper's Stable Diffusion settings (Sec. 4.1)
STEPS = 25
TOY_GUIDANCE = 2.0  # the toy model's own default, its best measured; at 9 its pictures saturate (README)


def unet_config(cross_attention_dim: int = 64) -> dict:
    """The toy UNet: three resolutions (16, 8, 4 latent px), cross-attention at the two lower ones (3.7 M parameters)."""
    channels = 3 * LATENT * LATENT
    return dict(sample_size=IMAGE_SIZE // LATENT, in_channels=channels, out_channels=channels, layers_per_block=1,
                block_out_channels=(48, 96, 96), norm_num_groups=16, cross_attention_dim=cross_attention_dim,
                attention_head_dim=8,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))


def to_latent(pixels: torch.Tensor) -> torch.Tensor:
    """[B, 3, 32, 32] in -1..1 → [B, 12, 16, 16] (lossless)."""
    return torch.nn.functional.pixel_unshuffle(pixels, LATENT)


def to_pixels(latent: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.pixel_shuffle(latent, LATENT)


def scheduler_config() -> dict:
    return dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
                clip_sample=True)


def check_settings(guidance: float | None, steps: int | None) -> None:
    """One clear error for generation settings a sampler cannot use (``None``: the generator's default)."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps={steps!r}: generation needs at least 1 denoising step (paper: {STEPS}).")
    if guidance is not None and (isinstance(guidance, bool) or not isinstance(guidance, (int, float))
                                 or not math.isfinite(guidance) or guidance <= 0):
        raise ValueError(f"guidance={guidance!r} must be a number > 0 (paper: {GUIDANCE}; 1 means no guidance).")


def _seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds {seeds!r}: give one or more integer seeds, one image each.")
    return [int(s) for s in seeds]


class ToyTextToImage:
    """Generate toy-world pictures from text.

    Args:
        unet: the trained ``UNet2DConditionModel``.
        clip: the toy CLIP whose text tower conditions it (``load_clip("toy")``).
        scheduler: a diffusers scheduler config (``scheduler_config()``).
    """

    name = "toy diffusion"
    guidance = TOY_GUIDANCE
    steps = STEPS

    def __init__(self, unet, clip, scheduler: dict | None = None):
        self.unet = unet.eval().requires_grad_(False)
        self.clip = clip
        self.scheduler = dict(scheduler or scheduler_config())

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def condition(self, prompts: Sequence[str | torch.Tensor]) -> torch.Tensor:
        """The text tower's hidden states for each prompt ([B, 77, W]): ``[SOT, tokens ≤ 75, EOT, EOT…]``.

        A prompt is a text, or a soft prompt: input embeddings ([M ≤ 75, D]) placed where the tokens go.
        """
        table = self.clip.token_embedding
        rows = []
        for p in prompts:
            if isinstance(p, torch.Tensor):
                if p.ndim != 2 or p.shape[1] != table.shape[1] or not 0 < p.shape[0] <= CONTEXT - 2:
                    raise ValueError(f"a soft prompt must be [M <= {CONTEXT - 2}, {table.shape[1]}] embeddings, "
                                     f"got {list(p.shape)}.")
                middle = p.to(table.device, table.dtype)
            else:
                middle = table[torch.tensor(self.clip.tokenize(p)[: CONTEXT - 2], dtype=torch.long, device=table.device)]
            pad = table[[self.clip.eot_id] * (CONTEXT - 1 - len(middle))]
            rows.append(torch.cat([table[[self.clip.sot_id]], middle, pad]))
        return self.clip.encode_sequence(embeds=torch.stack(rows)).float().to(self.device)

    @torch.no_grad()
    def generate(self, prompt: str | torch.Tensor, seeds: Sequence[int], guidance: float | None = None,
                 steps: int | None = None) -> list[Image.Image]:
        """One image per seed for ``prompt`` (a text, or a soft prompt's embeddings [M, D]): DDIM sampling with
        classifier-free guidance (``None``: this model's defaults, guidance ``TOY_GUIDANCE`` and 25 steps)."""
        from diffusers import DDIMScheduler

        check_settings(guidance, steps)
        guidance = self.guidance if guidance is None else guidance
        steps = self.steps if steps is None else steps
        seeds = _seeds(seeds)
        if not isinstance(prompt, (str, torch.Tensor)):
            raise ValueError(f"prompt {prompt!r} must be a string (or a soft prompt's embeddings).")
        scheduler = DDIMScheduler.from_config(self.scheduler)
        scheduler.set_timesteps(steps)
        n = len(seeds)
        side, channels = IMAGE_SIZE // LATENT, 3 * LATENT * LATENT
        noise = [torch.randn(channels, side, side, generator=torch.Generator().manual_seed(s)) for s in seeds]
        x = torch.stack(noise).to(self.device)
        context = self.condition(["", prompt]).repeat_interleave(n, dim=0)  # [uncond × n, cond × n]
        for t in scheduler.timesteps:
            eps = self.unet(torch.cat([x, x]), t, encoder_hidden_states=context).sample
            uncond, cond = eps.chunk(2)
            x = scheduler.step(uncond + guidance * (cond - uncond), t, x).prev_sample
        pixels = ((to_pixels(x).clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(p) for p in pixels]

    def save(self, folder: Path, report: dict | None = None) -> None:
        """diffusers' layout: ``unet/`` (config + safetensors), ``scheduler/``, ``model_index.json``."""
        folder = Path(folder)
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        (folder / "scheduler").mkdir(parents=True, exist_ok=True)
        (folder / "scheduler" / "scheduler_config.json").write_text(
            json.dumps({"_class_name": "DDIMScheduler", **self.scheduler}, indent=2) + "\n")
        index = {"_class_name": "PEZToyTextToImage", "unet": ["diffusers", "UNet2DConditionModel"],
                 "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": "pez toy CLIP (pez_nodes/models/toy)",
                 "image_size": IMAGE_SIZE}
        (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        if report is not None:
            (folder / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")


def load_toy_generator(folder: Path | str = TOY_DIFFUSION_DIR, clip=None, device: str = "cpu") -> ToyTextToImage:
    """The shipped toy text-to-image model (needs ``diffusers``); ``clip`` defaults to the bundled toy CLIP."""
    from diffusers import UNet2DConditionModel

    from ..core import load_clip

    folder = Path(folder)
    if not (folder / "unet" / "config.json").is_file():
        raise ValueError(f"no toy diffusion model in {folder}; train one with tools/train_toy_diffusion.py.")
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True, local_files_only=True,
                                                low_cpu_mem_usage=False)  # no `accelerate` needed, no warning
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    return ToyTextToImage(unet.to(device), clip if clip is not None else load_clip("toy", device=device), config)
