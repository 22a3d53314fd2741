"""The language-model objective of PEZ (the paper's Sec. 5): a prompt that makes a causal LM classify.

For restarts ``R`` and examples ``B``, each sequence is ``[P′ (M learned tokens), context(example)]`` where
the context is the template up to ``{mask}``; the LM's next-token logits after the last context token,
read over the verbalizer's words, give the class distribution. Loss per restart::

    L = CE(label | verbalizer logits)  +  λ · CE_LM(P′_{i+1} | P′_{≤i})      (fluency, λ = 0.003 in the paper)

The fluency term is the LM's own next-token cross-entropy over the prompt positions (FluentPrompt's, as in
the official ``prompt_lm/`` code). The tracked score (``similarity`` in the loop's vocabulary) is the mean
probability of the right class over the training examples, in [0, 1]. Like ``ClipObjective`` it offers what
``loop.optimize_prompt`` needs and nothing of the loop knows it is an LM.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

from .task import Example, Task


class LMClassificationObjective:
    """Args:
        model: a ``transformers`` causal LM (``AutoModelForCausalLM``), frozen here.
        tokenizer: its tokenizer (``encode(text, add_special_tokens=False)`` / ``decode``).
        task: template and verbalizer; ``examples``: the training examples.
        prompt_len: learned tokens M; ``fluency``: λ.
    """

    def __init__(self, model, tokenizer, task: Task, examples: Sequence[Example], prompt_len: int, fluency: float = 0.0):
        task.check_labels(examples, "the training data")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.task = task
        self.labels = list(task.verbalizer)
        self.word_ids = [self._single_token(label, word) for label, word in task.verbalizer.items()]
        self.examples = list(examples)
        self.contexts = [self.encode(" " + task.context(e.text)) for e in self.examples]
        self.targets = torch.tensor([self.labels.index(e.label) for e in self.examples])
        self.prompt_len = prompt_len
        self.fluency = float(fluency)
        self.table = model.get_input_embeddings().weight
        self.score_text = lru_cache(maxsize=4096)(self._score_text)

    def _single_token(self, label: str, word: str) -> int:
        ids = self.encode(" " + word)
        if len(ids) != 1:
            raise ValueError(f"verbalizer word {word!r} (label {label!r}) is {len(ids)} tokens for this tokenizer; "
                             "choose a word that is one token.")
        return ids[0]

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    @property
    def n_targets(self) -> int:
        return len(self.examples)

    def logits(self, prompt: torch.Tensor, examples: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Verbalizer logits ([R, B, C]) for prompt embeddings ([R, M, D]) and the LM's logits over the prompt."""
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
        out = self.model(inputs_embeds=embeds, attention_mask=mask.repeat(r, 1).to(device)).logits  # [R·B, W, V]
        last = torch.tensor([m + len(c) - 1 for c in contexts], device=device).repeat(r)
        verbal = out[torch.arange(out.shape[0], device=device), last][:, self.word_ids]
        return verbal.view(r, len(contexts), -1), out.view(r, len(contexts), width, -1)[:, 0, : m]

    def __call__(self, prompt: torch.Tensor, sample: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss per restart (label CE + λ·fluency) and the mean probability of the right class (detached)."""
        chosen = sample.tolist() if sample is not None else list(range(self.n_targets))
        verbal, prompt_logits = self.logits(prompt, chosen)
        targets = self.targets[chosen].to(verbal.device)
        logp = verbal.float().log_softmax(-1)
        right = logp.gather(-1, targets[None, :, None].expand(verbal.shape[0], -1, 1)).squeeze(-1)  # [R, B]
        loss = -right.mean(-1)
        if self.fluency and prompt.shape[1] > 1:
            ids = self.nearest_ids(prompt)
            lm = F.cross_entropy(prompt_logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
            loss = loss + self.fluency * lm.view(prompt.shape[0], -1).mean(-1)
        with torch.no_grad():
            score = right.exp().mean(-1) if sample is None else self._full_score(prompt)
        return loss, score.detach()

    def _full_score(self, prompt: torch.Tensor) -> torch.Tensor:
        verbal, _ = self.logits(prompt.detach(), list(range(self.n_targets)))
        logp = verbal.float().log_softmax(-1)
        targets = self.targets.to(verbal.device)
        return logp.gather(-1, targets[None, :, None].expand(verbal.shape[0], -1, 1)).squeeze(-1).exp().mean(-1)

    def nearest_ids(self, prompt: torch.Tensor) -> torch.Tensor:
        """The vocabulary rows a (projected) prompt is made of: exact for P′, the nearest for a soft prompt."""
        normed = F.normalize(self.table.float(), dim=-1)
        return (F.normalize(prompt.detach().float(), dim=-1) @ normed.T).argmax(-1)

    # --- what the loop's tracker needs: the text a user gets, scored as re-tokenized --------------
    def text_of(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids)).strip()

    def user_tokens(self, text: str) -> list[int]:
        return self.encode(text)

    def same_tokens(self, text: str, ids: list[int]) -> bool:
        return self.user_tokens(text) == list(ids)

    @torch.no_grad()
    def _score_text(self, text: str) -> float:
        ids = self.user_tokens(text)
        if not ids:
            return 0.0
        return float(self._full_score(self.table[torch.tensor(ids, device=self.table.device)][None].float())[0])

    @torch.no_grad()
    def accuracy(self, text: str, examples: Sequence[Example]) -> float:
        """Share of ``examples`` the LM classifies right with ``text`` as the prompt (``""``: the bare template)."""
        self.task.check_labels(examples, "the evaluation data")
        scorer = LMClassificationObjective(self.model, self.tokenizer, self.task, examples, self.prompt_len)
        ids = self.user_tokens(text)
        prompt = self.table[torch.tensor(ids, dtype=torch.long, device=self.table.device)][None].float()
        correct = 0
        for start in range(0, len(examples), 64):
            chosen = list(range(start, min(start + 64, len(examples))))
            verbal, _ = scorer.logits(prompt, chosen)
            correct += int((verbal[0].argmax(-1).cpu() == scorer.targets[chosen]).sum())
        return correct / len(examples)
