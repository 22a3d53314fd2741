"""Tune a hard prompt for LM classification with the same loop and methods as CLIP (the paper's Sec. 5).

The optimiser runs on the training examples (loss: label cross-entropy + ``config.fluency`` · the LM's own
cross-entropy over the prompt); the returned prompt is the candidate (each restart's best and the ``top_k``
best texts) with the best *holdout* accuracy, as in the paper's few-shot setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..core import (Callback, PEZConfig, PromptFluency, VocabularyFilter, VocabularyProjector, allowed_token_ids,
                    optimize_prompt)
from .load import CausalLM
from .objective import LMClassificationObjective, accuracy, max_positions
from .task import Example, Task


@dataclass
class LMResult:
    """The tuned prompt, its accuracies (``None`` where no data was given), its fluency and the run's facts."""

    prompt: str
    train_accuracy: float
    holdout_accuracy: float | None
    perplexity: float
    method: str
    fluency: float
    steps: int
    seconds: float
    model: str
    stop_reason: str = "completed"  # the loop's: "completed", "patience" (no gain in config.patience steps), "callback"
    candidates: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def tune(lm: CausalLM, task: Task, train: Sequence[Example], holdout: Sequence[Example] = (),
         config: PEZConfig | None = None, callback: Callback | None = None) -> LMResult:
    """Learn a prompt of ``config.prompt_len`` tokens that makes ``lm`` classify ``train``; pick it by ``holdout``.

    Without holdout examples the pick is by training accuracy. ``config.method`` chooses the update rule
    (pez, autoprompt_sgd, fluentprompt, soft); its vocabulary filters apply to the LM's tokens.
    """
    config = (config or PEZConfig(prompt_len=8, steps=300)).validate(max_positions(lm) - 2)
    if config.method == "greedy_bank" or config.template is not None:
        raise ValueError("LM prompt tuning takes the task's template (--template with {text} and {mask}), not a PEZ "
                         "template, and a gradient method: pez, autoprompt_sgd, fluentprompt or soft.")
    if holdout:
        task.check_labels(holdout, "the holdout data")
    vocab = VocabularyFilter.make(config.blocklist, config.blocklist_substring, config.allowlist, config.ascii_only)
    with torch.inference_mode(False):
        projector = VocabularyProjector(lm.token_embedding, allowed_token_ids(lm, vocab))
        fluency = PromptFluency(lm.model, projector, lm.name)
        objective = LMClassificationObjective(lm, task, train, config.prompt_len, fluency, config.fluency)
        result = optimize_prompt(objective, projector, config, callback, model_name=lm.name, text_filter=vocab.allows_text)
        pool = {c.text: c for c in [*result.candidates, *result.best_per_restart] if vocab.allows_text(c.text)}
        judge = list(holdout) or list(train)
        scored = sorted(((accuracy(lm, task, text, judge), cand.similarity, text) for text, cand in pool.items()),
                        reverse=True)
        best = scored[0][2]
        perplexity = float(torch.tensor(fluency.of_ids(lm.encode(best))).exp())
    return LMResult(prompt=best, train_accuracy=accuracy(lm, task, best, train),
                    holdout_accuracy=scored[0][0] if holdout else None, perplexity=perplexity, method=config.method,
                    fluency=config.fluency, steps=result.steps, seconds=result.seconds, model=lm.name,
                    stop_reason=result.stop_reason,
                    candidates=[{"prompt": t, "accuracy": a} for a, _, t in scored])
