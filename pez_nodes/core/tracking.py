"""Best-so-far tracking on the text a user actually gets (round-trip safe).

Decoding learned ids to text and tokenizing that text again often gives other tokens, so the
similarity of the projected ids is not what a user gets by pasting the prompt. Whenever a restart's
step similarity beats that restart's best so far, its ids are decoded and the *text* is scored: if
re-tokenizing returns the same ids, the step's similarity is exact and reused; otherwise the text is
encoded once more (always, under mixed precision, so reported numbers are fp32). Text is only
decoded when the best may change, never every step.
"""

from __future__ import annotations

import torch

from .result import Candidate


class BestTracker:
    """Keeps the best prompt per restart and the ``top_k`` best distinct prompts overall."""

    def __init__(self, objective, restarts: int, top_k: int, text_filter=None, exact_scores: bool = True):
        self.objective = objective
        self.exact_scores = exact_scores  # False under autocast: step similarities are then re-scored in fp32
        self.text_filter = text_filter
        self.top_k = top_k
        self.step_best = [-float("inf")] * restarts  # best projected similarity offered per restart
        self.per_restart: list[Candidate | None] = [None] * restarts
        self.seen: dict[str, Candidate] = {}
        self.best: Candidate | None = None

    def offer(self, ids: torch.Tensor, sims: torch.Tensor) -> bool:
        """Consider this step's projected ids ([R, M]) with their similarities ([R]); True if the best improved."""
        improved = False
        values = sims.tolist()
        for r, sim in enumerate(values):
            if not sim > self.step_best[r]:
                continue
            self.step_best[r] = sim
            row = ids[r].tolist()
            text = self.objective.text_of(row)
            if self.text_filter is not None and not self.text_filter(text):
                continue
            cand = self.seen.get(text)
            if cand is None:
                exact = self.exact_scores and self.objective.same_tokens(text, row)
                score = sim if exact else self.objective.score_text(text)
                cand = Candidate(text=text, similarity=float(score), token_ids=self.objective.encoder.tokenize(text))
                self.seen[text] = cand
            if self.per_restart[r] is None or cand.similarity > self.per_restart[r].similarity:
                self.per_restart[r] = cand
            if self.best is None or cand.similarity > self.best.similarity:
                self.best = cand
                improved = True
        return improved

    def add(self, cand: Candidate) -> None:
        """Offer an extra prompt scored elsewhere (e.g. a literal concatenation)."""
        self.seen.setdefault(cand.text, cand)
        if self.best is None or cand.similarity > self.best.similarity:
            self.best = cand

    def candidates(self) -> list[Candidate]:
        return sorted(self.seen.values(), key=lambda c: -c.similarity)[: self.top_k]
