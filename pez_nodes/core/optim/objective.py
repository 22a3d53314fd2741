"""The CLIP objective of PEZ: make the prompt's text feature point where the targets point.

Loss (the paper's Sec. 3, Algorithm 1 line "L(P′)"): ``1 − Σ_t w_t cos(f(P′), g_t) / Σ_t |w_t|``
between the text feature of the projected prompt and each target feature ``g_t`` (an image feature
for inversion, a text feature for distillation). With positive weights only this is the paper's
``1 − mean cos``. A negative weight always pushes the prompt away from its target, whatever the
other weights: dividing by ``Σ|w|`` (not ``Σw``, which flips the whole objective when negatives
outweigh positives) keeps every target's pull in the direction of its sign, and keeps the reported
similarity a weighted mean of signed cosines, inside [−1, 1]. At least one positive target is
required: with none there is nothing to match. One text-encoder pass gives both the loss and the
similarity used for best-so-far tracking; the paper's code ran a second, no-grad pass for the latter.

A returned prompt is scored as a user's text encoder sees it: re-tokenized, and cut at the window
(open_clip's tokenizer and Hugging Face's CLIP keep the first ``context_length − 2`` tokens).

Any other objective (a language model's classification loss, say) only needs the same four
methods to run in :func:`pez_nodes.core.optim.loop.optimize_prompt`.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from .text_encoder import TextEncoder, encode_token_ids, max_prompt_tokens
from .layout import PromptLayout


class ClipObjective:
    """Weighted cosine objective against fixed target features.

    Args:
        encoder: the frozen text encoder.
        layout: where learned tokens sit (plain prompt or template).
        targets: target features ([T, F]); normalised here.
        weights: one weight per target ([T]); negative ones push away; at least one must be positive.
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
        if not bool((weights > 0).any()):
            raise ValueError(f"target weights {weights.tolist()} have no positive weight; give at least one image or "
                             "text to match (negative weights only push away from their targets).")
        if layout.length > max_prompt_tokens(encoder):
            raise ValueError(f"the prompt needs {layout.length} tokens but the text encoder holds "
                             f"{max_prompt_tokens(encoder)}; lower prompt_len or shorten the template.")
        self.encoder = encoder
        self.layout = layout
        self.targets = F.normalize(targets.float(), dim=-1)
        self.weights = weights
        self.weight_sum = weights.abs().sum()
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

    def user_tokens(self, text: str) -> list[int]:
        """The token ids a text encoder uses for ``text``: re-tokenized and cut at the window."""
        return self.encoder.tokenize(text)[: max_prompt_tokens(self.encoder)]

    def cosines(self, text: str) -> torch.Tensor:
        """Cosine of ``text``'s feature (as a user's encoder sees it) with each target ([T])."""
        ids = self.user_tokens(text)  # an empty text is [SOT, EOT], as a user's encoder sees it
        feat = F.normalize(encode_token_ids(self.encoder, [ids])[0].to(self.targets.device), dim=-1)
        return (self.targets @ feat).cpu()

    def _score_text(self, text: str) -> float:
        """Similarity of ``text`` as a user would paste it: re-tokenized, cut at the window, encoded."""
        return float((self.cosines(text) * self.weights.cpu()).sum() / self.weight_sum.cpu())

    @torch.no_grad()
    def score_texts(self, texts: list[str], batch: int = 256) -> list[float]:
        """``score_text`` for many texts, encoded in batches (``greedy_bank`` scores a whole bank per round)."""
        out: list[float] = []
        for i in range(0, len(texts), batch):
            ids = [self.user_tokens(t) for t in texts[i : i + batch]]
            feats = F.normalize(encode_token_ids(self.encoder, ids).to(self.targets.device), dim=-1)
            out += ((feats @ self.targets.T * self.weights).sum(-1) / self.weight_sum).tolist()
        return out

    def same_tokens(self, text: str, ids: list[int]) -> bool:
        """Whether a user's encoder gets exactly the sequence that was scored for ``ids`` from ``text``."""
        return self.encoder.tokenize(text) == self.layout.full_ids(ids)


class GroupedClipObjective:
    """Several independent ``ClipObjective`` problems (e.g. one image each) scored in one encoder pass.

    ``views[g]`` is problem ``g``'s own objective (its targets; what tracking scores a text against); rows
    ``g·R … g·R + R − 1`` of a prompt batch are its ``R`` restarts (``loop.optimize_prompts``). All views
    share one encoder and layout, so the batch costs one forward pass: the weights are read once for every
    image, as restarts already share them.
    """

    def __init__(self, views: list[ClipObjective], restarts: int):
        if not views:
            raise ValueError("no problems were given; give at least one image.")
        self.views, self.restarts = list(views), int(restarts)
        self.encoder, self.layout, self.encode = views[0].encoder, views[0].layout, views[0].encode

    @property
    def n_targets(self) -> int:
        return 1  # each problem uses all of its own targets every step

    @property
    def prompt_len(self) -> int:
        return self.layout.learned

    def __call__(self, prompt: torch.Tensor, sample: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and similarity per row ([G·R]), each row against its own problem's targets."""
        feats = F.normalize(self.encode(self.layout.assemble(self.encoder, prompt)).float(), dim=-1)
        sims = []
        for g, view in enumerate(self.views):
            rows = feats[g * self.restarts:(g + 1) * self.restarts]
            sims.append(((rows @ view.targets.T) * view.weights).sum(-1) / view.weight_sum)
        sim = torch.cat(sims)
        return 1 - sim, sim.detach()
