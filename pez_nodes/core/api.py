"""The three uses of PEZ on a CLIP: invert images, distill a text, concatenate prompts.

The pipeline over the frozen CLIP (``clip/``) and Algorithm 1 (``optim/``): config in, result out. Each use
builds target features, then runs Algorithm 1 (``optim.loop.optimize_prompt``) against them. Targets may mix
images and texts, each with a weight (negative: "not like this").
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .clip.backbone import ClipBackbone
from .clip.images import ImageLike, iter_images, preprocess
from .device import resolve_device
from .defaults import task_config
from .optim.config import PEZConfig
from .optim.fluency import FluentObjective, PromptFluency, check_same_tokenizer
from .optim.greedy_bank import greedy_bank
from .optim.guided import guided_decode
from .optim.layout import PromptLayout
from .optim.loop import Callback, optimize_prompt, optimize_prompts
from .optim.objective import ClipObjective, GroupedClipObjective
from .optim.projection import VocabularyProjector, projector_for
from .optim.result import Candidate, PEZResult
from .optim.text_encoder import encode_text, max_prompt_tokens
from .optim.vocabulary import VocabularyFilter, allowed_token_ids


@dataclass
class Target:
    """One thing the prompt should match: an image (path, PIL, tensor) or a text, with a weight."""

    image: ImageLike | str | Path | None = None
    text: str | None = None
    weight: float = 1.0

    def __post_init__(self):
        if (self.image is None) == (self.text is None):
            raise ValueError("a Target takes exactly one of image= or text=.")
        if isinstance(self.weight, bool) or not isinstance(self.weight, numbers.Real) or not math.isfinite(self.weight):
            raise ValueError(f"target weight {self.weight!r} must be a finite number (negative: push away).")
        self.weight = float(self.weight)
        if self.text is not None and (not isinstance(self.text, str) or not self.text.strip()):
            raise ValueError(f"text target {self.text!r} is empty; give a non-empty text.")


def with_negatives(positives: Sequence[Target], negatives: Sequence, share: float = 0.5) -> list[Target]:
    """``positives`` plus negative targets whose weights together are ``-share`` times the positives' total
    weight, so adding negatives never changes how hard the positives pull. A ``str`` negative is a text;
    images are PIL images, tensors or ``pathlib.Path`` files."""
    if isinstance(share, bool) or not isinstance(share, numbers.Real) or not math.isfinite(share) or share < 0:
        raise ValueError(f"negative weight {share!r} must be a number >= 0: the negatives' share of the positives' "
                         "weight (0.5: half as strong).")
    each = -share * sum(t.weight for t in positives) / max(1, len(negatives))
    return list(positives) + [Target(text=n, weight=each) if isinstance(n, str) else Target(image=n, weight=each)
                              for n in negatives]


def image_features(model: ClipBackbone, images: Sequence[ImageLike | str | Path]) -> torch.Tensor:
    """Normalised image features ([N, F]) of image files, PIL images or tensors.

    A model with its own image path (``encode_images``, e.g. a host's vision model) gets the images as given.
    """
    own = getattr(model, "encode_images", None)
    if own is not None:
        raw = own(list(images))
    elif not getattr(model, "has_images", True):
        raise ValueError(f"model {model.name} is a text encoder only; it cannot encode images — use a CLIP with its "
                         "vision tower for images.")
    else:
        size = model.image_size
        raw = model.encode_pixels(preprocess(iter_images(images, max_side=size), size, model.image_mean, model.image_std))
    feats = torch.nn.functional.normalize(raw, dim=-1)
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
    fluency_lm=None,
    guide_lm=None,
) -> PEZResult:
    """Learn a hard prompt whose text feature matches the weighted ``targets`` (Algorithm 1).

    The model stays where it is: ``config.device`` ``"auto"`` uses the model's device, any other value
    must name it (load the model there with ``load_clip(..., device=...)``).

    ``extra_texts`` are scored as they are and returned instead when one beats the learned prompt —
    only if they obey every control a learned prompt obeys (no template, vocabulary filters, declared
    vocabulary); the result's ``notes`` say when one was left out.

    ``fluency_lm`` (with ``config.fluency`` > 0) is the causal LM of the fluency term, one that shares the
    model's tokenizer (``pez_nodes.lm.load_lm``; the toy world's is ``toy_lm_small``).

    ``guide_lm`` (with ``config.method="guided"``) is the causal LM that writes the prompt (any tokenizer:
    ``pez_nodes.lm.load_lm``'s ``CausalLM``, or anything with the members of ``optim.guided.GuideLM``).
    """
    if isinstance(targets, (Target, str)) or not isinstance(targets, Sequence):
        raise ValueError(f"targets must be a list of Target, got {type(targets).__name__}; "
                         "write [Target(image=...)] or [Target(text=...)].")
    with torch.inference_mode(False):
        run = _set_up(model, config, any(t.image is not None for t in targets), layout)
        model, config, vocab, allowed, projector = run.model, run.config, run.vocab, run.allowed, run.projector
        feats, weights = target_features(model, targets)
        objective = ClipObjective(model, run.layout, feats, weights, compile=config.compile)
        if config.fluency:
            objective = _with_fluency(model, objective, projector, config.fluency, fluency_lm)
        offered, notes = _offerable(objective, vocab, allowed, config, extra_texts)
        extra = tuple(Candidate(t, objective.score_text(t), objective.user_tokens(t)) for t in offered)
        if config.method == "guided":
            result = guided_decode(objective, _guide(guide_lm), config.prompt_len, config.beams, config.candidates,
                                   config.lm_weight, config.start_text or "", config.instruction or "",
                                   set(allowed.tolist()), vocab.allows_text, callback, config.top_k, extra, model.name)
        elif config.method == "greedy_bank":
            result = greedy_bank(objective, _bank(model, config), config.prompt_len, set(allowed.tolist()),
                                 config.top_k, vocab.allows_text, callback, extra, model.name)
        else:
            result = optimize_prompt(objective, projector, config, callback, extra, model.name,
                                     text_filter=vocab.allows_text)
        if config.fluency:
            _report_plain_similarity(result, objective)
        result.target_cosines = [float(c) for c in objective.cosines(result.text)]
    result.notes = [*getattr(model, "notes", []), *notes, *_window_note(model, result.text), *result.notes]
    return result


@dataclass
class _Run:
    """What every run sets up before Algorithm 1 (see :func:`_set_up`)."""

    model: ClipBackbone
    config: PEZConfig
    layout: PromptLayout
    vocab: VocabularyFilter
    allowed: torch.Tensor
    projector: VocabularyProjector


def _set_up(model: ClipBackbone, config: PEZConfig | None, images: bool, layout: PromptLayout | None = None) -> _Run:
    """The one set-up path of :func:`optimize` and :func:`invert_each`: the towers that see images (when images
    are targets), the config checked against the encoder's window, the device checked, the vocabulary filtered
    and the projector onto it (Algorithm 1's ``Proj_E``). Called inside ``inference_mode(False)``."""
    if images and hasattr(model, "for_images"):
        model = model.for_images()  # several text towers: only those with an image encoder score images
    config = (config or PEZConfig()).validate(max_prompt_tokens(model))
    _check_device(model, config.device)
    vocab = VocabularyFilter.make(config.blocklist, config.blocklist_substring, config.allowlist, config.ascii_only)
    allowed = allowed_token_ids(model, vocab)
    return _Run(model, config, layout or layout_for(model, config), vocab, allowed, projector_for(model, allowed))


def _with_fluency(model: ClipBackbone, objective: ClipObjective, projector, weight: float, lm) -> FluentObjective:
    """The objective plus ``weight`` · the fluency LM's cross-entropy over the prompt (``fluency.py``)."""
    if lm is None:
        raise ValueError(f"fluency={weight} needs a language model on the prompt model's tokenizer; give "
                         "one as fluency_lm, e.g. the bundled toy_lm_small.")
    if objective.layout.learned != objective.layout.length:
        raise ValueError("fluency scores a free prompt and the template's fixed words are not learned; remove the "
                         "template or set fluency to 0.")
    check_same_tokenizer(lm.encode, model.tokenize, lm.name)
    return FluentObjective(objective, PromptFluency(lm.model, projector, lm.name), weight)


def _report_plain_similarity(result: PEZResult, objective: FluentObjective) -> None:
    """With fluency the loop ranked ``similarity − λ·F``; a result reports the plain similarity and the perplexity."""
    for cand in [*result.candidates, *result.best_per_restart]:
        cand.similarity = objective.plain_score(cand.text)
    result.similarity = objective.plain_score(result.text)
    result.perplexity = math.exp(objective.cross_entropy(result.text))


def _guide(lm):
    """The LM of ``method="guided"``, or one clear error without one."""
    if lm is None:
        raise ValueError("method guided needs a language model to write the prompt; give one as guide_lm, e.g. the "
                         "bundled toy_lm_small or a local transformers folder (GPT-2, Llama, Qwen, Mistral ...).")
    return lm


def _bank(model: ClipBackbone, config: PEZConfig) -> tuple[str, ...]:
    """``greedy_bank``'s phrases: the config's, else the model's declared words (the toy model's 20)."""
    if config.bank is not None:
        return config.bank
    words = model.declared_words
    if not words:
        raise ValueError(f"method greedy_bank needs a bank of phrases and model {model.name} declares none; give "
                         "a bank of phrases, e.g. CLIP Interrogator's keyword lists.")
    return tuple(words)


def _check_device(model: ClipBackbone, wanted: str) -> None:
    """Refuse a ``device`` the model is not on, instead of moving the caller's model as a side effect."""
    if (wanted or "auto") == "auto":
        return
    want, have = resolve_device(wanted), model.device
    if want.type != have.type or (want.index is not None and want.index != (have.index or 0)):
        raise ValueError(f"device={wanted!r} was asked for but model {model.name} is on {have}; load it there "
                         f"(load_clip(..., device={wanted!r})) or use device='auto'.")


def _offerable(objective: ClipObjective, vocab: VocabularyFilter, allowed: torch.Tensor, config: PEZConfig,
               texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """The extra texts a result may return — those a learned prompt could have been — and notes on the rest."""
    if not texts:
        return [], []
    if config.template is not None:
        return [], ["the plain join was not offered: with a template the prompt keeps the template's words."]
    allowed_set = set(allowed.tolist())
    offered, notes = [], []
    for text in texts:
        if vocab.allows_text(text) and all(i in allowed_set for i in objective.user_tokens(text)):
            offered.append(text)
        else:
            notes.append("the plain join was not offered: it uses words or tokens that the vocabulary controls "
                         "(blocklist, allowlist, ascii_only, declared vocabulary) exclude.")
    return offered, notes


def _window_note(model: ClipBackbone, text: str) -> list[str]:
    n, window = len(model.tokenize(text)), max_prompt_tokens(model)
    if n <= window:
        return []
    return [f"the prompt re-tokenizes to {n} tokens; text encoders keep the first {window}, and its similarity "
            "is that of those."]


def layout_for(model: ClipBackbone, config: PEZConfig) -> PromptLayout:
    """A plain prompt of ``prompt_len`` tokens, or the config's template with ``slot_len`` tokens per slot."""
    if config.template is None:
        return PromptLayout.plain(config.prompt_len)
    return PromptLayout.from_template(model, config.template, config.slot_len or config.prompt_len)


def invert(model: ClipBackbone, images: Sequence[ImageLike | str | Path] | ImageLike | str | Path,
           config: PEZConfig | None = None, callback: Callback | None = None, fluency_lm=None,
           guide_lm=None) -> PEZResult:
    """One prompt for one or more images (several images: their shared content or style).

    ``images`` is a list of paths / PIL images / tensors, or a single one of them; a 4-D tensor or
    array is a batch ([B, H, W, C] as ComfyUI holds images, or [B, C, H, W]).
    """
    items = _image_list(images)
    if not items:
        raise ValueError("no images were given; give at least one image to invert.")
    return optimize(model, [Target(image=im) for im in items], config, callback, fluency_lm=fluency_lm,
                    guide_lm=guide_lm)


def invert_each(model: ClipBackbone, images: Sequence[ImageLike | str | Path] | ImageLike,
                config: PEZConfig | None = None, callback: Callback | None = None,
                seeds: Sequence[int] | None = None) -> list[PEZResult]:
    """One prompt *per image*, all optimised together: images × restarts in one encoder pass per step.

    Each image gets what ``invert(model, [image], config)`` gives it alone (same seed, same start; tested),
    at a fraction of the time, since the encoder's weights are read once per step for the whole batch
    (``benchmarks/bench_batch.py``). Plain prompts with the paper's update rule: no template, fluency or
    ``greedy_bank`` here (run those image by image). ``seeds``: one per image (default ``config.seed`` for
    all); image ``i`` then gets what ``invert`` with ``seed=seeds[i]`` gives it.
    """
    items = _image_list(images)
    if not items:
        raise ValueError("no images were given; give at least one image to invert.")
    checked = (config or PEZConfig()).validate(max_prompt_tokens(model))
    if checked.method in ("greedy_bank", "guided") or checked.fluency or checked.template is not None:
        raise ValueError("per-image batches take a plain prompt and a gradient method without fluency; invert those "
                         "images one by one for greedy_bank, guided, fluency or a template.")
    with torch.inference_mode(False):
        run = _set_up(model, checked, True)
        model, config = run.model, run.config
        views = []
        for image in items:
            feats, weights = target_features(model, [Target(image=image)])
            views.append(ClipObjective(model, run.layout, feats, weights, compile=config.compile))
        results = optimize_prompts(GroupedClipObjective(views, config.restarts), run.projector, config, callback,
                                   model_name=model.name, text_filter=run.vocab.allows_text, seeds=seeds)
        for result, view in zip(results, views):
            result.target_cosines = [float(c) for c in view.cosines(result.text)]
            result.notes = [*getattr(model, "notes", []), *_window_note(model, result.text), *result.notes]
    return results


def _image_list(images) -> list:
    if images is None:
        return []
    if isinstance(images, (str, Path, Image.Image)):
        return [images]
    if isinstance(images, (torch.Tensor, np.ndarray)):
        return list(images) if images.ndim == 4 else [images]
    return list(images)


def distill(model: ClipBackbone, text: str, config: PEZConfig | None = None, callback: Callback | None = None,
            fluency_lm=None, guide_lm=None) -> PEZResult:
    """A short prompt (``prompt_len`` tokens) with the meaning of a long ``text``.

    A text longer than the encoder's window is encoded window by window and averaged
    (see :func:`pez_nodes.core.optim.text_encoder.encode_text`), never silently cut. Without a ``config``:
    ``task_config("distill")`` (8 tokens; ``defaults.py``).
    """
    return optimize(model, [Target(text=text)], config or task_config("distill"), callback, fluency_lm=fluency_lm,
                    guide_lm=guide_lm)


def concat(model: ClipBackbone, texts: Sequence[str], config: PEZConfig | None = None,
           callback: Callback | None = None, fluency_lm=None, guide_lm=None) -> PEZResult:
    """One prompt that composes several prompts (the paper's prompt concatenation, Sec. 4.3).

    The targets are the texts' features, equally weighted. The literal join ``"a, b"`` is scored too
    and returned if it beats the learned prompt — only when it obeys every control a learned prompt
    obeys (no template; blocklist, allowlist, ascii_only and the declared vocabulary); when the join
    does not fit the encoder's window it is cut at the window and the result's ``notes`` say so.
    """
    if isinstance(texts, str):
        raise ValueError("concat takes a list of two or more texts, got one string; write concat(model, [text_a, text_b]).")
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
    result = optimize(model, [Target(text=t) for t in texts], config, callback, extra_texts=(joined,),
                      fluency_lm=fluency_lm, guide_lm=guide_lm)
    result.notes.extend(notes)
    return result
