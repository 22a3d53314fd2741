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
(``methods.py``): what the objective sees, and what is kept after a step. One step's tensor work —
projection, forward, loss, backward, AdamW, the rule's after-update — is one function (``step.py``), which
``PEZConfig.compile_step`` runs through ``torch.compile``; the loop draws what comes from the host (target
sample, noise) and hands the steps' numbers, every ``PEZConfig.sync_every`` steps, to what needs them on the host
(``watch.py``: NaN check, best-so-far tracking, patience, the callback).
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import torch

from .config import PEZConfig
from .methods import update_rule
from .projection import VocabularyProjector
from .result import Candidate, PEZResult
from .step import CompiledStep, PEZStep, use_compiled
from .tracking import BestTracker
from .watch import Watch, sync_interval

Callback = Callable[[int, int, str, float], Optional[bool]]
"""``callback(step, total, best_text, best_similarity)``; return ``True`` to stop (the best so far is kept).

A callback object may also have ``should_stop() -> bool``: a cheap host-side check (a Cancel button's flag) the
loop makes after every step without reading the device, so with ``PEZConfig.sync_every`` > 1 a cancel is still
seen within one step: the loop then reads the steps run so far at once and calls the callback for them."""



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
    return optimize_prompts(objective, projector, config, callback, extra_candidates, model_name, text_filter)[0]


def optimize_prompts(
    objective,
    projector: VocabularyProjector,
    config: PEZConfig,
    callback: Callback | None = None,
    extra_candidates: tuple[Candidate, ...] = (),
    model_name: str = "",
    text_filter: Callable[[str], bool] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[PEZResult]:
    """``optimize_prompt`` for G independent problems in one batch (``objective.views``: one objective per
    problem, e.g. one image each; without it G = 1). Rows ``g·R … g·R + R − 1`` are problem ``g``'s
    ``config.restarts`` restarts; each problem has its own tracker, patience and result, and its initial
    tokens are drawn from ``config.seed`` exactly as a run of its own would draw them, so a batch gives
    each problem what running it alone gives (``pez``; up to floating-point ties). A problem that stops
    (patience) keeps its prompt frozen while the others go on; ``extra_candidates`` go to problem 0.
    ``seeds`` (one per problem) start each problem as a solo run with that seed would (default: ``config.seed``).
    """
    views = list(getattr(objective, "views", None) or [objective])
    groups, restarts, m = len(views), config.restarts, objective.prompt_len
    generator = torch.Generator().manual_seed(config.seed)
    n_targets = objective.n_targets
    device = projector.table.device
    amp = autocast_dtype(config.precision, device)
    sample_size = config.targets_per_step if config.targets_per_step and config.targets_per_step < n_targets else None

    rule = update_rule(config)
    with torch.inference_mode(False), torch.enable_grad():
        if seeds is not None and len(seeds) != groups:
            raise ValueError(f"{len(seeds)} seeds were given for {groups} problems; give one per problem.")
        starts = [generator if seeds is None and g == 0 else torch.Generator().manual_seed(
            config.seed if seeds is None else int(seeds[g])) for g in range(groups)]
        first = [projector.random_ids((restarts, m), gen) for gen in starts]  # each problem starts as a solo run
        prompt = projector.embed(torch.cat(first)).float().clone().requires_grad_(True)
        compiled = use_compiled(config.compile_step, device)
        pez_step = PEZStep(objective, projector, rule, prompt, config.lr, config.weight_decay, amp,
                           capturable=compiled and device.type == "cuda")
        run_step = CompiledStep(pez_step) if compiled else pez_step
        trackers = [BestTracker(view, restarts, config.top_k, text_filter, exact_scores=amp is None) for view in views]
        for cand in extra_candidates:
            trackers[0].add(cand)
        watch = Watch(trackers, rule, restarts, config, callback)
        sync_every = sync_interval(config.sync_every, device)
        pending: list[tuple[int, torch.Tensor | None, torch.Tensor, torch.Tensor]] = []
        step = 0
        wants_stop = getattr(callback, "should_stop", None)
        start = time.perf_counter()
        for step in range(1, config.steps + 1):
            frozen = [g for g in range(groups) if watch.stopped_at[g] is not None]
            kept = prompt.detach()[_rows(frozen, restarts)].clone() if frozen else None
            sample = torch.randperm(n_targets, generator=generator)[:sample_size] if sample_size else None
            if sample is not None:
                sample = sample.to(device)
            ids, loss, sims = run_step(prompt, sample, rule.noise(prompt, step, config.steps))
            if frozen:  # a stopped problem keeps its prompt (AdamW's decay would move it)
                with torch.no_grad():
                    prompt[_rows(frozen, restarts)] = kept
            pending.append((step, ids, loss, sims.detach()))  # no autograd graph kept alive
            if len(pending) < sync_every and step < config.steps and not (wants_stop is not None and wants_stop()):
                continue  # the host reads the device only every sync_every steps, or at once for a cancel
            stopped = watch.observe(pending)
            pending = []
            if stopped:
                step = watch.step
                break
        stop_reason, stopped_at, histories, soft_best = watch.reason, watch.stopped_at, watch.histories, watch.soft_best
        soft_prompts: list = [None] * groups
        if not rule.projects_each_step:  # project the soft prompt once, and score what a user would get
            with torch.no_grad():
                ids = projector.nearest_ids(prompt)
                scores = objective(projector.embed(ids).float())[1]
                soft_sims = objective(prompt)[1]
            for g in range(groups):
                rows = slice(g * restarts, (g + 1) * restarts)
                trackers[g].offer(ids[rows], scores[rows])
                soft_best[g] = float(soft_sims[rows].max())
                soft_prompts[g] = prompt[rows][int(soft_sims[rows].argmax())].detach().clone()
        seconds = time.perf_counter() - start

    results = []
    for g, tracker in enumerate(trackers):
        best = tracker.best
        if best is None:
            raise ValueError("every prompt found spelled a blocked word; shorten the blocklist or run more steps.")
        own_stop = "patience" if stopped_at[g] is not None and stop_reason != "callback" else stop_reason
        results.append(PEZResult(
            text=best.text,
            token_ids=list(best.token_ids),
            similarity=best.similarity,
            steps=stopped_at[g] or step,
            seconds=seconds,
            stop_reason=own_stop,
            best_per_restart=tracker.per_restart(),
            candidates=tracker.candidates(),
            history=histories[g],
            model=model_name,
            method=config.method,
            soft_similarity=None if soft_prompts[g] is None else soft_best[g],
            soft_prompt=soft_prompts[g],
            notes=[run_step.note] if getattr(run_step, "note", None) else [],
        ))
    return results


def _rows(groups: list[int], restarts: int) -> list[int]:
    return [g * restarts + r for g in groups for r in range(restarts)]
