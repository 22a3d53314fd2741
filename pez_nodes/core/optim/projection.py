"""The projection step of Algorithm 1: P′ = Proj_E(P), the nearest vocabulary rows by cosine.

The allowed rows of the embedding matrix ``E`` are normalised once per (model, vocabulary filter);
each step is then one normalised matmul and an argmax. Special tokens (start, end) are never
allowed, unlike the paper's code, which could place an end token inside a prompt.
"""

from __future__ import annotations

import weakref
from typing import Sequence

import torch
import torch.nn.functional as F


class VocabularyProjector:
    """Nearest-neighbour projection onto the rows ``allowed_ids`` of ``table``.

    Args:
        table: the token embedding matrix ``E`` ([V, D]).
        allowed_ids: ids that prompts may use (1-D LongTensor, non-empty).
        parts: for a table that joins several encoders' tables side by side ([V, D₁ + D₂ + …], one token
            sequence read by several text encoders), their widths; each token is then chosen by the sum of
            its cosines in each part, ``argmax_v Σ_e cos(P_e, E_e[v])``, so the tables' different norms and
            widths do not matter. Default: one part.
        voting: per part, whether it takes part in choosing tokens (default: all).
    """

    def __init__(self, table: torch.Tensor, allowed_ids: torch.Tensor, parts: Sequence[int] | None = None,
                 voting: Sequence[bool] | None = None):
        if allowed_ids.numel() == 0:
            raise ValueError("the vocabulary filter leaves no token to choose from; relax the blocklist / allowlist.")
        self.table = table.detach()
        self.allowed_ids = allowed_ids.to(table.device, torch.long)
        self.parts = list(parts) if parts is not None else [table.shape[-1]]
        voting = list(voting) if voting is not None else [True] * len(self.parts)
        if sum(self.parts) != table.shape[-1] or len(voting) != len(self.parts) or not any(voting):
            raise ValueError(f"parts {self.parts} (voting {voting}) do not split a {table.shape[-1]}-wide table.")
        rows = self.table[self.allowed_ids].float().split(self.parts, dim=-1)
        # [V', D_e] per voting part, normalised once per model/filter
        self.normed = [F.normalize(r, dim=-1) if v else None for r, v in zip(rows, voting)]

    def cosines(self, prompt: torch.Tensor) -> torch.Tensor:
        """Cosine of each vector of ``prompt`` with each allowed row, summed over voting parts ([..., D] → [..., V′]).

        Differentiable in ``prompt`` (the fluency term's soft token choice uses it); ``nearest_ids`` is its argmax."""
        flat = prompt.reshape(-1, prompt.shape[-1]).float()
        score = None
        for piece, normed in zip(flat.split(self.parts, dim=-1), self.normed):
            if normed is not None:
                cos = F.normalize(piece, dim=-1) @ normed.T
                score = cos if score is None else score + cos
        return score.reshape(*prompt.shape[:-1], -1)

    def nearest_ids(self, prompt: torch.Tensor) -> torch.Tensor:
        """Token ids of the rows nearest (cosine, summed over voting parts) to each vector of ``prompt`` ([..., D] → [...])."""
        with torch.no_grad():
            return self.allowed_ids[self.cosines(prompt.detach()).argmax(dim=-1)]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The exact vocabulary rows ``E[ids]``."""
        return self.table[ids]

    def random_ids(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Ids drawn uniformly from the allowed vocabulary (Algorithm 1's random initialisation)."""
        pick = torch.randint(len(self.allowed_ids), shape, generator=generator)
        return self.allowed_ids[pick.to(self.allowed_ids.device)]


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def projector_for(encoder, allowed_ids: torch.Tensor | None = None) -> VocabularyProjector:
    """The projector for ``encoder`` and a vocabulary filter, built (normalised) once and cached per model.

    An encoder that joins several tables (``JointClip``) says how to split them (``projection_parts``)."""
    table = encoder.token_embedding
    if allowed_ids is None:
        from .vocabulary import allowed_token_ids

        allowed_ids = allowed_token_ids(encoder)
    key = (str(table.device), table.data_ptr(), hash(allowed_ids.cpu().numpy().tobytes()))
    per_model = _CACHE.setdefault(encoder, {})
    if key not in per_model:
        per_model.clear()
        parts, voting = getattr(encoder, "projection_parts", (None, None))
        per_model[key] = VocabularyProjector(table, allowed_ids, parts, voting)
    return per_model[key]
