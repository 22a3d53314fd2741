"""The language-model objective of PEZ (the paper's Sec. 5): a prompt that makes a causal LM classify.

For restarts ``R`` and examples ``B``, each sequence is ``[P′ (M learned tokens), context(example)]`` where
the context is the template up to ``{mask}``; the LM's next-token logits after the last context token,
read over the verbalizer's words, give the class distribution. Loss per restart::

    L = CE(label | verbalizer logits)  +  λ · CE_LM(P′_{i+1} | P′_{≤i})      (fluency, λ = 0.003 in the paper)

The fluency term is the LM's own next-token cross-entropy over the prompt positions (FluentPrompt's, as in
the official ``prompt_lm/`` code), read from the same forward pass (the LM is causal, so the prompt's logits do
not depend on the example) and made differentiable by ``core/optim/fluency.py``'s straight-through token choice.
The tracked score (``similarity`` in the loop's vocabulary) is the mean probability of the right class over the training examples, in [0, 1], minus λ·F with fluency (so tracking
ranks the loss's trade-off). Like ``ClipObjective`` it offers what ``loop.optimize_prompt`` needs and nothing
of the loop knows it is an LM.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

from ..core import PromptFluency
from .load import CausalLM
from .task import Example, Task


class LMClassificationObjective:
    """Args:
        lm: the frozen causal LM and its tokenizer (``load.load_lm``).
        task: template and verbalizer; ``examples``: the training examples.
        prompt_len: learned tokens M.
        fluency: the fluency term over the prompt (its projector is the prompt's vocabulary); ``weight``: λ.
    """

    def __init__(self, lm: CausalLM, task: Task, examples: Sequence[Example], prompt_len: int,
                 fluency: PromptFluency | None = None, weight: float = 0.0):
        task.check_labels(examples, "the training data")
        if weight and fluency is None:
            raise ValueError("a fluency weight needs the fluency term (PromptFluency) to weigh.")
        self.lm = lm
        self.model = lm.model
        self.task = task
        self.labels = list(task.verbalizer)
        self.word_ids = [self._single_token(label, word) for label, word in task.verbalizer.items()]
        for i, token in enumerate(self.word_ids):
            first = self.word_ids.index(token)
            if first != i:  # e.g. "Good" and "good" for a lower-casing tokenizer
                (a, b), verbalizer = (self.labels[first], self.labels[i]), task.verbalizer
                raise ValueError(f"verbalizer words {verbalizer[a]!r} (label {a!r}) and {verbalizer[b]!r} (label {b!r}) "
                                 "are the same token for this tokenizer; give each label a word of its own.")
        self.examples = list(examples)
        self.contexts = [self.encode(" " + task.context(e.text)) for e in self.examples]
        self.targets = torch.tensor([self.labels.index(e.label) for e in self.examples])
        window = max_positions(lm)
        longest = max(range(len(self.contexts)), key=lambda i: len(self.contexts[i]))
        if prompt_len + len(self.contexts[longest]) > window:
            raise ValueError(f"example {longest + 1} ({self.examples[longest].text[:40]!r}...) is "
                             f"{len(self.contexts[longest])} tokens with the template; with {prompt_len} prompt tokens "
                             f"that exceeds the LM's {window} positions: shorten the texts or the prompt.")
        self.prompt_len = prompt_len
        self.fluency, self.weight = fluency, float(weight)
        self.table = lm.token_embedding
        self.score_text = lru_cache(maxsize=4096)(self._score_text)

    def _single_token(self, label: str, word: str) -> int:
        ids = self.encode(" " + word)
        if len(ids) != 1:
            raise ValueError(f"verbalizer word {word!r} (label {label!r}) is {len(ids)} tokens for this tokenizer; "
                             "choose a word that is one token.")
        return ids[0]

    def encode(self, text: str) -> list[int]:
        return self.lm.encode(text)

    @property
    def n_targets(self) -> int:
        return len(self.examples)

    def logits(self, prompt: torch.Tensor, examples: Sequence[int], prompt_logits: bool = False):
        """Verbalizer logits ([R, B, C]) for prompt embeddings ([R, M, D]), and (if asked) the LM's logits over the
        prompt ([R, M, V]). The vocabulary head is applied only where it is read: the verbalizer's rows at the
        mask position, and every row at the prompt's positions (the same for every example: the LM is causal)."""
        r, m, _ = prompt.shape
        contexts = [self.contexts[i] for i in examples]
        width = m + max(len(c) for c in contexts)
        ids = torch.zeros(len(contexts), width - m, dtype=torch.long)
        mask = torch.zeros(len(contexts), width, dtype=torch.long)
        for j, c in enumerate(contexts):
            ids[j, : len(c)] = torch.tensor(c)
            mask[j, : m + len(c)] = 1
        device = self.table.device
        context = self.table[ids.to(device)]  # [B, L, D]
        embeds = torch.cat([prompt[:, None].expand(r, len(contexts), m, -1),
                            context[None].expand(r, -1, -1, -1).to(prompt.dtype)], dim=2).flatten(0, 1)
        hidden = self.model.base_model(inputs_embeds=embeds, attention_mask=mask.repeat(r, 1).to(device)).last_hidden_state
        last = torch.tensor([m + len(c) - 1 for c in contexts], device=device).repeat(r)
        head = self.model.get_output_embeddings()
        bias = head.bias[self.word_ids] if getattr(head, "bias", None) is not None else None
        verbal = F.linear(hidden[torch.arange(hidden.shape[0], device=device), last], head.weight[self.word_ids], bias)
        over_prompt = head(hidden.view(r, len(contexts), width, -1)[:, 0, :m]) if prompt_logits else None
        return verbal.view(r, len(contexts), -1), over_prompt

    def __call__(self, prompt: torch.Tensor, sample: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss per restart (label CE + λ·fluency) and the mean probability of the right class (detached)."""
        chosen = sample.tolist() if sample is not None else list(range(self.n_targets))
        verbal, prompt_logits = self.logits(prompt, chosen, prompt_logits=bool(self.weight))
        targets = self.targets[chosen].to(verbal.device)
        logp = verbal.float().log_softmax(-1)
        right = logp.gather(-1, targets[None, :, None].expand(verbal.shape[0], -1, 1)).squeeze(-1)  # [R, B]
        loss = -right.mean(-1)
        with torch.no_grad():
            score = right.exp().mean(-1) if sample is None else self._full_score(prompt)
        if self.weight and prompt.shape[1] > 1:  # ranked by the loss's trade-off too (the core's FluentObjective)
            ids, delta = self.fluency.choice(prompt)
            cross_entropy = self.fluency.cross_entropy(prompt_logits, ids, delta)
            loss = loss + self.weight * cross_entropy
            score = score - self.weight * cross_entropy.detach()
        return loss, score.detach()

    def _full_score(self, prompt: torch.Tensor) -> torch.Tensor:
        verbal, _ = self.logits(prompt.detach(), list(range(self.n_targets)))
        logp = verbal.float().log_softmax(-1)
        targets = self.targets.to(verbal.device)
        return logp.gather(-1, targets[None, :, None].expand(verbal.shape[0], -1, 1)).squeeze(-1).exp().mean(-1)

    # --- what the loop's tracker needs: the text a user gets, scored as re-tokenized --------------
    def text_of(self, ids: list[int]) -> str:
        return self.lm.decode(ids)

    def user_tokens(self, text: str) -> list[int]:
        return self.encode(text)

    def same_tokens(self, text: str, ids: list[int]) -> bool:
        return self.user_tokens(text) == list(ids)

    @torch.no_grad()
    def _score_text(self, text: str) -> float:
        ids = self.user_tokens(text)
        if not ids:
            return 0.0
        score = float(self._full_score(self.table[torch.tensor(ids, device=self.table.device)][None].float())[0])
        return score - self.weight * self.fluency.of_ids(ids) if self.weight and len(ids) > 1 else score

    def accuracy(self, text: str, examples: Sequence[Example]) -> float:
        return accuracy(self.lm, self.task, text, examples)


def max_positions(lm: CausalLM) -> int:
    """How many tokens the LM reads (``CausalLM.max_length``)."""
    return lm.max_length


@torch.no_grad()
def accuracy(lm: CausalLM, task: Task, text: str, examples: Sequence[Example], batch: int = 64) -> float:
    """Share of ``examples`` that ``lm`` classifies right with ``text`` as the prompt (``""``: the bare template)."""
    task.check_labels(examples, "the evaluation data")
    ids = lm.encode(text)
    scorer = LMClassificationObjective(lm, task, examples, len(ids))
    prompt = lm.token_embedding[torch.tensor(ids, dtype=torch.long, device=lm.device)][None].float()
    correct = 0
    for start in range(0, len(examples), batch):
        chosen = list(range(start, min(start + batch, len(examples))))
        verbal, _ = scorer.logits(prompt, chosen)
        correct += int((verbal[0].argmax(-1).cpu() == scorer.targets[chosen]).sum())
    return correct / len(examples)
