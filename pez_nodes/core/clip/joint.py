"""Several CLIP text towers that read ONE token sequence — SDXL's CLIP-L and OpenCLIP bigG, say.

SDXL conditions its UNet on two text encoders that share CLIP's 49,408-token vocabulary and tokenizer.
Two prompts learned apart "don't work very well" (users of the paper's code); here one hard prompt is
learned for both. PEZ's continuous prompt becomes the towers' prompts side by side, ``P = [P_l | P_g]``
([M, D_l + D_g]), and Algorithm 1 is unchanged:

* projection: each position's token is chosen by both embedding tables jointly,
  ``ids = argmax_v Σ_e cos(P_e, E_e[v])`` (``projection.VocabularyProjector`` with ``parts``), so the
  tables' different widths and norms do not matter;
* loss: each tower reads its own ``E_e[ids]`` and the similarity is ``Σ_e w_e cos(f_e, g_e) / Σ_e w_e``
  against each tower's own targets ``g_e`` (an image feature from the vision model that matches that
  tower); the straight-through gradient reaches each ``P_e``.

This is written as one ``TextEncoder`` whose feature is ``[√(w_e/Σw) · f_e/|f_e|]`` concatenated over
towers: the cosine of two such features is exactly the weighted mean of the towers' cosines, so the
CLIP objective, the best-so-far tracking and the round-trip scoring run on it unchanged. A tower of
weight 0 neither scores nor votes; its ids are still valid for it (the vocabulary is shared).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .backbone import ClipBackbone

ImageFeatures = Callable[[list], torch.Tensor]
"""``images -> features`` ([N, F], unnormalised) for a list of images (paths, PIL images or tensors)."""


@dataclass(frozen=True)
class Tower:
    """One text encoder of a :class:`JointClip`.

    Args:
        name: how the host calls it (``"clip_l"``, ``"clip_g"``), used in notes and errors.
        text: the text tower (a text-only :class:`ClipBackbone`).
        images: the image encoder that matches this tower (same CLIP training run), or None.
        weight: its share of the similarity (>= 0).
    """

    name: str
    text: ClipBackbone
    images: ImageFeatures | None = None
    weight: float = 1.0


class JointClip:
    """A :class:`~pez_nodes.core.optim.text_encoder.TextEncoder` over one or more towers sharing a vocabulary.

    Args:
        towers: the text encoders (the first one's tokenizer is everyone's).
        name: shown in results and errors.
        notes: what the builder decided for the user, shown with results.
        image_hint: what to do when images are given but no tower has an image encoder.
    """

    def __init__(self, towers: Sequence[Tower], name: str, notes: Sequence[str] = (), image_hint: str = ""):
        if not towers:
            raise ValueError("a JointClip needs at least one text tower.")
        first = towers[0].text
        for t in towers:
            if not isinstance(t.weight, (int, float)) or not math.isfinite(t.weight) or t.weight < 0:
                raise ValueError(f"the weight of {t.name} is {t.weight!r}; give a number >= 0.")
            if t.text.token_embedding.shape[0] != first.token_embedding.shape[0] or t.text.eot_id != first.eot_id:
                raise ValueError(f"{t.name} and {towers[0].name} do not share a vocabulary; one prompt cannot serve both.")
            if t.text.device != first.device:
                raise ValueError(f"{t.name} is on {t.text.device} but {towers[0].name} on {first.device}; put them on one device.")
        if not any(t.weight > 0 for t in towers):
            raise ValueError(f"every text encoder of {name} has weight 0; give at least one a weight > 0.")
        self.towers = tuple(towers)
        self.name = name
        self.notes = list(notes)
        self.image_hint = image_hint
        self.declared_words = first.declared_words  # the first tower's folder vocabulary (greedy_bank's bank)
        self.tokenizer = first.tokenizer
        self.sot_id, self.eot_id = first.sot_id, first.eot_id
        self.special_ids = frozenset().union(*(t.text.special_ids for t in towers))
        self.context_length = min(t.text.context_length for t in towers)
        self.vocabulary_ids = None
        self.widths = [t.text.token_embedding.shape[1] for t in towers]
        if len(towers) == 1:
            self.token_embedding = first.token_embedding
        else:
            self.token_embedding = torch.cat([t.text.token_embedding.detach() for t in towers], dim=1)
        self._image_view: JointClip | None = None

    # --- TextEncoder -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.token_embedding.device

    @property
    def weights(self) -> list[float]:
        return [t.weight for t in self.towers]

    @property
    def projection_parts(self) -> tuple[list[int], list[bool]]:
        """How ``projection.projector_for`` splits the joint table: widths, and which towers vote."""
        return self.widths, [w > 0 for w in self.weights]

    def tokenize(self, text: str) -> list[int]:
        return self.towers[0].text.tokenize(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.towers[0].text.decode(ids)

    def token_texts(self) -> list[str]:
        return self.towers[0].text.token_texts()

    def encode_embeddings(self, embeds: torch.Tensor, eot_index: torch.Tensor | None = None) -> torch.Tensor:
        """Each tower's feature of its own slice of ``embeds`` ([B, L, ΣD]), joined as described above ([B, ΣF])."""
        if len(self.towers) == 1:
            return self.towers[0].text.encode_embeddings(embeds, eot_index)
        total = sum(self.weights)
        feats = []
        for tower, part in zip(self.towers, embeds.split(self.widths, dim=-1)):
            if tower.weight > 0:
                feat = F.normalize(tower.text.encode_embeddings(part, eot_index).float(), dim=-1)
                feats.append(feat * math.sqrt(tower.weight / total))
        return torch.cat(feats, dim=-1)

    # --- images ------------------------------------------------------------------------------
    def encode_images(self, images: list) -> torch.Tensor:
        """Image features of ``images``, joined like the text features: each scoring tower's own image encoder."""
        missing = [t.name for t in self.towers if t.weight > 0 and t.images is None]
        if missing:
            raise ValueError(f"{self.name}: {', '.join(missing)} has no image encoder. {self.image_hint}".strip())
        total = sum(self.weights)
        feats = []
        for tower in self.towers:
            if tower.weight > 0:
                feat = F.normalize(tower.images(list(images)).float().to(self.device), dim=-1)
                feats.append(feat * math.sqrt(tower.weight / total) if len(self.towers) > 1 else feat)
        return torch.cat(feats, dim=-1)

    def for_images(self) -> "JointClip":
        """This model for runs with image targets: towers without an image encoder get weight 0 (a note says so)."""
        if all(t.images is not None or t.weight == 0 for t in self.towers):
            return self
        if self._image_view is None:
            scoring = [t for t in self.towers if t.images is not None and t.weight > 0]
            if not scoring:
                names = ", ".join(t.name for t in self.towers)
                raise ValueError(f"{self.name} has no image encoder for its text encoder ({names}), so it cannot "
                                 f"invert images. {self.image_hint}".strip())
            view = copy.copy(self)
            view.towers = tuple(t if t in scoring else Tower(t.name, t.text, t.images, 0.0) for t in self.towers)
            left = [t.name for t in self.towers if t not in scoring and t.weight > 0]
            view.notes = [*self.notes, f"{', '.join(left)} has no matching image encoder: "
                                       f"{', '.join(t.name for t in scoring)} alone scores the prompt against images "
                                       "(its tokens are valid for every text encoder)."]
            view._image_view = view
            self._image_view = view
        return self._image_view

    def __repr__(self) -> str:
        parts = ", ".join(f"{t.name}×{t.weight:g}{'+img' if t.images else ''}" for t in self.towers)
        return f"JointClip({self.name!r}: {parts})"
