"""What each PEZ node does, as plain functions over the core — the V3 node classes only call these.

They run without ComfyUI (the CI tests call them directly on the bundled model); inside ComfyUI,
``host.NodeProgress`` adds the progress bar, live best prompt and interrupts.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .. import core
from ..core import split_batch
from . import managed, model_choices
from .host import NodeProgress, comfy_device
from .prompt_syntax import from_text_encode


NODE_OPTIONS = ("activation", "vocabulary")  # load_clip's keywords the loader node passes on (never allow_pickle)


def load_model(model: str, device: str = "auto", custom_model: str = "", pretrained: str = "",
               **options) -> core.ClipBackbone:
    """The loader: a listed choice, or any open_clip source typed into ``custom_model``.

    ``options`` (``activation``, ``vocabulary``) go to ``core.load_clip``; left out, its defaults apply.
    ComfyUI's API is unauthenticated, so whatever a workflow names loads with ``load_clip``'s default
    ``allow_pickle=False``: no pickle is unpickled on the server (``core/clip/loading.py``'s docstring says how).
    """
    unknown = sorted(set(options) - set(NODE_OPTIONS), key=lambda k: k != "allow_pickle")
    if unknown:
        fix = ("a workflow cannot make the server unpickle weights: convert them to .safetensors"
               if unknown[0] == "allow_pickle" else "remove it from the workflow")
        raise ValueError(f"PEZ Load CLIP has no input {unknown[0]!r} (its options: {', '.join(NODE_OPTIONS)}); {fix}.")
    if custom_model and custom_model.strip():
        source, tag = custom_model.strip(), (pretrained or "").strip() or None
    else:
        source, tag = model_choices.resolve(model)
    target = core.resolve_device(device, host=comfy_device())
    try:
        clip = core.load_clip(source, tag, device=target, **options)
    except core.ModelLoadError as e:
        if getattr(e, "download", None):  # offline and not cached: which file goes in which models folder
            raise core.ModelLoadError(model_choices.offline_fix(e.download), download=e.download) from e
        raise
    return managed.manage(clip)


def from_workflow(clip, clip_vision=None, clip_vision_2=None, crop: str = "center", text_projection: str = "none",
                  weight_clip_l: float = 1.0, weight_clip_g: float = 1.0, device: str = "auto") -> core.JointClip:
    """PEZ CLIP from Workflow: the workflow's CLIP (and CLIP Vision) as a PEZ model (``workflow_clip``)."""
    from .workflow_clip import workflow_clip

    target = core.resolve_device(device, host=comfy_device() or torch.device("cpu"))
    return managed.manage(workflow_clip(clip, clip_vision, clip_vision_2, crop, text_projection, weight_clip_l,
                                        weight_clip_g, target))


DEFAULTS = core.PEZConfig()  # the one source of defaults: every widget and every omitted input uses it
DISTILL_PROMPT_LEN = core.TASK_PROMPT_LEN["distill"]  # widget and omitted alike: short is why one distills
NEGATIVE_WEIGHT = 0.5  # the invert node's default share of the negatives (the CLI's --negative-weight too)
INVERT_MODES = ("shared", "per image")  # PEZ Invert: one prompt for the batch, or one per image


def make_config(prompt_len: int = DEFAULTS.prompt_len, steps: int = DEFAULTS.steps, seed: int = DEFAULTS.seed,
                lr: float = DEFAULTS.lr, restarts: int = DEFAULTS.restarts, patience: int = DEFAULTS.patience,
                blocklist: str = "", ascii_only: bool = DEFAULTS.ascii_only, template: str = "", slot_len: int = 0,
                top_k: int = DEFAULTS.top_k, method: str = DEFAULTS.method, bank: str = "",
                fluency: float = DEFAULTS.fluency, beams: int = DEFAULTS.beams, candidates: int = DEFAULTS.candidates,
                lm_weight: float = DEFAULTS.lm_weight, start_text: str = "", instruction: str = "",
                device=None) -> core.PEZConfig:
    """A ``PEZConfig`` from node widget values (empty strings and 0 mean "not set")."""
    model_device = str(device) if device is not None else "auto"
    return core.PEZConfig(
        prompt_len=prompt_len, steps=steps, seed=int(seed), lr=lr, restarts=restarts, patience=patience,
        blocklist=tuple(w for w in (blocklist or "").split(",") if w.strip()), ascii_only=bool(ascii_only),
        template=template.strip() or None if template else None, slot_len=slot_len or None, top_k=top_k,
        method=method, bank=bank if bank and bank.strip() else None, fluency=fluency, beams=beams,
        candidates=candidates, lm_weight=lm_weight, start_text=_text_or_none(start_text),
        instruction=_text_or_none(instruction), device=model_device,
    )


def _text_or_none(text: str) -> str | None:
    return text.strip() or None if isinstance(text, str) else text


# PEZ Options: the settings the optimising nodes do not show (``make_config``'s keywords, and PEZ Invert's negatives)
OPTIONS = ("lr", "restarts", "patience", "blocklist", "ascii_only", "template", "bank", "negative_text",
           "negative_weight", "fluency", "beams", "candidates", "lm_weight", "start_text", "instruction")
NEGATIVES = ("negative_text", "negative_weight")  # only PEZ Invert (mode shared) uses them


def options(**values) -> dict:
    """PEZ Options' output: the values it was given (one left out takes ``make_config``'s default)."""
    unknown = sorted(set(values) - set(OPTIONS))
    if unknown:
        raise ValueError(f"PEZ Options has no input {unknown[0]!r} (its inputs: {', '.join(OPTIONS)}).")
    return dict(values)


def settings(node: str, options_in: dict | None, widgets: dict, sent: dict | None = None) -> dict:
    """The node's settings: PEZ Options' values merged with the node's own widgets (the widgets win).

    ``sent`` (the node's inputs as the API prompt gave them) must not name a setting that moved to PEZ Options:
    ComfyUI drops unknown inputs without a word, so an old API workflow is refused here, by name.
    """
    moved = [k for k in OPTIONS if k in (sent or {})]
    if moved:
        raise ValueError(f"{node} no longer takes {', '.join(moved)}: these settings moved to a PEZ Options node "
                         "(PEZOptions); add one with them and link its output to this node's 'options' input.")
    if options_in is not None and not isinstance(options_in, dict):
        raise ValueError(f"{node}: 'options' takes PEZ Options' output, got {type(options_in).__name__}.")
    return {**(options_in or {}), **widgets}


def without_negatives(node: str, values: dict) -> tuple[dict, list[str]]:
    """Distill and Concat take no negatives (as before PEZ Options): its negative_text is left out, with a note."""
    unused = (values.get("negative_text") or "").strip()
    note = [f"{node} takes no negatives: PEZ Options' negative_text is not used here (PEZ Invert uses it)."]
    return {k: v for k, v in values.items() if k not in NEGATIVES}, note if unused else []


def load_lm(model: str, device: str = "auto"):
    """PEZ Load LM: a bundled toy LM or a folder of ``models/LLM`` (``pez_nodes.lm.load``; needs transformers)."""
    from ..lm.load import load_lm as load

    return load(model_choices.resolve_lm(model), device=core.resolve_device(device, host=comfy_device()))


def _language_models(clip, config: core.PEZConfig, fluency_lm, guide_lm) -> dict:
    """The LMs the config's method uses, as the core takes them: each the connected one, else the prompt model's
    own bundled one (the toy CLIP's toy_lm_small) — ``fluency_lm`` with fluency on, ``guide_lm`` for guided."""
    lms = {}
    if config.fluency:
        lms["fluency_lm"] = fluency_lm if fluency_lm is not None else _bundled_lm(clip)
    if config.method == "guided":
        lms["guide_lm"] = guide_lm if guide_lm is not None else _bundled_lm(clip)
    return lms


def _bundled_lm(clip):
    from ..lm.load import default_fluency_lm

    name = default_fluency_lm(getattr(clip, "name", ""))
    return load_lm(name, str(clip.device)) if name else None


def _run(clip: core.ClipBackbone, targets: Sequence[core.Target], config: core.PEZConfig, node_id,
         fluency_lm=None, guide_lm=None) -> core.PEZResult:
    managed.load(clip)
    return core.optimize(clip, targets, config, NodeProgress(node_id, config.steps),
                         **_language_models(clip, config, fluency_lm, guide_lm))


def invert(clip: core.ClipBackbone, images: torch.Tensor, config: core.PEZConfig, node_id=None,
           negative_images: torch.Tensor | None = None, negative_text: str = "",
           negative_weight: float = NEGATIVE_WEIGHT, fluency_lm=None, guide_lm=None) -> core.PEZResult:
    """One prompt for a ComfyUI IMAGE batch ([B, H, W, C], 0..1); optional negatives push it away.

    ``negative_weight`` (0..0.95) is the negatives' total weight as a share of the positives' total,
    so the weighted mean stays defined however many negatives are connected.
    """
    negatives = [] if negative_images is None else list(split_batch(negative_images))
    negatives += [from_text_encode(negative_text)] if negative_text and negative_text.strip() else []
    targets = core.with_negatives([core.Target(image=im) for im in split_batch(images)], negatives, negative_weight)
    return _run(clip, targets, config, node_id, fluency_lm, guide_lm)


def invert_each(clip: core.ClipBackbone, images: torch.Tensor, config: core.PEZConfig, node_id=None) -> list:
    """PEZ Invert, mode 'per image': one prompt per image of the batch, optimised together (``core.invert_each``)."""
    managed.load(clip)
    return core.invert_each(clip, list(split_batch(images)), config, NodeProgress(node_id, config.steps))


def distill(clip: core.ClipBackbone, text: str, config: core.PEZConfig, node_id=None,
            fluency_lm=None, guide_lm=None) -> core.PEZResult:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text is empty; connect or type the prompt to distill.")
    return _run(clip, [core.Target(text=from_text_encode(text))], config, node_id, fluency_lm, guide_lm)


def concat(clip: core.ClipBackbone, texts: Sequence[str], config: core.PEZConfig, node_id=None,
           fluency_lm=None, guide_lm=None) -> core.PEZResult:
    given = [from_text_encode(t) for t in texts if t is not None and t.strip()]
    if len(given) < 2:
        raise ValueError(f"Prompt Concat needs two or more non-empty prompts, got {len(given)}.")
    managed.load(clip)
    return core.concat(clip, given, config, NodeProgress(node_id, config.steps),
                       **_language_models(clip, config, fluency_lm, guide_lm))


def image_similarity(images_a: torch.Tensor, images_b: torch.Tensor, pez_clip=None, clip_vision=None,
                     crop: str = "center") -> tuple[float, list[float]]:
    """The paper's metric in a graph: cosine similarity of image i of ``images_a`` with image i of ``images_b``
    (a single image is compared with every image of the other batch) under a PEZ CLIP or a CLIP Vision model;
    returns (mean, per-pair values)."""
    from ..evaluate.metric import paired_similarity

    sims = paired_similarity(judge(pez_clip, clip_vision, crop), split_batch(images_a), split_batch(images_b)).tolist()
    return sum(sims) / len(sims), sims


def judge(pez_clip=None, clip_vision=None, crop: str = "center"):
    """The judge of a node that scores images (PEZ Image Similarity, PEZ Pick by Generation): the PEZ CLIP, or the
    CLIP Vision model as CLIPVisionEncode encodes (``crop``); exactly one of them must be connected."""
    if (pez_clip is None) == (clip_vision is None):
        raise ValueError("connect exactly one judge: a PEZ CLIP (pez_clip) or a CLIP Vision model (clip_vision).")
    if clip_vision is not None:
        from .native_vision import VisionJudge

        return VisionJudge(clip_vision, crop)
    managed.load(pez_clip)
    return pez_clip
