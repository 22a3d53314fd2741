"""Which tokens a learned prompt may use: blocklist, allowlist and ASCII-only filters.

The paper's notebook blocks words by zeroing embedding rows whose token string *contains* a blocked
substring; related words and words spelled from several sub-word pieces still get through. Here:

* ``blocklist`` words are matched case-insensitively against whole tokens (``substring=True``: any
  token containing them, the paper's rule), those tokens are removed from the projection's
  vocabulary, **and** any prompt whose text still spells a blocked word (from pieces) is never
  returned — a blocked word cannot appear in the output.
* ``allowlist`` keeps only the tokens that spell the listed words (the paper's keyword-bank ablation).
* ``ascii_only`` keeps tokens made of printable ASCII (no emoji, no non-Latin scripts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch

from .text_encoder import TextEncoder


@dataclass(frozen=True)
class VocabularyFilter:
    """Args:
    blocklist: words that must not appear in a prompt.
    substring: block every token containing a blocked word, not just whole-word tokens.
    allowlist: if given, prompts use only tokens that spell these words.
    ascii_only: only tokens of printable ASCII characters.
    """

    blocklist: tuple[str, ...] = ()
    substring: bool = False
    allowlist: tuple[str, ...] | None = None
    ascii_only: bool = False

    @classmethod
    def make(cls, blocklist: Sequence[str] = (), substring: bool = False, allowlist: Sequence[str] | None = None,
             ascii_only: bool = False) -> "VocabularyFilter":
        if isinstance(blocklist, str):
            blocklist = blocklist.split(",")
        block = tuple(w.strip().lower() for w in (blocklist or ()) if w and w.strip())
        allow = None
        if allowlist is not None:
            allow = tuple(w.strip().lower() for w in allowlist if w and w.strip())
            if not allow:
                raise ValueError("the allowlist is empty; give at least one word (one per line in the file).")
        return cls(block, bool(substring), allow, bool(ascii_only))

    @property
    def active(self) -> bool:
        return bool(self.blocklist or self.allowlist is not None or self.ascii_only)

    def allows_text(self, text: str) -> bool:
        """False if ``text`` spells a blocked word (whole word, or anywhere with ``substring``)."""
        lowered = text.lower()
        for word in self.blocklist:
            if (word in lowered) if self.substring else re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", lowered):
                return False
        return True


def allowed_token_ids(encoder: TextEncoder, filt: VocabularyFilter | None = None) -> torch.Tensor:
    """Ids a prompt may use: the model's vocabulary (all ids unless it declares fewer), never special
    tokens, narrowed by ``filt``; a ``ValueError`` if none remain."""
    vocab = encoder.token_embedding.shape[0]
    keep = torch.ones(vocab, dtype=torch.bool)
    known = getattr(encoder, "vocabulary_ids", None)
    if known is not None:
        keep[:] = False
        keep[torch.as_tensor(known, dtype=torch.long).cpu()] = True
    for i in encoder.special_ids:
        keep[i] = False
    if filt is not None and filt.active:
        texts = encoder.token_texts()
        if filt.allowlist is not None:
            allowed = {i for word in filt.allowlist for i in encoder.tokenize(word)}
            mask = torch.zeros(vocab, dtype=torch.bool)
            mask[list(allowed)] = True
            keep &= mask
        if filt.ascii_only:
            keep &= torch.tensor([bool(t) and all(32 < ord(c) < 127 for c in t) for t in texts] + [False] * (vocab - len(texts)))
        for word in filt.blocklist:
            if filt.substring:
                hit = [word in t for t in texts]
            else:
                hit = [t.strip() == word for t in texts]
            keep &= ~torch.tensor(hit + [False] * (vocab - len(hit)))
    ids = keep.nonzero().squeeze(1)
    if ids.numel() == 0:
        raise ValueError("the blocklist / allowlist / ascii_only filters remove the whole vocabulary; "
                         "relax them so that some tokens remain.")
    return ids.to(encoder.token_embedding.device)
