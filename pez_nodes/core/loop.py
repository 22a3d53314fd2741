"""Algorithm 1 of Wen et al. (2023), "Hard Prompts made EaZy": one readable loop.

    P ← E[random ids]                                   # continuous prompt, [R restarts, M, D]
    for step in 1..T:
        P′ ← Proj_E(P)                                 # nearest vocabulary rows (projection.py)
        L ← objective(P′)                              # loss on the *projected* prompt
        g ← ∂L/∂P′ ;  P ← AdamW(P, g)                   # the gradient at P′ updates P
        keep the best P′ (as the text a user gets)      # tracking.py

The "gradient at P′ applied to P" is written as a straight-through estimator,
``P′ = E[ids] + (P − P.detach())``: its value is exactly ``E[ids]`` (``x − x`` is exactly 0 in floating
point, whereas ``P + (E[ids] − P)`` is off by rounding) and its gradient w.r.t. ``P`` is exactly ``∂L/∂P′``. The loop knows nothing of CLIP, images or hosts: it takes an objective, a
projector and one callback. The paper's gradient baselines are update rules of this same loop
(``methods.py``): what the objective sees, and what is kept after a step.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Callable, Optional

import torch

from .config import PEZConfig
from .methods import update_rule
from .projection import VocabularyProjector
from .result import Candidate, PEZResult
from .tracking import BestTracker

Callback = Callable[[int, int, str, float], Optional[bool]]
"""``callback(step, total, best_text, best_similarity)``; return ``True`` to stop (the best so far is kept)."""

HISTORY_ROWS = 100


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def optimize_prompt(
    objective,
    projector: VocabularyProjector,
    config: PEZConfig,
    callback: Callback | None = None,
    extra_candidates: tuple[Candidate, ...] = (),
    model_name: str = "",
    text_filter: Callable[[str], bool] | None = None,
) -> PEZResult:
    """Run Algorithm 1 (or ``config.method``'s update rule) and return the best prompt over all steps and restarts.

    Args:
        objective: maps P′ ([R, M, D]) to (loss [R], similarity [R]); see ``objective.ClipObjective``.
        projector: the vocabulary to project onto.
        config: steps, lr, weight decay, restarts, seed, patience, top_k.
        callback: called after every step; return True to stop early.
        extra_candidates: prompts scored elsewhere that the result may return if they are better.
        text_filter: prompts whose text it rejects (e.g. spelling a blocked word) are never returned.
    """
    restarts, m = config.restarts, objective.prompt_len
    generator = torch.Generator().manual_seed(config.seed)
    n_targets = objective.n_targets
    device = projector.table.device
    amp = autocast_dtype(config.precision, device)
    sample_size = config.targets_per_step if config.targets_per_step and config.targets_per_step < n_targets else None

    rule = update_rule(config)
    with torch.inference_mode(False), torch.enable_grad():
        prompt = projector.embed(projector.random_ids((restarts, m), generator)).float().clone().requires_grad_(True)
        optimizer = torch.optim.AdamW([prompt], lr=config.lr, weight_decay=config.weight_decay)
        tracker = BestTracker(objective, restarts, config.top_k, text_filter, exact_scores=amp is None)
        for cand in extra_candidates:
            tracker.add(cand)
        history: list[tuple[int, float, float]] = []
        every = max(1, config.steps // HISTORY_ROWS)
        last_gain, stop_reason, step, soft_best = 0, "completed", 0, -float("inf")
        start = time.perf_counter()
        for step in range(1, config.steps + 1):
            ids = projector.nearest_ids(prompt) if rule.projects_each_step else None
            projected = rule.objective_input(prompt, ids, projector)
            sample = torch.randperm(n_targets, generator=generator)[:sample_size] if sample_size else None
            with torch.autocast(device.type, dtype=amp) if amp else nullcontext():
                loss, sims = objective(projected, sample)
            if not torch.isfinite(loss).all():
                raise ValueError(f"the loss became NaN/infinite at step {step}; lower lr (now {config.lr}) or use fp32.")
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            rule.after_step(prompt, projector, step, config.steps)

            if rule.projects_each_step and tracker.offer(ids, sims):
                last_gain = step
            if not rule.projects_each_step and float(sims.max()) > soft_best:  # a soft prompt: text only at the end
                soft_best, last_gain = float(sims.max()), step
            best_text, best_sim = (tracker.best.text, tracker.best.similarity) if tracker.best else ("", soft_best)
            if step % every == 0 or step == config.steps:
                history.append((step, best_sim, float(sims.mean())))
            if callback is not None and callback(step, config.steps, best_text, best_sim):
                stop_reason = "callback"
                break
            if config.patience and step - last_gain >= config.patience:
                stop_reason = "patience"
                break
        soft_prompt = None
        if not rule.projects_each_step:  # project the soft prompt once, and score what a user would get
            with torch.no_grad():
                ids = projector.nearest_ids(prompt)
                tracker.offer(ids, objective(projector.embed(ids).float())[1])
                soft_sims = objective(prompt)[1]
            soft_best = float(soft_sims.max())
            soft_prompt = prompt[int(soft_sims.argmax())].detach().clone()
        per_restart = tracker.per_restart()
        seconds = time.perf_counter() - start

    best = tracker.best
    if best is None:
        raise ValueError("every prompt found spelled a blocked word; shorten the blocklist or run more steps.")
    return PEZResult(
        text=best.text,
        token_ids=list(best.token_ids),
        similarity=best.similarity,
        steps=step,
        seconds=seconds,
        stop_reason=stop_reason,
        best_per_restart=per_restart,
        candidates=tracker.candidates(),
        history=history,
        model=model_name,
        method=config.method,
        soft_similarity=None if soft_prompt is None else soft_best,
        soft_prompt=soft_prompt,
    )
