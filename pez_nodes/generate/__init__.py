"""Text-to-image generation for judging prompts (the paper's loop): the toy model and real Stable Diffusion.

Every generator has ``generate(prompt, seeds, guidance=None, steps=None) -> list[PIL.Image]`` (one
image per seed), a ``name`` and its default ``guidance`` / ``steps`` (used for ``None``): the paper's
guidance 9 and 25 steps for Stable Diffusion; guidance 2 for the toy model, which saturates at 9. diffusers (and, for real
Stable Diffusion, transformers) are imported only when a generator is loaded, never by the core or
the ComfyUI nodes.
"""

from __future__ import annotations

from pathlib import Path


def load_generator(source: str = "toy", device: str = "cpu", config: str | None = None):
    """``"toy"``: the bundled toy text-to-image model; a diffusers folder or a single ``.safetensors`` /
    ``.ckpt``-free checkpoint file: Stable Diffusion 1.x / 2.x / SDXL, loaded offline (``config``: a local
    diffusers folder whose configs a single file uses)."""
    try:
        import diffusers  # noqa: F401
    except ImportError as e:
        raise ValueError("generation needs diffusers; install it with pip install 'pez-hard-prompts[generate]'.") from e
    if source == "toy":
        from .toy import load_toy_generator

        return load_toy_generator(device=device)
    from .stable_diffusion import load_stable_diffusion

    return load_stable_diffusion(Path(source), device=device, config=config)
