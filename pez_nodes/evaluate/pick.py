"""Choosing among prompts by what they generate (best-of-N by generation).

Why: a better CLIP text–image score does not predict a closer regenerated image. Williams, Schwarzschild and
Kolter (2024, "Prompt Recovery for Image Generation Models: A Comparative Study of Discrete Optimizers",
arXiv:2408.06502) found the CLIP similarity of a recovered prompt to the target image a poor proxy for how
close the images generated from it come: a prompt is judged by what it generates — the PEZ paper's own
metric (``metric.py``). On the toy world the same holds: for a small purple star on grass, the toy CLIP scores
"small purple grass" above "a small purple star on grass" (it barely sees the small star), yet the toy
generator, told no shape, draws other shapes (``tests/test_pick.py`` has the measured numbers).

So: generate from each candidate prompt, embed the generated images and the target image(s) with a judge
CLIP, and keep the candidate whose images are closest on average. ``pick_by_generation`` works on features
(plain torch, any judge); ``pick_by_generated_images`` embeds images with a PEZ model first, as ``metric``
does. ``pez eval --pick-by-generation N``, the ComfyUI node PEZ Pick by Generation and
``benchmarks/bench_readable.py``'s best-of-N row use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..core import image_features


@dataclass(frozen=True)
class GenerationPick:
    """The candidate whose generations are closest to the targets.

    Attributes:
        index: the chosen candidate's position in the prompts given (ties: the first, i.e. the earlier one).
        prompt: that candidate's prompt.
        scores: each candidate's mean cosine similarity, over its generated images × the targets, in the order given.
        per_image: each candidate's generated images' cosine similarity, each the mean over the targets.
    """

    index: int
    prompt: str
    scores: tuple[float, ...]
    per_image: tuple[tuple[float, ...], ...]

    @property
    def score(self) -> float:
        """The chosen candidate's mean similarity."""
        return self.scores[self.index]

    def ranking(self) -> list[int]:
        """Candidate indices, closest generations first (ties keep the given order)."""
        return sorted(range(len(self.scores)), key=lambda i: (-self.scores[i], i))

    def table(self, prompts: Sequence[str] | None = None) -> str:
        """One line per candidate, best first: rank, score, position given, prompt."""
        prompts = list(prompts) if prompts is not None else [self.prompt if i == self.index else ""
                                                              for i in range(len(self.scores))]
        return "\n".join(f"{rank}. {self.scores[i]:.4f}  #{i + 1}  {prompts[i]}".rstrip()
                         for rank, i in enumerate(self.ranking(), 1))


def pick_by_generation(prompts: Sequence[str], target_features: torch.Tensor,
                       generated_features: Sequence[torch.Tensor]) -> GenerationPick:
    """The prompt whose generated images are closest to the targets, with every candidate's score.

    Args:
        prompts: the N candidate prompts.
        target_features: the judge's features of the target image(s), [T, F] (or [F] for one).
        generated_features: for each prompt, in the same order, the judge's features of the images generated
            from it, [G_i, F] (or [F] for one image).

    Features are normalised here, so raw embeddings work; a candidate's score is its mean cosine similarity over
    its G_i images × the T targets. Bad input is one ``ValueError`` naming what is wrong.
    """
    prompts, generated = list(prompts), list(generated_features)
    _check_counts(prompts, generated)
    targets = _rows(target_features, "the target features")
    per_image = []
    for i, feats in enumerate(generated):
        feats = _rows(feats, f"the generated images of prompt {i + 1} ({prompts[i]!r})")
        if feats.shape[1] != targets.shape[1]:
            raise ValueError(f"the generated images of prompt {i + 1} have {feats.shape[1]}-wide features, the "
                             f"targets {targets.shape[1]}-wide; embed both with the same judge.")
        sims = F.normalize(feats, dim=-1) @ F.normalize(targets, dim=-1).T  # [G_i, T]
        per_image.append(tuple(float(s) for s in sims.mean(dim=1)))
    scores = tuple(sum(p) / len(p) for p in per_image)
    index = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return GenerationPick(index, prompts[index], scores, tuple(per_image))


def pick_by_generated_images(judge, prompts: Sequence[str], targets: Sequence,
                             generated: Sequence[Sequence]) -> GenerationPick:
    """``pick_by_generation`` on images: the target images and, per prompt, its generated images (paths, PIL
    images or tensors, as the core reads them), embedded with ``judge`` (a PEZ model with an image encoder, or
    anything with ``encode_images``, like ``metric``'s judge)."""
    prompts, generated = list(prompts), [list(g) for g in generated]
    _check_counts(prompts, generated)  # before anything is encoded
    if len(targets) == 0:
        raise ValueError("no target images; give the image(s) the prompts should regenerate.")
    empty = [i + 1 for i, g in enumerate(generated) if not g]
    if empty:
        raise ValueError(f"prompt {empty[0]} has no generated images; generate one or more images per prompt.")
    with torch.no_grad():
        target_feats = image_features(judge, list(targets))
        feats = [image_features(judge, g) for g in generated]
    return pick_by_generation(prompts, target_feats, feats)


def _check_counts(prompts: list, generated: list) -> None:
    if not prompts:
        raise ValueError("no candidate prompts to choose from; give one or more prompts.")
    if len(prompts) != len(generated):
        raise ValueError(f"got {len(prompts)} prompts but {len(generated)} sets of generated images; give one set "
                         "per prompt, in the same order.")


def _rows(features, what: str) -> torch.Tensor:
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"{what} are a {type(features).__name__}, not a tensor; give the judge's features [N, F].")
    if features.ndim == 1:
        features = features[None]
    if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
        raise ValueError(f"{what} have shape {tuple(features.shape)}; give one or more feature rows [N, F].")
    return features.detach().float().cpu()
