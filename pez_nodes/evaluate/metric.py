"""The paper's score of a generation: CLIP image–image cosine similarity between target and generated image."""

from __future__ import annotations

from typing import Sequence

import torch

from ..core import image_features


def image_similarity(clip, targets: Sequence, generated: Sequence) -> torch.Tensor:
    """Cosine similarity ([T, G]) of every target image with every generated image under ``clip``.

    Images are anything the core reads (paths, PIL images, tensors); ``clip`` is the judge (the reference
    CLIP for the paper's metric), any PEZ model with an image encoder.
    """
    if len(targets) == 0 or len(generated) == 0:
        raise ValueError(f"image similarity needs images on both sides, got {len(targets)} targets and "
                         f"{len(generated)} generated images.")
    with torch.no_grad():
        a = image_features(clip, list(targets))
        b = image_features(clip, list(generated))
    return (a @ b.T).cpu()


def paired_similarity(clip, first: Sequence, second: Sequence) -> torch.Tensor:
    """Cosine similarity ([N]) of ``first[i]`` with ``second[i]`` (one batch may also hold a single image,
    compared with every image of the other)."""
    n, m = len(first), len(second)
    if n == 0 or m == 0 or (n != m and 1 not in (n, m)):
        raise ValueError(f"paired similarity needs two batches of the same size (or one image against a batch), "
                         f"got {n} and {m}.")
    sims = image_similarity(clip, first, second)
    if n == m:
        return sims.diagonal().clone()
    return sims.flatten()
