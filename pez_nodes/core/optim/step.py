"""One step of Algorithm 1 as one function of tensors: the loop calls it eagerly, or ``torch.compile`` wraps it.

Algorithm 1 of Wen et al. (2023), the lines inside its ``for`` loop (quoted), and where each one is here::

    "Retrieve current mini-batch (X, Y) ⊆ D"            ``sample``: drawn by the loop (host RNG), passed in
    "Forward Projection: P′ = Proj_E(P)"                 ``projector.nearest_ids`` + ``rule.objective_input``
    "g = ∇_{P′} L_task(B(P′, X_i), Y_i, θ)"              ``objective`` (encoder forward, loss) + ``autograd.grad``
    "Apply the gradient on the continuous               AdamW: ``torch.optim.adam.adam``, the function
     embedding: P = P − γg"                              ``AdamW.step`` calls, on the state kept here
    (autoprompt_sgd, fluentprompt: after the update)    ``rule.after_update``: P ← Proj(P + noise)

Everything a step needs from the host (the target sample, FluentPrompt's noise) is drawn by the loop and passed
in as tensors, and nothing in here reads a tensor back to Python, so the whole step is one graph. With
``torch._dynamo.config.trace_autograd_ops`` (set while a compiled step runs) Dynamo traces the gradient
(``torch.autograd.grad``) into the same graph as the forward, and AdamW's update is the functional
``torch.optim.adam.adam`` on the optimiser state kept here: ``torch.optim.AdamW.step`` itself cannot be in a
fullgraph region — it graph-breaks on purpose (``optimizer._use_grad``) and refuses a parameter whose ``.grad``
the same graph wrote ("optimizer: pending mutation on parameter"). So projection → encoder forward → loss →
backward → AdamW update → after-update compile with ``fullgraph=True`` for pez, autoprompt_sgd, fluentprompt
and soft, with the fluency term (a ``transformers`` GPT-2) and for a ``JointClip`` of two towers
(``tests/test_compiled_step.py`` checks each with ``torch._dynamo.explain``: 1 graph, 0 breaks). What stays
outside, in the loop, on the host: drawing the sample and the noise, the NaN check, best-so-far tracking (it
reads ids and similarities back), patience, the callback, and ``soft``'s one projection at the end. On CUDA
the graph is replayed as a CUDA graph: the prompt and AdamW's state are marked static (updated in place at
fixed addresses), the step count lives on the GPU (``capturable``), and the outputs are copied out of the
graph's buffers before the next replay.

Eagerly the step computes what the loop always computed, bit for bit: ``autograd.grad`` gives the gradient
``backward`` accumulated into a zeroed ``.grad``, and ``adam(…)`` with AdamW's defaults (betas 0.9 / 0.999,
eps 1e-8, decoupled weight decay, foreach chosen as ``AdamW`` chooses) is the call ``AdamW.step`` makes.
(Checked: ten eager runs — every method, sampled targets, a template, fluency, two towers, per-image batches
with patience — gave the same prompts and histories, bit for bit, before and after this step was factored out.)
Compiled, the same ops run traced (inductor fuses them; AdamW's bias corrections become tensor ops), which
moved a step's similarity by at most 4.8e-7 in ``tests/test_compiled_step.py`` (it allows 1e-5); the token ids
were the eager run's.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
from torch.optim.adam import adam

COMPILE_MODES = ("off", "on", "auto")
BACKEND = "inductor"  # torch.compile's backend for PEZConfig.compile_step; tests use "aot_eager" (no code generation)
RECOMPILE_LIMIT = 64  # graphs kept for the step's code (torch's default, 8, is few for a host running many settings)
BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.AdamW's defaults, as the paper's code uses them


class PEZStep:
    """One optimisation step on ``prompt`` (updated in place): ``step(prompt, sample, noise) → (ids, loss, sims)``.

    Args:
        objective: maps P′ ([R, M, D]) and a target sample to (loss [R], similarity [R]).
        projector: the vocabulary (``Proj_E``).
        rule: the update rule (``methods.py``): what the objective sees, what happens after the update.
        prompt: the continuous prompt ``P`` (a leaf that requires grad); its AdamW state is made here.
        lr / weight_decay: AdamW's.
        amp: autocast dtype for the objective (``None``: fp32).
        capturable: keep AdamW's step count on the prompt's device (a CUDA graph may not read a CPU tensor).

    Returns ``ids`` (the projected token ids [R, M]; ``None`` for a rule that does not project each step), the
    loss per row (detached) and the similarity per row, all of the prompt *before* this step's update.
    """

    def __init__(self, objective, projector, rule, prompt: torch.Tensor, lr: float, weight_decay: float,
                 amp: torch.dtype | None = None, capturable: bool = False):
        self.objective, self.projector, self.rule = objective, projector, rule
        self.lr, self.weight_decay, self.amp, self.capturable = float(lr), float(weight_decay), amp, capturable
        self.device_type = prompt.device.type
        self.exp_avg = torch.zeros_like(prompt, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(prompt, memory_format=torch.preserve_format)
        # AdamW keeps its step count on the CPU unless capturable (then on the parameter's device)
        self.count = torch.zeros((), device=prompt.device) if capturable else torch.tensor(0.0)
        if capturable:  # a CUDA graph may update these in place only at fixed addresses
            for t in (prompt, self.exp_avg, self.exp_avg_sq, self.count):
                torch._dynamo.mark_static_address(t)

    def __call__(self, prompt: torch.Tensor, sample: torch.Tensor | None = None, noise: torch.Tensor | None = None):
        rule = self.rule
        ids = self.projector.nearest_ids(prompt) if rule.projects_each_step else None
        projected = rule.objective_input(prompt, ids, self.projector)
        with torch.autocast(self.device_type, dtype=self.amp) if self.amp is not None else nullcontext():
            loss, sims = self.objective(projected, sample)
        (grad,) = torch.autograd.grad(loss.sum(), [prompt])
        with torch.no_grad():
            adam([prompt], [grad], [self.exp_avg], [self.exp_avg_sq], [], [self.count], capturable=self.capturable,
                 decoupled_weight_decay=True, amsgrad=False, beta1=BETAS[0], beta2=BETAS[1], lr=self.lr,
                 weight_decay=self.weight_decay, eps=EPS, maximize=False)
            rule.after_update(prompt, self.projector, noise)
        return ids, loss.detach(), sims


def use_compiled(mode: str, device: torch.device) -> bool:
    """Whether ``PEZConfig.compile_step`` asks for a compiled step on ``device``.

    ``"auto"`` compiles on CUDA only. On the CPU (inductor, 1 thread, 4 restarts × 16 tokens,
    ``benchmarks/bench_step.py --compiled``) the compiled step was 1.09× faster on the toy model (17.2 → 15.8
    ms) and no faster on a ViT-B-32-sized tower (363 → 374 ms: the matmuls are the step), while compiling
    took 67 s (toy) to 108 s (ViT-B-32) with a cold cache: more than 3000 steps save."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile_step={mode!r} is unknown; use off, on or auto.")
    return mode == "on" or (mode == "auto" and device.type == "cuda")


