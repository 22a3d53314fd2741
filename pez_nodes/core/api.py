"""The three uses of PEZ on a CLIP: invert images, distill a text, concatenate prompts.

Each builds target features, then runs Algorithm 1 (``loop.optimize_prompt``) against them. Targets
may mix images and texts, each with a weight (negative: "not like this").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .backbone import ClipBackbone
from .config import PEZConfig
from .encoder import encode_text, max_prompt_tokens
from .images import ImageLike, iter_images, preprocess
from .layout import PromptLayout
from .loading import resolve_device
from .loop import Callback, optimize_prompt
from .objective import ClipObjective
from .projection import projector_for
from .result import Candidate, PEZResult
from .vocabulary import VocabularyFilter, allowed_token_ids


@dataclass
class Target:
    """One thing the prompt should match: an image (path, PIL, tensor) or a text, with a weight."""

    image: ImageLike | str | Path | None = None
    text: str | None = None
    weight: float = 1.0

    def __post_init__(self):
        if (self.image is None) == (self.text is None):
            raise ValueError("a Target takes exactly one of image= or text=.")
        if self.text is not None and (not isinstance(self.text, str) or not self.text.strip()):
            raise ValueError(f"text target {self.text!r} is empty; give a non-empty text.")


def with_negatives(positives: Sequence[Target], negatives: Sequence, share: float = 0.5) -> list[Target]:
    """``positives`` plus negative targets whose weights together are ``-share`` times the positives' total
    weight — so the weighted mean stays defined however many negatives there are. A ``str`` negative is a
    text; images are PIL images, tensors or ``pathlib.Path`` files."""
    if not 0 <= share < 1:
        raise ValueError(f"negative weight {share} must be in [0, 1): the negatives' share of the positives' weight.")
    each = -share * sum(t.weight for t in positives) / max(1, len(negatives))
    return list(positives) + [Target(text=n, weight=each) if isinstance(n, str) else Target(image=n, weight=each)
                              for n in negatives]


def image_features(model: ClipBackbone, images: Sequence[ImageLike | str | Path]) -> torch.Tensor:
    """Normalised image features ([N, F]) of image files, PIL images or tensors."""
    pixels = preprocess(iter_images(images), model.image_size, model.image_mean, model.image_std)
    feats = torch.nn.functional.normalize(model.encode_pixels(pixels), dim=-1)
    if not torch.isfinite(feats).all():
        raise ValueError(f"model {model.name} gave NaN image features; its weights are broken — reload or re-download them.")
    return feats


def target_features(model: ClipBackbone, targets: Sequence[Target]) -> tuple[torch.Tensor, torch.Tensor]:
    """Target features ([T, F]) and weights ([T]) in the order given."""
    if not targets:
        raise ValueError("no targets were given; give at least one image or text.")
    feats: list[torch.Tensor | None] = [None] * len(targets)
    image_idx = [i for i, t in enumerate(targets) if t.image is not None]
    if image_idx:
        for i, f in zip(image_idx, image_features(model, [targets[i].image for i in image_idx])):
            feats[i] = f
    for i, t in enumerate(targets):
        if t.text is not None:
            feats[i] = encode_text(model, t.text)
    weights = torch.tensor([float(t.weight) for t in targets])
    return torch.stack([f.to(model.device) for f in feats]), weights


def optimize(
    model: ClipBackbone,
    targets: Sequence[Target],
    config: PEZConfig | None = None,
    callback: Callback | None = None,
    layout: PromptLayout | None = None,
    extra_texts: Sequence[str] = (),
) -> PEZResult:
    """Learn a hard prompt whose text feature matches the weighted ``targets`` (Algorithm 1).

    ``extra_texts`` are scored as they are and returned instead when one beats the learned prompt.
    """
    config = (config or PEZConfig()).validate(max_prompt_tokens(model))
    with torch.inference_mode(False):
        model.to(resolve_device(config.device))
        feats, weights = target_features(model, targets)
        objective = ClipObjective(model, layout or layout_for(model, config), feats, weights, compile=config.compile)
        vocab = VocabularyFilter.make(config.blocklist, config.blocklist_substring, config.allowlist, config.ascii_only)
        projector = projector_for(model, allowed_token_ids(model, vocab))
        extra = tuple(Candidate(t, objective.score_text(t), model.tokenize(t)) for t in extra_texts if vocab.allows_text(t))
        result = optimize_prompt(objective, projector, config, callback, extra, model.name, text_filter=vocab.allows_text)
    return result


def layout_for(model: ClipBackbone, config: PEZConfig) -> PromptLayout:
    """A plain prompt of ``prompt_len`` tokens, or the config's template with ``slot_len`` tokens per slot."""
    if config.template is None:
        return PromptLayout.plain(config.prompt_len)
    return PromptLayout.from_template(model, config.template, config.slot_len or config.prompt_len)


def invert(model: ClipBackbone, images: Sequence[ImageLike | str | Path], config: PEZConfig | None = None,
           callback: Callback | None = None) -> PEZResult:
    """One prompt for one or more images (several images: their shared content or style)."""
    if images is None or len(images) == 0:
        raise ValueError("no images were given; give at least one image to invert.")
    return optimize(model, [Target(image=im) for im in images], config, callback)


def distill(model: ClipBackbone, text: str, config: PEZConfig | None = None, callback: Callback | None = None) -> PEZResult:
    """A short prompt (``prompt_len`` tokens) with the meaning of a long ``text``.

    A text longer than the encoder's window is encoded window by window and averaged
    (see :func:`pez_nodes.core.encoder.encode_text`), never silently cut.
    """
    return optimize(model, [Target(text=text)], config, callback)


def concat(model: ClipBackbone, texts: Sequence[str], config: PEZConfig | None = None,
           callback: Callback | None = None) -> PEZResult:
    """One prompt that composes several prompts (the paper's prompt concatenation, Sec. 4.3).

    The targets are the texts' features, equally weighted. The literal join ``"a, b"`` is scored too
    and returned if it beats the learned prompt; when the join does not fit the encoder's window it
    is cut at the window and the result's ``notes`` say so.
    """
    if texts is None or len(texts) < 2:
        raise ValueError(f"concat needs two or more texts, got {0 if texts is None else len(texts)}.")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"text {i + 1} of concat is empty; give non-empty prompts.")
    joined = ", ".join(t.strip() for t in texts)
    notes = []
    ids = model.tokenize(joined)
    window = max_prompt_tokens(model)
    if len(ids) > window:
        joined = model.decode(ids[:window])
        notes.append(f"the joined prompt has {len(ids)} tokens; cut to the text encoder's {window}-token window.")
    result = optimize(model, [Target(text=t) for t in texts], config, callback, extra_texts=(joined,))
    result.notes.extend(notes)
    return result
