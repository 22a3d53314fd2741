"""One set of defaults for every front end — Python, CLI, ComfyUI nodes, the webui tab and routes, batch and
eval — and the paper's settings one switch away. ``docs/methods.md#defaults`` shows them as one table.

A task's defaults are ``PEZConfig``'s with the task's prompt length: an image needs the paper's 16 tokens, a
distilled prompt is short by intent (8), a composition keeps 16. Runs go up to the paper's 3000 steps and stop
when the best prompt has not improved for ``PEZConfig.patience`` steps (measured: ``benchmarks/bench_patience.py``).
``paper=True`` gives the settings of Wen et al. (2023), Sec. 4: M = 16, 3000 steps, one prompt at a time
(``prompt_bs`` 1), no early stop, AdamW lr 0.1 and weight decay 0.1.
"""

from __future__ import annotations

from .optim.config import PEZConfig

TASKS = ("invert", "distill", "concat")
TASK_PROMPT_LEN = {"invert": 16, "distill": 8, "concat": 16}
PAPER = {"prompt_len": 16, "steps": 3000, "restarts": 1, "patience": 0, "lr": 0.1, "weight_decay": 0.1,
         "method": "pez"}
TASK_KEYS = ("prompt_len", "steps", "restarts", "patience")  # what the task and the paper switch decide


def task_defaults(task: str, paper: bool = False) -> dict:
    """The settings ``task_config`` starts from: ``{"prompt_len", "steps", "restarts", "patience"}`` (+ the
    optimiser's with ``paper``)."""
    if task not in TASKS:
        raise ValueError(f"task {task!r} is unknown; use one of {', '.join(TASKS)}.")
    if paper:
        return dict(PAPER)
    base = PEZConfig()
    return {"prompt_len": TASK_PROMPT_LEN[task], **{k: getattr(base, k) for k in TASK_KEYS[1:]}}


def task_config(task: str, paper: bool = False, **settings) -> PEZConfig:
    """``PEZConfig`` for ``task`` ("invert", "distill" or "concat"): the task's defaults (the paper's with
    ``paper=True``), then ``settings`` over them. ``invert`` / ``distill`` / ``concat`` use it when given no config.

    >>> task_config("distill").prompt_len, task_config("distill", paper=True).restarts
    (8, 1)
    """
    return PEZConfig(**{**task_defaults(task, paper), **settings})