class CompiledStep:
    """``step`` through ``torch.compile(fullgraph=True)``; on CUDA with ``mode="reduce-overhead"`` (CUDA graphs).

    If compiling (or capturing) fails, the step runs eagerly from then on and ``note`` says why; ``backend`` and
    ``mode`` are for tests and benchmarks (``"eager"`` / ``"aot_eager"`` trace without generating code; default
    ``BACKEND``).
    """

    def __init__(self, step: PEZStep, backend: str | None = None, mode: str | None = None):
        self.step, self.note, backend = step, None, backend or BACKEND
        if mode is None and backend == "inductor" and step.device_type == "cuda":
            mode = "reduce-overhead"
        self.cuda_graphs = mode == "reduce-overhead"
        # one graph per model, shape, method and term; a later run with the same ones reuses it (not recompiled)
        self.compiled: Callable | None = torch.compile(step, fullgraph=True, dynamic=False, backend=backend, mode=mode,
                                                       recompile_limit=RECOMPILE_LIMIT)

    def __call__(self, prompt: torch.Tensor, sample: torch.Tensor | None = None, noise: torch.Tensor | None = None):
        if self.compiled is None:
            return self.step(prompt, sample, noise)
        try:
            with torch._dynamo.config.patch(trace_autograd_ops=True):
                if self.cuda_graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                ids, loss, sims = self.compiled(prompt, sample, noise)
        except Exception as err:  # noqa: BLE001 - any failure to compile or capture: run eagerly, and say so
            self.compiled = None
            cause = getattr(err, "inner_exception", None) or err  # a backend's own error, not Dynamo's wrapper
            first = (str(cause).strip().splitlines() or [""])[0][:200]
            self.note = (f"compile_step: the compiled step failed ({type(cause).__name__}: {first}); "
                         "this run's steps ran eagerly.")
            return self.step(prompt, sample, noise)
        if self.cuda_graphs:  # a CUDA graph's outputs are overwritten by its next replay
            ids = None if ids is None else ids.clone()
            loss, sims = loss.clone(), sims.clone()
        return ids, loss, sims
