"""Tune a hard prompt for LM classification with the same loop and methods as CLIP (the paper's Sec. 5).

The optimiser runs on the training examples; the returned prompt is the candidate (each restart's best and
the ``top_k`` best texts) with the best *holdout* accuracy, as in the paper's few-shot setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..core.config import PEZConfig
from ..core.loop import Callback, optimize_prompt
from ..core.projection import VocabularyProjector
from .objective import LMClassificationObjective
from .task import Example, Task


@dataclass
class LMResult:
    """The tuned prompt, its accuracies (``None`` where no data was given) and the optimiser's result."""

    prompt: str
    train_accuracy: float
    holdout_accuracy: float | None
    method: str
    steps: int
    seconds: float
    candidates: list[dict] = field(default_factory=list)


def tune(model, tokenizer, task: Task, train: Sequence[Example], holdout: Sequence[Example] = (),
         config: PEZConfig | None = None, fluency: float = 0.0, callback: Callback | None = None) -> LMResult:
    """Learn a prompt of ``config.prompt_len`` tokens that makes ``model`` classify ``train``; pick by ``holdout``."""
    config = (config or PEZConfig(prompt_len=8, steps=300)).validate()
    if holdout:
        task.check_labels(holdout, "the holdout data")
    with torch.inference_mode(False):
        objective = LMClassificationObjective(model, tokenizer, task, train, config.prompt_len, fluency)
        vocab = objective.table.shape[0]
        special = set(getattr(tokenizer, "all_special_ids", []))
        allowed = torch.tensor([i for i in range(vocab) if i not in special], device=objective.table.device)
        result = optimize_prompt(objective, VocabularyProjector(objective.table, allowed), config, callback,
                                 model_name=type(model).__name__)
        pool = {c.text: c for c in [*result.candidates, *result.best_per_restart]}
        judge = list(holdout) or list(train)
        scored = [(objective.accuracy(text, judge), cand.similarity, text) for text, cand in pool.items()]
    holdout_acc, _, best = max(scored)
    return LMResult(prompt=best, train_accuracy=objective.accuracy(best, train),
                    holdout_accuracy=holdout_acc if holdout else None, method=config.method, steps=result.steps,
                    seconds=result.seconds, candidates=[{"prompt": t, "holdout_accuracy": a} for a, _, t in
                                                        sorted(scored, reverse=True)])
