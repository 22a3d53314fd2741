"""What PEZ needs from a frozen text encoder, and how token ids become text features through it.

The optimiser (``optim/loop.py``) only ever talks to a :class:`TextEncoder`: a token embedding table, a
tokenizer, and a function from a sequence of *embeddings* to text features. Anything that offers
these — open_clip's CLIP (``clip/backbone.py``), later ComfyUI's own CLIP or a language model — can be
optimised against without touching the loop.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch
import torch.nn.functional as F


@runtime_checkable
class TextEncoder(Protocol):
    """A frozen causal text encoder seen through its input embeddings.

    Attributes:
        token_embedding: the vocabulary embedding matrix ``E`` ([V, D]); PEZ projects onto its rows.
        context_length: tokens the encoder takes, start and end token included (77 for CLIP).
        sot_id / eot_id: the start and end token ids that frame every prompt.
        special_ids: ids that must never appear inside a learned prompt.
        vocabulary_ids: the ids the model declares it knows (``None``: every id); PEZ projects only onto them.
    """

    token_embedding: torch.Tensor
    context_length: int
    sot_id: int
    eot_id: int
    special_ids: frozenset[int]
    vocabulary_ids: torch.Tensor | None

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens and without truncation."""

    def decode(self, ids: Sequence[int]) -> str:
        """Readable text for ``ids`` (what a user copies)."""

    def token_texts(self) -> list[str]:
        """Each token id's text, lower-case, without word-boundary markers (for vocabulary filters)."""

    def encode_embeddings(self, embeds: torch.Tensor, eot_index: torch.Tensor | None = None) -> torch.Tensor:
        """Text features ([B, F]) of the embedded sequences ``embeds`` ([B, L, D]).

        ``embeds`` starts with the start token and holds the end token at ``eot_index`` (default: the
        last position). Only positions up to the end token matter: the causal mask hides the rest.
        """


def embed_token_ids(encoder: TextEncoder, batch: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed ``[SOT] + ids + [EOT]`` for each id list; returns (embeds [B, L, D], eot_index [B]).

    Rows are padded with zeros after their end token; the causal mask makes padding irrelevant.
    """
    table = encoder.token_embedding
    rows = [[encoder.sot_id, *ids, encoder.eot_id] for ids in batch]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long, device=table.device)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    embeds = table[ids]
    lengths = torch.tensor([len(r) for r in rows], device=table.device)
    return embeds, lengths - 1


@torch.no_grad()
def encode_token_ids(encoder: TextEncoder, batch: Sequence[Sequence[int]]) -> torch.Tensor:
    """Unnormalised text features of ``[SOT] + ids + [EOT]`` for each id list ([B, F])."""
    embeds, eot_index = embed_token_ids(encoder, batch)
    return encoder.encode_embeddings(embeds, eot_index).float()


def max_prompt_tokens(encoder: TextEncoder) -> int:
    """Tokens available between the start and end token (75 for CLIP's 77-token window)."""
    return encoder.context_length - 2


@torch.no_grad()
def encode_text(encoder: TextEncoder, text: str) -> torch.Tensor:
    """Normalised feature ([F]) of ``text``, however long.

    Texts that fit the window are encoded as the tokenizer gives them. A longer text is split into
    consecutive windows of at most ``context_length - 2`` tokens, each window is encoded on its own and
    the normalised features are averaged, weighted by the tokens each window holds, then normalised
    again. Nothing is silently cut: every token of the text contributes.
    """
    ids = encoder.tokenize(text)
    if not ids:
        raise ValueError(f"text {text!r} has no tokens; give a non-empty text.")
    size = max_prompt_tokens(encoder)
    windows = [ids[i : i + size] for i in range(0, len(ids), size)]
    feats = F.normalize(encode_token_ids(encoder, windows), dim=-1)
    weights = torch.tensor([len(w) for w in windows], dtype=feats.dtype, device=feats.device)
    return F.normalize((feats * weights[:, None]).sum(0), dim=-1)
