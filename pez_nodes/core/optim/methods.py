"""PEZ and the paper's gradient baselines as update rules of the one loop in ``loop.py``.

Each method differs from Algorithm 1 only in what the objective sees and what is kept after a step
(``P``: the continuous prompt the optimiser updates; ``Proj``: nearest vocabulary rows)::

    pez             the objective sees Proj(P); P ← AdamW(P, ∂L/∂Proj(P))           (Algorithm 1: P is kept)
    autoprompt_sgd  as pez, then P ← Proj(P): no continuous copy, every step lands on vocabulary rows
                    (the paper's AutoPrompt-SGD baseline, Sec. 5; the official prompt_lm/ code's
                    "FluentPrompt without noise")
    fluentprompt    as autoprompt_sgd with Langevin noise before the projection:
                    P ← Proj(P + √(2·lr·β_t)·z), z ~ N(0, I), β_t decaying geometrically from ``beta`` to
                    ``beta_end`` (official defaults 1 → 1e-4; Shi et al., 2022). β = 0 is autoprompt_sgd.
    soft            the objective sees P itself (a soft prompt); projected once, at the end
                    (the paper's "soft prompts do not transfer" comparison)

``greedy_bank`` (no gradient: a CLIP-Interrogator-style search over a phrase bank) lives in
``greedy_bank.py``. All methods share the optimiser (AdamW, lr, weight decay), the initial random
tokens, the vocabulary controls and the round-trip-exact scoring of the returned text.
"""

from __future__ import annotations

import math

import torch

GRADIENT_METHODS = ("pez", "autoprompt_sgd", "fluentprompt", "soft")
METHODS = (*GRADIENT_METHODS, "greedy_bank", "guided")  # the last two take no gradient (their own modules)


class UpdateRule:
    """Algorithm 1 (``pez``): the objective sees ``Proj(P)``; its gradient updates the kept ``P``."""

    projects_each_step = True  # whether each step's projected prompt is a candidate for the result

    def objective_input(self, prompt: torch.Tensor, ids: torch.Tensor, projector) -> torch.Tensor:
        """``P′ = E[ids]`` with the straight-through gradient to ``P`` (``x − x`` is exactly 0)."""
        return projector.embed(ids).float() + (prompt - prompt.detach())

    def noise(self, prompt: torch.Tensor, step: int, total: int) -> torch.Tensor | None:
        """Noise for step ``step`` of ``total`` (``None``: none), drawn on the host before the step so that the
        step itself (``step.py``) reads nothing back from Python and can run compiled."""
        return None

    @torch.no_grad()
    def after_update(self, prompt: torch.Tensor, projector, noise: torch.Tensor | None) -> None:
        """Change ``P`` after the optimiser's update (in place, tensors only); Algorithm 1 keeps it as it is."""

    @torch.no_grad()
    def after_step(self, prompt: torch.Tensor, projector, step: int, total: int) -> None:
        """``after_update`` with this step's ``noise``."""
        self.after_update(prompt, projector, self.noise(prompt, step, total))


class AutoPromptSGD(UpdateRule):
    """No continuous copy: after each step ``P ← Proj(P + noise)`` (noise 0 here)."""

    @torch.no_grad()
    def after_update(self, prompt: torch.Tensor, projector, noise: torch.Tensor | None) -> None:
        moved = prompt if noise is None else prompt + noise
        prompt.copy_(projector.embed(projector.nearest_ids(moved)).to(prompt.dtype))


class FluentPrompt(AutoPromptSGD):
    """Langevin dynamics: ``√(2·lr·β_t)·z`` before the projection, ``β_t`` from ``beta`` to ``beta_end``."""

    def __init__(self, lr: float, beta: float, beta_end: float, seed: int):
        self.lr, self.beta, self.beta_end = lr, beta, beta_end
        self.generator = torch.Generator().manual_seed(seed + 7919)  # its own stream: β = 0 changes nothing else

    def beta_at(self, step: int, total: int) -> float:
        """Geometric decay ``β_t = β·(β_end/β)^((t−1)/(T−1))``."""
        if self.beta == 0:
            return 0.0
        frac = (step - 1) / max(1, total - 1)
        return self.beta * (self.beta_end / self.beta) ** frac

    def noise(self, prompt: torch.Tensor, step: int, total: int) -> torch.Tensor | None:
        beta = self.beta_at(step, total)
        if beta == 0:
            return None
        z = torch.randn(prompt.shape, generator=self.generator).to(prompt.device, prompt.dtype)
        return math.sqrt(2 * self.lr * beta) * z


class SoftPrompt(UpdateRule):
    """The objective sees the continuous ``P``; only the final ``P`` is projected."""

    projects_each_step = False

    def objective_input(self, prompt: torch.Tensor, ids: torch.Tensor, projector) -> torch.Tensor:
        return prompt


def update_rule(config) -> UpdateRule:
    """The update rule of ``config.method`` (a gradient method; ``greedy_bank`` has no update rule)."""
    if config.method == "autoprompt_sgd":
        return AutoPromptSGD()
    if config.method == "fluentprompt":
        return FluentPrompt(config.lr, config.beta, config.beta_end, config.seed)
    if config.method == "soft":
        return SoftPrompt()
    if config.method == "pez":
        return UpdateRule()
    raise ValueError(f"method {config.method!r} has no update rule; use one of {', '.join(GRADIENT_METHODS)}.")
