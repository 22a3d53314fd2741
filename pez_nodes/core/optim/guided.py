"""``guided``: a causal language model writes the prompt and CLIP chooses among its continuations — Visually
Guided Decoding (Kim et al., ICLR 2025), on PEZ's objective. No gradient.

Beam search over the LM's tokens. At each step every beam proposes its ``candidates`` most likely next tokens;
each continuation is decoded to text by the LM's tokenizer, tokenized as a user's text encoder does (so the
similarity is the round-trip one, as for every method) and scored in one batch with the CLIP objective (image
or text targets, several of them, negative weights). The ``beams`` continuations with the highest

    score = similarity + lm_weight · (mean log p_LM of the prompt's LM tokens)

are kept. A beam ends at the LM's end-of-text token, or when its text fills ``prompt_len`` tokens of the text
encoder; the result is the finished beam with the best score (the best beam cut at the budget when the LM
ended none). Continuations
whose text the vocabulary controls refuse (blocklist, allowlist, ascii_only, a declared vocabulary) are never
proposed, so the result obeys them as PEZ's do.

The LM only needs :class:`GuideLM`'s four members; ``pez_nodes.lm.load.CausalLM`` offers them for any
``transformers`` causal LM with its own tokenizer (text crosses tokenizers as text), and this module imports
no LM library. ``start_text`` starts every beam with given words (VGD seeds with the CLIP token nearest the
image; PEZ's own hard prompt is another start), ``instruction`` is what the LM reads first and is not part of
the prompt (an instruction-tuned LM's request, e.g. "Describe the image as a Stable Diffusion prompt:").
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch

from .result import Candidate, PEZResult


class GuideLM(Protocol):
    """What guided decoding needs from a causal LM."""

    name: str
    eos_id: int | None
    max_length: int  # tokens the LM reads at most (its context window)

    def context_ids(self, text: str) -> list[int]:
        """The ids the LM reads before the prompt: its start token (if any) and ``text`` (the instruction)."""

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens)."""

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (what a user copies)."""

    def next_log_probs(self, contexts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Log-probabilities of the next token after each context ([B, V], float)."""


@dataclass
class _Beam:
    ids: tuple[int, ...]  # the prompt's LM tokens (after the context)
    log_p: float  # their summed log-probability under the LM
    text: str
    similarity: float
    done: bool = False

    def score(self, lm_weight: float) -> float:
        return self.similarity + lm_weight * (self.log_p / max(1, len(self.ids)))


def guided_decode(objective, lm: GuideLM, budget: int, beams: int = 10, candidates: int = 10,
                  lm_weight: float = 0.05, start_text: str = "", instruction: str = "",
                  allowed: set[int] | None = None, text_filter: Callable[[str], bool] | None = None,
                  callback=None, top_k: int = 1, extra_candidates: tuple[Candidate, ...] = (),
                  model_name: str = "") -> PEZResult:
    """Beam search of ``lm``'s continuations scored by ``objective`` (see the module docstring).

    ``budget``: the prompt's largest length in the text encoder's tokens. ``allowed``: the text encoder's
    token ids a prompt may use (None: any). ``callback(step, most_steps, best_text, best_similarity)`` after
    each decoded token; returning True stops with the best so far. ``perplexity`` of the result is the guiding
    LM's, ``exp`` of the mean negative log-probability of the prompt's LM tokens.
    """
    start = time.perf_counter()
    context = list(lm.context_ids(instruction.strip()))
    first = tuple(lm.encode(start_text.strip())) if start_text and start_text.strip() else ()
    if first and not _usable(objective, lm.decode(first), budget, allowed, text_filter):
        raise ValueError(f"start_text {start_text!r} does not fit {budget} tokens or the vocabulary controls "
                         "(blocklist, allowlist, ascii_only); give shorter or other words.")
    log_p = _log_prob(lm, context, first) if first else 0.0
    text = lm.decode(first)
    live = [_Beam(first, log_p, text, objective.score_text(text) if first else -math.inf)]
    seen: dict[str, _Beam] = {}
    if first:
        seen[text] = live[0]
    steps, stop_reason, history = 0, "completed", []
    room = lm.max_length - len(context) - 1
    if room < 1:
        raise ValueError(f"the instruction takes {len(context)} of language model {lm.name}'s {lm.max_length} tokens; "
                         "shorten it.")
    limit = min(budget * 4, room)  # LM tokens can be shorter than the encoder's (a word in pieces); never past the LM
    while live and steps < limit:
        proposals = _propose(lm, context, live, candidates)
        fresh: dict[str, _Beam] = {}
        for beam in proposals:
            if beam.done:
                fresh.setdefault(beam.text, beam)
                continue
            if _unfinished(beam.text):  # a space or a character's first bytes: kept, scored once it reads
                fresh.setdefault(repr(beam.ids), beam)
                continue
            if beam.text in fresh or beam.text in seen or not _usable(objective, beam.text, budget, allowed, text_filter):
                continue
            fresh[beam.text] = beam
        scoring = [b for b in fresh.values() if b.similarity == -math.inf and not _unfinished(b.text)]
        for beam, sim in zip(scoring, objective.score_texts([b.text for b in scoring]) if scoring else []):
            beam.similarity = sim
        kept = sorted(fresh.values(), key=lambda b: -b.score(lm_weight))[:beams]
        if not kept:
            break
        steps += 1
        for beam in kept:
            if not _unfinished(beam.text) and (beam.done or beam.text not in seen):
                seen[beam.text] = beam
        live = [b for b in kept if not b.done and len(objective.user_tokens(b.text)) < budget and len(b.ids) < room]
        scored = [b.similarity for b in kept if b.similarity > -math.inf]
        if not scored:
            continue
        best = max(seen.values(), key=lambda b: b.score(lm_weight))
        history.append((steps, best.similarity, sum(scored) / len(scored)))
        if callback is not None and callback(steps, limit, best.text, best.similarity):
            stop_reason = "callback"
            break
    if not seen:
        raise ValueError(f"language model {lm.name} proposed no continuation that fits {budget} tokens and the "
                         "vocabulary controls; raise candidates or prompt_len, or loosen the blocklist / allowlist.")
    return _result(objective, seen, lm_weight, top_k, extra_candidates, steps, time.perf_counter() - start,
                   stop_reason, history, model_name)


