"""Real Stable Diffusion (1.x, 2.x, SDXL) through diffusers, offline, with the paper's settings.

A diffusers folder (``model_index.json``) loads with ``DiffusionPipeline.from_pretrained(...,
local_files_only=True)``; a single ``.safetensors`` checkpoint with ``from_single_file`` — whose model
configs come from a local diffusers folder (``config``) or from the Hugging Face cache, never from the
network at run time. No safety checker is loaded (it is a separate download).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence
from contextlib import contextmanager

import torch
from PIL import Image

from .toy import GUIDANCE, STEPS, _seeds, check_settings


class StableDiffusionGenerator:
    """A loaded diffusers text-to-image pipeline with ``generate(prompt, seeds, guidance, steps)``."""

    guidance = GUIDANCE  # the paper's settings (Sec. 4.1)
    steps = STEPS

    def __init__(self, pipeline, name: str):
        self.pipeline = pipeline
        self.name = name

    def generate(self, prompt: str, seeds: Sequence[int], guidance: float | None = None,
                 steps: int | None = None) -> list[Image.Image]:
        """One image per seed; ``None`` settings: the paper's guidance 9 and 25 steps."""
        check_settings(guidance, steps)
        guidance = self.guidance if guidance is None else guidance
        steps = self.steps if steps is None else steps
        images = []
        for seed in _seeds(seeds):
            generator = torch.Generator(device="cpu").manual_seed(seed)
            out = self.pipeline(prompt, guidance_scale=float(guidance), num_inference_steps=steps, generator=generator)
            images.append(out.images[0])
        return images


def check_generator_source(source: str) -> None:
    """Refuse a generator that names no file or folder, before anything loads (one line naming it)."""
    if source != "toy" and not Path(source).expanduser().exists():
        raise ValueError(f"Stable Diffusion model {source!r} does not exist; give a diffusers folder (with "
                         "model_index.json) or a .safetensors checkpoint file.")


def load_stable_diffusion(path: Path, device: str = "cpu", config: str | None = None) -> StableDiffusionGenerator:
    import diffusers
    import huggingface_hub

    diffusers.utils.logging.disable_progress_bar()  # loading bars would interleave with ours
    path = Path(path)
    check_generator_source(str(path))
    options = dict(safety_checker=None, requires_safety_checker=False)
    try:
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise ValueError(f"folder {str(path)!r} is not a diffusers pipeline (no model_index.json); give the "
                                 "folder that save_pretrained wrote, or a .safetensors checkpoint file.")
            pipe = diffusers.DiffusionPipeline.from_pretrained(path, local_files_only=True, **options)
        elif path.suffix == ".safetensors":
            cls = diffusers.StableDiffusionXLPipeline if _is_sdxl(path) else diffusers.StableDiffusionPipeline
            extra = {"config": config} if config else {}
            # Without ``config`` diffusers looks for the model type's configs in the Hugging Face cache and, when they
            # are not there, quietly retries with local_files_only=False (a download); hold the hub offline instead.
            with _hub_offline():
                pipe = cls.from_single_file(str(path), local_files_only=True, **extra, **options)
        else:
            raise ValueError(f"{str(path)!r} is neither a diffusers folder nor a .safetensors checkpoint; pickled "
                             "checkpoints (.ckpt) are not loaded.")
    except (OSError, EnvironmentError) as e:
        if not config and not path.is_dir() and isinstance(e, huggingface_hub.errors.LocalEntryNotFoundError):
            raise ValueError(f"single-file checkpoint {path.name!r} needs its model configs and none are in the "
                             "Hugging Face cache (nothing is downloaded); pass config=<a local diffusers folder of the "
                             "same model type> (CLI: --sd-config).") from e
        raise ValueError(f"could not load Stable Diffusion from {str(path)!r} offline ({str(e).splitlines()[0]}); a "
                         "single-file checkpoint needs its configs: pass config=<a local diffusers folder of the "
                         "same model type> (CLI: --sd-config).") from e
    pipe.set_progress_bar_config(disable=True)
    return StableDiffusionGenerator(pipe.to(device), path.name)


@contextmanager
def _hub_offline():
    """Hold the Hugging Face hub offline for this block (huggingface_hub reads HF_HUB_OFFLINE once, at import)."""
    import huggingface_hub

    before = huggingface_hub.constants.HF_HUB_OFFLINE
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE = before


def _is_sdxl(path: Path) -> bool:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return any(k.startswith("conditioner.embedders.1.") for k in f.keys())
    except (SafetensorError, OSError) as e:
        raise ValueError(f"checkpoint {path.name!r} could not be read as safetensors ({e}); re-download it.") from e
