"""Where the learned tokens sit in the encoded sequence: ``[SOT] fixed… slot… fixed… [EOT]``.

A plain PEZ prompt is one slot of M tokens. A template such as ``"a photo of {} in the style of {}"``
keeps its fixed words, tokenized once, and learns only the tokens of its slots; the fixed words are
part of every encoded sequence and of the returned text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .text_encoder import TextEncoder


@dataclass(frozen=True)
class PromptLayout:
    """Fixed token ids around learned slots.

    Attributes:
        fixed: ``len(slots) + 1`` id lists: before the first slot, between slots, after the last.
        slots: learned tokens per slot.
        template: the user's template with ``{}`` per slot (``"{}"`` for a plain prompt).
    """

    fixed: tuple[tuple[int, ...], ...]
    slots: tuple[int, ...]
    template: str = "{}"

    @classmethod
    def plain(cls, prompt_len: int) -> "PromptLayout":
        return cls(fixed=((), ()), slots=(prompt_len,), template="{}")

    @classmethod
    def from_template(cls, encoder: TextEncoder, template: str, slot_len: int | Sequence[int]) -> "PromptLayout":
        """Parse ``template`` (one ``{}`` per slot); ``slot_len`` is one count for all slots or one per slot."""
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"template {template!r} has no '{{}}' slot; write e.g. 'a photo of {{}} in the style of {{}}'.")
        parts = template.split("{}")
        count = len(parts) - 1
        lens = [slot_len] * count if isinstance(slot_len, int) else list(slot_len)
        if len(lens) != count:
            raise ValueError(f"template has {count} slots but {len(lens)} slot lengths were given; give one or {count}.")
        if any((not isinstance(n, int)) or n < 1 for n in lens):
            raise ValueError(f"slot lengths {lens} must be integers >= 1.")
        fixed = tuple(tuple(encoder.tokenize(p)) if p.strip() else () for p in parts)
        return cls(fixed=fixed, slots=tuple(lens), template=template)

    @property
    def learned(self) -> int:
        """M, the number of learned tokens."""
        return sum(self.slots)

    @property
    def length(self) -> int:
        """Tokens between start and end token."""
        return self.learned + sum(len(f) for f in self.fixed)

    def assemble(self, encoder: TextEncoder, prompt: torch.Tensor) -> torch.Tensor:
        """Embedded sequences ``[SOT, fixed…, P′…, fixed…, EOT]`` ([R, M, D] → [R, L, D])."""
        table = encoder.token_embedding
        rows = prompt.shape[0]

        def fixed_embeds(ids: Sequence[int]) -> torch.Tensor:
            t = torch.tensor(list(ids), dtype=torch.long, device=table.device)
            return table[t].to(prompt.dtype).unsqueeze(0).expand(rows, -1, -1)

        pieces = [fixed_embeds([encoder.sot_id, *self.fixed[0]])]
        start = 0
        for i, n in enumerate(self.slots):
            pieces.append(prompt[:, start : start + n])
            start += n
            tail = list(self.fixed[i + 1]) + ([encoder.eot_id] if i == len(self.slots) - 1 else [])
            if tail:
                pieces.append(fixed_embeds(tail))
        return torch.cat(pieces, dim=1)

    def full_ids(self, ids: Sequence[int]) -> list[int]:
        """The token ids between start and end for learned ``ids`` ([M])."""
        out, start = list(self.fixed[0]), 0
        for i, n in enumerate(self.slots):
            out += list(ids[start : start + n]) + list(self.fixed[i + 1])
            start += n
        return out

    def text(self, encoder: TextEncoder, ids: Sequence[int]) -> str:
        """The prompt a user copies: the template with each slot's decoded tokens."""
        texts, start = [], 0
        for n in self.slots:
            texts.append(encoder.decode(ids[start : start + n]))
            start += n
        return _fill(self.template, texts)


def _fill(template: str, texts: Sequence[str]) -> str:
    parts = template.split("{}")
    out = parts[0]
    for text, part in zip(texts, parts[1:]):
        out += text + part
    return out.strip()
