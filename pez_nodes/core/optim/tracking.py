"""Best-so-far tracking on the text a user actually gets (round-trip safe).

Decoding learned ids to text and tokenizing that text again often gives other tokens, so the
similarity of the projected ids is not what a user gets by pasting the prompt. A step's prompt is
decoded only when it is its restart's best so far *and* its similarity could put it among the
``top_k`` best texts; its *text* is then scored: if re-tokenizing returns the same ids, the step's
similarity is exact and reused (fp32 only); otherwise the text is encoded once more. Each restart's
best projected ids are kept without decoding and turned into text once, at the end.
"""

from __future__ import annotations

import heapq

import torch

from .result import Candidate


class BestTracker:
    """Keeps the ``top_k`` best distinct prompts overall and the best prompt of each restart."""

    def __init__(self, objective, restarts: int, top_k: int, text_filter=None, exact_scores: bool = True):
        self.objective = objective
        self.top_k = top_k
        self.text_filter = text_filter
        self.exact_scores = exact_scores  # False under autocast: step similarities are then re-scored in fp32
        self.restart_sim = [-float("inf")] * restarts  # best projected similarity per restart
        self.restart_ids: list[list[int] | None] = [None] * restarts
        self.seen: dict[str, Candidate] = {}
        self.best: Candidate | None = None
        self._top: list[float] = []  # min-heap of the top_k similarities seen

    def _bar(self) -> float:
        """The similarity a new text must beat to matter: the k-th best so far."""
        return self._top[0] if len(self._top) >= self.top_k else -float("inf")

    def _remember(self, cand: Candidate) -> None:
        self.seen[cand.text] = cand
        if len(self._top) < self.top_k:
            heapq.heappush(self._top, cand.similarity)
        elif cand.similarity > self._top[0]:
            heapq.heapreplace(self._top, cand.similarity)

    def candidate(self, ids: list[int], sim: float | None = None) -> Candidate | None:
        """The round-trip scored candidate for learned ``ids`` (None if the text filter rejects it)."""
        text = self.objective.text_of(ids)
        if self.text_filter is not None and not self.text_filter(text):
            return None
        cand = self.seen.get(text)
        if cand is None:
            exact = sim is not None and self.exact_scores and self.objective.same_tokens(text, ids)
            score = sim if exact else self.objective.score_text(text)
            cand = Candidate(text=text, similarity=float(score), token_ids=self.objective.user_tokens(text))
            self._remember(cand)
        return cand

    def offer(self, ids: torch.Tensor, sims: torch.Tensor) -> bool:
        """Consider this step's projected ids ([R, M]) with their similarities ([R]); True if the best improved."""
        improved = False
        bar = self._bar()
        for r, sim in enumerate(sims.tolist()):
            if not sim > self.restart_sim[r]:  # only a restart's new best is worth a look
                continue
            row = ids[r].tolist()
            self.restart_sim[r], self.restart_ids[r] = sim, row
            if sim > bar or self.best is None:  # ... and only if it could enter the top-k
                cand = self.candidate(row, sim)
                if cand is not None and (self.best is None or cand.similarity > self.best.similarity):
                    self.best = cand
                    improved = True
                bar = self._bar()
        return improved

    def add(self, cand: Candidate) -> None:
        """Offer an extra prompt scored elsewhere (e.g. a literal concatenation)."""
        if cand.text not in self.seen:
            self._remember(cand)
        if self.best is None or cand.similarity > self.best.similarity:
            self.best = cand

    def per_restart(self) -> list[Candidate]:
        """Each restart's best projected prompt, as text and round-trip scored."""
        out = [self.candidate(ids) for ids in self.restart_ids if ids is not None]
        return [c for c in out if c is not None]

    def candidates(self) -> list[Candidate]:
        return sorted(self.seen.values(), key=lambda c: -c.similarity)[: self.top_k]
