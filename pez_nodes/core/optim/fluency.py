"""The fluency term: λ · a causal LM's next-token cross-entropy over the learned prompt (FluentPrompt; the paper's Sec. 5).

For the projected prompt's tokens ``t₁ … t_M``::

    F(P′) = −1/(M−1) · Σ_{i<M} log p_LM(t_{i+1} | t₁ … t_i)            (added to the loss as λ · F)

The tokens are discrete, so the term is made differentiable in ``P`` by a straight-through soft choice of
each token, ``c_i = onehot(t_i) + s_i − stop_grad(s_i)`` with ``s_i = softmax(cos(P′_i, E)/τ)`` over the
allowed vocabulary (the projection's own cosines). Its value is exactly the one-hot one — ``F`` is the true
cross-entropy of the text — while its gradient moves each ``P_i`` toward the tokens the LM finds likely
after ``t₁ … t_{i−1}`` (``c`` as the next-token target) and toward contexts that make the next token likely
(``c · E_LM`` as the LM's inputs). Any LM works whose token ids are the prompt's (for CLIP prompts: one
trained on CLIP's BPE); it is called as ``lm(inputs_embeds=…).logits`` and nothing here imports it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import torch

from .projection import VocabularyProjector

TEMPERATURE = 0.1
PROBE = "a photo of a red circle on grass, painting by an artist"


class PromptFluency:
    """The fluency cross-entropy of prompts projected by ``projector``, scored by ``lm``.

    Args:
        lm: a causal LM taking ``inputs_embeds`` and returning ``.logits`` (a ``transformers`` model).
        projector: the prompt's vocabulary (its allowed ids must be token ids of ``lm``).
        name: the LM's name, for messages.
    """

    def __init__(self, lm, projector: VocabularyProjector, name: str = "the language model"):
        self.lm = lm.eval().requires_grad_(False)
        self.table = lm.get_input_embeddings().weight
        if int(projector.allowed_ids.max()) >= self.table.shape[0]:
            raise ValueError(f"{name} has {self.table.shape[0]} tokens but the prompt's vocabulary has ids up to "
                             f"{int(projector.allowed_ids.max())}; use a fluency LM trained on the prompt model's tokenizer.")
        self.projector = projector
        self.rows = self.table[projector.allowed_ids.to(self.table.device)]

    def choice(self, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt's token ids ([R, M]) and the straight-through part of the soft choice, ``s − stop_grad(s)``."""
        cosines = self.projector.cosines(prompt)  # [R, M, V′], once: the ids are its argmax (= nearest_ids)
        ids = self.projector.allowed_ids[cosines.detach().argmax(dim=-1)]
        soft = (cosines / TEMPERATURE).softmax(-1)
        return ids, soft - soft.detach()

    def cross_entropy(self, logits: torch.Tensor, ids: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy per prompt ([R]) from the LM's logits at the prompt positions ([R, M, V])."""
        logp = logits[:, :-1].float().log_softmax(-1)
        nll = -logp.gather(-1, ids[:, 1:, None].to(logp.device)).squeeze(-1)
        allowed = logp.index_select(-1, self.projector.allowed_ids.to(logp.device))  # (index_select: fast backward)
        nll = nll - (delta[:, 1:] * allowed).sum(-1)  # value 0, gradient
        return nll.mean(-1)

    def __call__(self, prompt: torch.Tensor) -> torch.Tensor:
        """``F(P′)`` per restart ([R]) for a prompt in the projector's embedding space ([R, M, D])."""
        if prompt.shape[1] < 2:
            return prompt.new_zeros(prompt.shape[0])
        ids, delta = self.choice(prompt)
        inputs = self.table[ids.to(self.table.device)] + delta.to(self.rows.dtype) @ self.rows
        logits = self.lm(inputs_embeds=inputs.to(self.table.dtype)).logits
        return self.cross_entropy(logits, ids, delta)

    @torch.no_grad()
    def of_ids(self, ids: Sequence[int]) -> float:
        """The cross-entropy of a token sequence (its perplexity is ``exp`` of it); ``nan`` for fewer than two."""
        if len(ids) < 2:
            return float("nan")
        tensor = torch.tensor([list(ids)], device=self.table.device)
        logits = self.lm(input_ids=tensor).logits
        logp = logits[:, :-1].float().log_softmax(-1)
        return float(-logp.gather(-1, tensor[:, 1:, None]).mean())


def check_same_tokenizer(lm_encode: Callable[[str], list[int]], prompt_tokenize: Callable[[str], list[int]],
                         name: str) -> None:
    """Refuse a fluency LM whose tokenizer gives other ids than the prompt model's for the same text."""
    if list(lm_encode(PROBE)) != list(prompt_tokenize(PROBE)):
        raise ValueError(f"fluency LM {name} does not share the prompt model's tokenizer ({PROBE!r} gives other ids); "
                         "use an LM trained on CLIP's BPE, e.g. the bundled toy_lm_small.")


class FluentObjective:
    """``objective`` with the fluency term: loss ``+ weight · F`` and score ``− weight · F``.

    The score is what best-so-far tracking ranks, so the prompt returned is the best trade-off the loss asks
    for, not the least fluent prompt that happened to score highest; ``score_text`` is the same for a pasted
    text (its tokens scored as a whole). The caller reports the plain similarity (``plain_score``).
    """

    def __init__(self, objective, fluency: PromptFluency, weight: float):
        self.objective, self.fluency, self.weight = objective, fluency, float(weight)
        self.score_text = lru_cache(maxsize=4096)(self._score_text)

    def __call__(self, prompt: torch.Tensor, sample: torch.Tensor | None = None):
        loss, score = self.objective(prompt, sample)
        cross_entropy = self.fluency(prompt).to(loss.device)
        return loss + self.weight * cross_entropy, score - self.weight * cross_entropy.detach()

    def _score_text(self, text: str) -> float:
        return self.objective.score_text(text) - self.weight * self.cross_entropy(text)

    def cross_entropy(self, text: str) -> float:
        """``F`` of a text as the prompt model tokenizes it (0 for fewer than two tokens)."""
        value = self.fluency.of_ids(self.objective.user_tokens(text))
        return 0.0 if math.isnan(value) else value

    def plain_score(self, text: str) -> float:
        return self.objective.score_text(text)

    def __getattr__(self, name):
        return getattr(self.objective, name)
