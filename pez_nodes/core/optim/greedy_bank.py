"""``greedy_bank``: a caption-free, CLIP-Interrogator-style baseline (the paper's Table 1 comparison).

CLIP Interrogator appends the phrases of keyword banks that most raise the CLIP score to a BLIP caption,
up to 77 tokens; the paper also ablates it at 8 tokens. Without a captioner this starts from the empty
prompt and, round after round, appends the one phrase of the bank that most raises the similarity — each
candidate scored as a user's text encoder sees it (re-tokenized), so the result is round-trip exact —
while the prompt fits ``prompt_len`` tokens; it stops when no phrase helps. No gradient is used: one
round encodes every remaining phrase once (in batches).

Phrases are joined with ", " as CLIP Interrogator does, or with a space when every phrase is one word
(e.g. the toy model's 20 words, its default bank). Phrases are never repeated.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from .result import Candidate, PEZResult


def usable_phrases(objective, bank: Sequence[str], budget: int, allowed: set[int],
                   text_filter: Callable[[str], bool] | None) -> list[str]:
    """The bank's distinct phrases that fit the budget, use only allowed tokens and pass the text filter."""
    out, seen = [], set()
    for phrase in bank:
        phrase = " ".join(phrase.split())
        ids = objective.user_tokens(phrase)
        if not phrase or phrase.lower() in seen or not ids or len(ids) > budget or not set(ids) <= allowed:
            continue
        if text_filter is not None and not text_filter(phrase):
            continue
        seen.add(phrase.lower())
        out.append(phrase)
    if not out:
        raise ValueError(f"no phrase of the bank ({len(bank)} given) fits {budget} tokens and the vocabulary controls "
                         "(blocklist, allowlist, ascii_only); give a bank of shorter or other phrases.")
    return out


def greedy_bank(objective, bank: Sequence[str], budget: int, allowed: set[int], top_k: int = 1,
                text_filter: Callable[[str], bool] | None = None, callback=None,
                extra_candidates: tuple[Candidate, ...] = (), model_name: str = "") -> PEZResult:
    """Greedily append bank phrases while the prompt fits ``budget`` tokens and the similarity rises.

    ``callback(round, budget, best_text, best_similarity)`` after each round; returning True stops with the
    best so far. Returns a :class:`PEZResult` (``steps``: rounds run; ``method``: ``"greedy_bank"``).
    """
    start = time.perf_counter()
    phrases = usable_phrases(objective, bank, budget, allowed, text_filter)
    sep = " " if all(len(p.split()) == 1 for p in phrases) else ", "
    text, best_sim, stop_reason, rounds = "", -float("inf"), "completed", 0
    scored: dict[str, float] = {}
    history: list[tuple[int, float, float]] = []
    remaining = list(phrases)
    while remaining:
        texts = [f"{text}{sep}{p}" if text else p for p in remaining]
        fits = [i for i, t in enumerate(texts) if len(objective.user_tokens(t)) <= budget]
        if not fits:
            break
        sims = objective.score_texts([texts[i] for i in fits])
        scored.update(zip((texts[i] for i in fits), sims))
        k = max(range(len(fits)), key=sims.__getitem__)
        rounds += 1
        history.append((rounds, max(best_sim, sims[k]), sum(sims) / len(sims)))
        if not sims[k] > best_sim:
            break
        text, best_sim = texts[fits[k]], sims[k]
        remaining.pop(fits[k])
        if callback is not None and callback(rounds, budget, text, best_sim):
            stop_reason = "callback"
            break
    candidates = [Candidate(t, objective.score_text(t), objective.user_tokens(t))
                  for t in sorted(scored, key=lambda t: -scored[t])[:top_k]]  # re-scored one by one: exact
    candidates = sorted([*candidates, *extra_candidates], key=lambda c: -c.similarity)[:top_k]
    best = candidates[0]
    return PEZResult(text=best.text, token_ids=list(best.token_ids), similarity=best.similarity, steps=rounds,
                     seconds=time.perf_counter() - start, stop_reason=stop_reason, best_per_restart=[best],
                     candidates=candidates, history=history, model=model_name, method="greedy_bank")
