"""The projection step of Algorithm 1: P′ = Proj_E(P), the nearest vocabulary rows by cosine.

The allowed rows of the embedding matrix ``E`` are normalised once per (model, vocabulary filter);
each step is then one normalised matmul and an argmax. Special tokens (start, end) are never
allowed, unlike the paper's code, which could place an end token inside a prompt.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F


class VocabularyProjector:
    """Nearest-neighbour projection onto the rows ``allowed_ids`` of ``table``.

    Args:
        table: the token embedding matrix ``E`` ([V, D]).
        allowed_ids: ids that prompts may use (1-D LongTensor, non-empty).
    """

    def __init__(self, table: torch.Tensor, allowed_ids: torch.Tensor):
        if allowed_ids.numel() == 0:
            raise ValueError("the vocabulary filter leaves no token to choose from; relax the blocklist / allowlist.")
        self.table = table.detach()
        self.allowed_ids = allowed_ids.to(table.device, torch.long)
        self.normed = F.normalize(self.table[self.allowed_ids].float(), dim=-1)  # [V', D], once per model/filter

    def nearest_ids(self, prompt: torch.Tensor) -> torch.Tensor:
        """Token ids of the rows nearest (cosine) to each vector of ``prompt`` ([..., D] → [...])."""
        flat = F.normalize(prompt.detach().reshape(-1, prompt.shape[-1]).float(), dim=-1)
        best = (flat @ self.normed.T).argmax(dim=-1)
        return self.allowed_ids[best].reshape(prompt.shape[:-1])

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The exact vocabulary rows ``E[ids]``."""
        return self.table[ids]

    def random_ids(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Ids drawn uniformly from the allowed vocabulary (Algorithm 1's random initialisation)."""
        pick = torch.randint(len(self.allowed_ids), shape, generator=generator)
        return self.allowed_ids[pick.to(self.allowed_ids.device)]


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def projector_for(encoder, allowed_ids: torch.Tensor | None = None) -> VocabularyProjector:
    """The projector for ``encoder`` and a vocabulary filter, built (normalised) once and cached per model."""
    table = encoder.token_embedding
    if allowed_ids is None:
        from .vocabulary import allowed_token_ids

        allowed_ids = allowed_token_ids(encoder)
    key = (str(table.device), table.data_ptr(), hash(allowed_ids.cpu().numpy().tobytes()))
    per_model = _CACHE.setdefault(encoder, {})
    if key not in per_model:
        per_model.clear()
        per_model[key] = VocabularyProjector(table, allowed_ids)
    return per_model[key]