def _result(objective, seen: dict[str, _Beam], lm_weight: float, top_k: int, extra_candidates: tuple[Candidate, ...],
            steps: int, seconds: float, stop_reason: str, history: list, model_name: str) -> PEZResult:
    """The finished beam with the best score (else the best cut at the budget); a plain extra text (concat's
    join) replaces it only when its similarity is higher. ``perplexity``: the guiding LM's, of the beam."""
    finished = [b for b in seen.values() if b.done]  # sentences the LM ended
    ranked = sorted(finished or seen.values(), key=lambda b: -b.score(lm_weight))
    found = [Candidate(b.text, objective.score_text(b.text), objective.user_tokens(b.text)) for b in ranked[:top_k]]
    best = max([found[0], *extra_candidates], key=lambda c: c.similarity) if extra_candidates else found[0]
    candidates = [best, *(c for c in [*found, *extra_candidates] if c is not best)][:top_k]
    beam = ranked[0]
    perplexity = math.exp(-beam.log_p / max(1, len(beam.ids))) if best is found[0] else None
    return PEZResult(text=best.text, token_ids=list(best.token_ids), similarity=best.similarity, steps=steps,
                     seconds=seconds, stop_reason=stop_reason, best_per_restart=[best], candidates=candidates,
                     history=history, model=model_name, method="guided", perplexity=perplexity)


def _unfinished(text: str) -> bool:
    """Text that is not yet a prompt: only spaces, or ending in an incomplete character (a byte-level BPE's
    first bytes of a multi-byte character decode to U+FFFD)."""
    return not text.strip() or text.endswith("\ufffd")


def _usable(objective, text: str, budget: int, allowed: set[int] | None, text_filter) -> bool:
    """Whether ``text`` fits the budget and the vocabulary controls, as a user's text encoder reads it."""
    if not text.strip():
        return False
    ids = objective.user_tokens(text)
    if not ids or len(ids) > budget or len(objective.encoder.tokenize(text)) > budget:
        return False
    if allowed is not None and not set(ids) <= allowed:
        return False
    return text_filter is None or text_filter(text)


@torch.no_grad()
def _propose(lm: GuideLM, context: list[int], live: list[_Beam], candidates: int) -> list[_Beam]:
    """Each live beam's ``candidates`` most likely continuations (an end-of-text token finishes the beam)."""
    log_probs = lm.next_log_probs([context + list(b.ids) for b in live]).float().cpu()
    out = []
    top = log_probs.topk(min(candidates + 1, log_probs.shape[-1]), dim=-1)
    for beam, values, indices in zip(live, top.values.tolist(), top.indices.tolist()):
        taken = 0
        for value, token in zip(values, indices):
            if token == lm.eos_id:
                if beam.ids:
                    out.append(_Beam(beam.ids, beam.log_p + value, beam.text, beam.similarity, done=True))
                continue
            if taken == candidates:
                continue
            ids = (*beam.ids, int(token))
            out.append(_Beam(ids, beam.log_p + value, lm.decode(ids), -math.inf))
            taken += 1
    return out


@torch.no_grad()
def _log_prob(lm: GuideLM, context: list[int], ids: Sequence[int]) -> float:
    """Summed log-probability of ``ids`` after ``context``."""
    total = 0.0
    for i, token in enumerate(ids):
        total += float(lm.next_log_probs([context + list(ids[:i])])[0, token])
    return total
