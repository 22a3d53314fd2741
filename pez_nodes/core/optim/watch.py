"""The host's side of Algorithm 1's loop (``loop.py``): what needs the step's numbers back on the host.

The loop runs steps on the device; every ``sync_every`` steps ``Watch.observe`` reads the steps run since the
last read back in one transfer and goes through them in order: the NaN check, best-so-far tracking on the text a
user gets (``tracking.py``), the history, patience, and the callback (progress, live best text, cancel).
"""

from __future__ import annotations

import torch

from .config import PEZConfig
from .tracking import BestTracker

HISTORY_ROWS = 100
CUDA_SYNC_EVERY = 16  # steps a CUDA run goes between reads of the GPU (PEZConfig.sync_every's default there)


def sync_interval(sync_every: int | None, device: torch.device) -> int:
    """Steps between the host's reads of the device: ``PEZConfig.sync_every``, or by default 1 on the CPU (a read
    costs nothing there) and ``CUDA_SYNC_EVERY`` on CUDA, where each read waits for the GPU to drain."""
    if sync_every is not None:
        return sync_every
    return CUDA_SYNC_EVERY if device.type == "cuda" else 1


class Watch:
    """The host's side of the loop: NaN check, best-so-far (``tracking.py``), history, patience and the callback.

    ``observe`` takes the steps run since the last read — each ``(step, ids, loss, sims)`` still on the device —
    reads them back in one transfer and goes through them in order, exactly as if each had been read at once:
    the same texts are decoded, the same patience stop and callback stop are found, at the same step. Steps
    run after a stop are ignored (their rows were independent of the stopped problem's).
    """

    def __init__(self, trackers: list[BestTracker], rule, restarts: int, config: PEZConfig, callback):
        groups = len(trackers)
        self.trackers, self.rule, self.restarts, self.config, self.callback = trackers, rule, restarts, config, callback
        self.histories: list[list[tuple[int, float, float]]] = [[] for _ in range(groups)]
        self.every = max(1, config.steps // HISTORY_ROWS)
        self.last_gain, self.stopped_at = [0] * groups, [None] * groups
        self.soft_best = [-float("inf")] * groups
        self.reason, self.step = "completed", 0

    def observe(self, pending: list) -> bool:
        """Go through the steps in ``pending``; True when the run must stop (``reason``, ``step`` say why, where)."""
        losses = torch.stack([loss for _, _, loss, _ in pending])
        finite = torch.isfinite(losses).all(dim=1).tolist()
        sims_all = torch.stack([sims for _, _, _, sims in pending]).float().cpu()
        ids_all = torch.stack([ids for _, ids, _, _ in pending]).cpu() if self.rule.projects_each_step else None
        for i, (step, _, _, _) in enumerate(pending):
            if not finite[i]:
                raise ValueError(f"the loss became NaN/infinite at step {step}; lower lr (now {self.config.lr}) or use fp32.")
            self.step = step
            if self._step(step, None if ids_all is None else ids_all[i], sims_all[i]):
                return True
        return False

    def _step(self, step: int, ids: torch.Tensor | None, sims: torch.Tensor) -> bool:
        config, restarts = self.config, self.restarts
        for g, tracker in enumerate(self.trackers):
            if self.stopped_at[g] is not None:
                continue
            rows = slice(g * restarts, (g + 1) * restarts)
            if ids is not None and tracker.offer(ids[rows], sims[rows]):
                self.last_gain[g] = step
            if ids is None and float(sims[rows].max()) > self.soft_best[g]:  # soft: text at the end
                self.soft_best[g], self.last_gain[g] = float(sims[rows].max()), step
            if step % self.every == 0 or step == config.steps:
                self.histories[g].append((step, _best(tracker, self.soft_best[g])[1], float(sims[rows].mean())))
            if config.patience and step - self.last_gain[g] >= config.patience:
                self.stopped_at[g] = step
        best_text, best_sim = _progress(self.trackers, self.soft_best, self.stopped_at)
        if self.callback is not None and self.callback(step, config.steps, best_text, best_sim):
            self.reason = "callback"
            return True
        if all(s is not None for s in self.stopped_at):
            self.reason = "patience"
            return True
        return False


def _best(tracker: BestTracker, soft_best: float) -> tuple[str, float]:
    return (tracker.best.text, tracker.best.similarity) if tracker.best else ("", soft_best)


def _progress(trackers: list[BestTracker], soft_best: list[float], stopped_at: list) -> tuple[str, float]:
    """What the callback shows: the best prompt (one problem), or the problems done and their mean best."""
    if len(trackers) == 1:
        return _best(trackers[0], soft_best[0])
    bests = [_best(t, s) for t, s in zip(trackers, soft_best)]
    done = sum(s is not None for s in stopped_at)
    return f"{len(trackers)} prompts ({done} settled) · first: {bests[0][0]}", sum(b[1] for b in bests) / len(bests)
