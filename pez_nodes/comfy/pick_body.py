"""PEZ Prompt List and PEZ Pick by Generation, as plain functions (the V3 node classes in ``nodes.py`` call these).

A workflow that chooses a prompt by what it generates: PEZ Prompt List puts the candidate prompts in a ComfyUI
list, so the user's own CLIPTextEncode → KSampler → VAE Decode run once per candidate; PEZ Pick by Generation
gets every prompt and every image batch (its inputs are lists) and keeps the prompt whose images a judge CLIP
finds closest to the target(s) (``evaluate.pick``, which says why). Runs without ComfyUI.
"""

from __future__ import annotations

from typing import Sequence

from ..core import split_batch
from ..evaluate.pick import GenerationPick, pick_by_generated_images
from . import node_bodies


def prompt_list(texts: Sequence, lines: str = "") -> list[str]:
    """The non-empty prompts, in order: each connected text (a text, or a list of texts), then each line of
    ``lines``. A prompt given twice is kept once; none at all is one error saying what to connect."""
    given = []
    for text in texts:
        given += text if isinstance(text, (list, tuple)) else [text]
    given += (lines or "").splitlines()
    prompts = []
    for text in given:
        if isinstance(text, str) and text.strip() and text.strip() not in prompts:
            prompts.append(text.strip())
    if not prompts:
        raise ValueError("PEZ Prompt List has no prompts: connect text_a / text_b, or write one prompt a line in "
                         "'lines'.")
    return prompts


def pick(prompts: Sequence[str], images: Sequence, targets: Sequence, pez_clip=None, clip_vision=None,
         crop: str = "center") -> GenerationPick:
    """The candidate prompt whose image batch is closest to the targets under the judge.

    ``prompts``: N prompts; ``images``: N ComfyUI IMAGE batches ([B, H, W, C]), batch i generated from prompt i;
    ``targets``: one or more IMAGE batches, all their images the targets. Exactly one judge: ``pez_clip`` or
    ``clip_vision`` (as PEZ Image Similarity). Each bad input is one error naming it and the fix.
    """
    prompts, images = list(prompts or []), [b for b in (images or []) if b is not None]
    if not prompts:
        raise ValueError("prompts is empty: connect the candidate prompts (a list, e.g. from PEZ Prompt List).")
    if not all(isinstance(p, str) for p in prompts):
        kinds = sorted({type(p).__name__ for p in prompts if not isinstance(p, str)})
        raise ValueError(f"prompts holds {', '.join(kinds)}, not text: connect STRING prompts (e.g. PEZ Prompt List).")
    if not images:
        raise ValueError("images is empty: connect the images generated from each prompt (VAE Decode fed by "
                         "CLIPTextEncode of the same prompt list).")
    if len(prompts) != len(images):
        batches = f"1 image batch (of {images[0].shape[0]} images)" if len(images) == 1 else f"{len(images)} image batches"
        raise ValueError(f"prompts has {len(prompts)} prompts but images has {batches}: "
                         "generate one batch per prompt, in order — encode the same prompt list with CLIPTextEncode "
                         "so KSampler and VAE Decode run once per prompt.")
    target_images = [im for batch in (targets or []) if batch is not None for im in split_batch(batch)]
    if not target_images:
        raise ValueError("target is empty: connect the target image(s) the prompts should regenerate.")
    judge = node_bodies.judge(pez_clip, clip_vision, crop)
    return pick_by_generated_images(judge, prompts, target_images, [split_batch(b) for b in images])


def ranking_text(result: GenerationPick, prompts: Sequence[str]) -> str:
    """What the node shows: the chosen prompt and its score, then every candidate best first."""
    return (f"best (#{result.index + 1} of {len(prompts)}): {result.prompt}\nsimilarity {result.score:.4f}\n\n"
            + result.table(prompts))
