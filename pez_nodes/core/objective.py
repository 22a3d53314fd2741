"""The CLIP objective of PEZ: make the prompt's text feature point where the targets point.

Loss (the paper's Sec. 3, Algorithm 1 line "L(P′)"): ``1 − Σ_t w_t cos(f(P′), g_t) / Σ_t w_t``, the
weighted mean cosine between the text feature of the projected prompt and each target feature
``g_t`` (an image feature for inversion, a text feature for distillation). A negative weight pushes
the prompt away from its target. One text-encoder pass gives both the loss and the similarity used
for best-so-far tracking; the paper's code ran a second, no-grad pass for the latter.

Any other objective (a language model's classification loss, say) only needs the same four
methods to run in :func:`pez_nodes.core.loop.optimize_prompt`.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from .encoder import TextEncoder, encode_text, max_prompt_tokens
from .layout import PromptLayout


class ClipObjective:
    """Weighted cosine objective against fixed target features.

    Args:
        encoder: the frozen text encoder.
        layout: where learned tokens sit (plain prompt or template).
        targets: target features ([T, F]); normalised here.
        weights: one weight per target ([T]); their sum must not be 0.
        compile: run the encoder through ``torch.compile``.
    """

    def __init__(self, encoder: TextEncoder, layout: PromptLayout, targets: torch.Tensor, weights: torch.Tensor,
                 compile: bool = False):
        if targets.ndim != 2 or targets.shape[0] == 0:
            raise ValueError("no targets were given; give at least one image or text.")
        if not torch.isfinite(targets).all():
            raise ValueError("target features contain NaN or infinity; check the input images/texts and the model weights.")
        weights = weights.to(targets.device, torch.float32)
        if weights.shape != (targets.shape[0],) or not torch.isfinite(weights).all():
            raise ValueError(f"need one finite weight per target ({targets.shape[0]}), got {weights.tolist()}.")
        if abs(float(weights.sum())) < 1e-8:
            raise ValueError(f"target weights {weights.tolist()} sum to zero; the weighted mean is undefined — give "
                             "positive targets more weight than negative ones.")
        if layout.length > max_prompt_tokens(encoder):
            raise ValueError(f"the prompt needs {layout.length} tokens but the text encoder holds "
                             f"{max_prompt_tokens(encoder)}; lower prompt_len or shorten the template.")
        self.encoder = encoder
        self.layout = layout
        self.targets = F.normalize(targets.float(), dim=-1)
        self.weights = weights
        self.weight_sum = weights.sum()
        self.score_text = lru_cache(maxsize=4096)(self._score_text)
        self.encode = torch.compile(encoder.encode_embeddings, dynamic=False) if compile else encoder.encode_embeddings

    @property
    def n_targets(self) -> int:
        return self.targets.shape[0]

    @property
    def prompt_len(self) -> int:
        return self.layout.learned

    def __call__(self, prompt: torch.Tensor, sample: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss per restart (with grad) and similarity per restart (detached) for P′ ([R, M, D]).

        With ``sample`` (target indices) the loss is the unbiased estimate from those targets only;
        the similarity always uses every target.
        """
        embeds = self.layout.assemble(self.encoder, prompt)
        feats = F.normalize(self.encode(embeds).float(), dim=-1)
        cos = feats @ self.targets.T  # [R, T]
        sim = (cos * self.weights).sum(-1) / self.weight_sum
        if sample is None:
            loss = 1 - sim
        else:
            scale = self.targets.shape[0] / sample.numel()
            loss = 1 - scale * (cos[:, sample] * self.weights[sample]).sum(-1) / self.weight_sum
        return loss, sim.detach()

    def text_of(self, ids: list[int]) -> str:
        """The text a user gets for learned ids ([M])."""
        return self.layout.text(self.encoder, ids)

    def _score_text(self, text: str) -> float:
        """Similarity of ``text`` as a user would paste it: re-tokenized, then encoded."""
        feat = encode_text(self.encoder, text).to(self.targets.device)
        return float(((self.targets @ feat) * self.weights).sum() / self.weight_sum)

    def same_tokens(self, text: str, ids: list[int]) -> bool:
        """Whether re-tokenizing ``text`` gives back exactly the sequence that was scored for ``ids``."""
        return self.encoder.tokenize(text) == self.layout.full_ids(ids)
