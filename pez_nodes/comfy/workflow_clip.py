"""PEZ CLIP from Workflow: the workflow's own CLIP (+ CLIP Vision) as one PEZ model.

Each CLIP text encoder inside the ComfyUI ``CLIP`` becomes a tower of a :class:`~pez_nodes.core.JointClip`
(SD 1.5: ``clip_l``; SD 2.x: ``clip_h``; SDXL and SD3: ``clip_l`` + ``clip_g`` — one prompt for both; Flux:
``clip_l``). Text encoders that are not CLIPs (Flux's and SD3's ``t5xxl``) are left out, with a note. Each
connected CLIP Vision model is paired with the text encoder of its width (768: CLIP-L, 1024: ViT-H,
1280: bigG) and scores that tower's images. Every way the pair can be wrong ends in one error that
names what to load.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core import JointClip, Tower
from . import native_text, native_vision
from ..model_choices import MATCHING_VISION

PROJECTION_FOLDERS = ("clip_vision", "text_encoders")
NO_PROJECTION = "none"
_PROJECTION_KEYS = (  # (key, stored as open_clip's [width, out] rather than a Linear's [out, width])
    ("text_projection.weight", False), ("text_projection", True), ("clip_l.transformer.text_projection.weight", False),
    ("clip_l.text_projection", True), ("cond_stage_model.model.text_projection", True),
)
PROJECTION_SOURCES = ("OpenAI's clip-vit-large-patch14 model.safetensors (put it in models/clip_vision: CLIPVisionLoader "
                      "also loads it as the matching ViT-L/14 vision model), or an open_clip ViT-L-14 'openai' file")


def projection_choices() -> list[str]:
    """``none`` + every .safetensors file in the folders a CLIP text projection may sit in (local listing only)."""
    import folder_paths

    found = []
    for folder in PROJECTION_FOLDERS:
        try:
            names = folder_paths.get_filename_list(folder)
        except Exception:  # a folder this ComfyUI does not know
            names = []
        found += [f"{folder}/{n}" for n in names if n.endswith(".safetensors")]
    return [NO_PROJECTION, *found]


def load_projection(choice: str) -> torch.Tensor | None:
    """The text projection (a Linear weight, [out, width]) in the chosen file, or None for ``none``."""
    if not choice or choice == NO_PROJECTION:
        return None
    import folder_paths
    from safetensors import SafetensorError, safe_open

    folder, _, name = choice.partition("/")
    path = folder_paths.get_full_path(folder, name) if folder in PROJECTION_FOLDERS else None
    if path is None:
        raise ValueError(f"text_projection file {choice!r} is not in models/{'/'.join(PROJECTION_FOLDERS)}; "
                         "refresh the node or choose another file.")
    try:
        with safe_open(path, "pt") as f:
            keys = set(f.keys())
            for key, transposed in _PROJECTION_KEYS:
                if key in keys:
                    tensor = f.get_tensor(key).float()
                    return tensor.T.contiguous() if transposed else tensor
    except (SafetensorError, OSError) as e:
        raise ValueError(f"text_projection file {Path(path).name!r} could not be read ({e}); re-download it.") from e
    raise ValueError(f"text_projection file {Path(path).name!r} holds no CLIP text projection (no text_projection "
                     f"key); choose {PROJECTION_SOURCES}.")


def workflow_clip(clip, clip_vision=None, clip_vision_2=None, crop: str = "center",
                  text_projection: str = NO_PROJECTION, weight_clip_l: float = 1.0, weight_clip_g: float = 1.0,
                  device: torch.device | str = "cpu") -> JointClip:
    """The PEZ model over a ComfyUI CLIP and up to two CLIP Vision models (see the module docstring)."""
    parts = native_text.text_parts(clip)
    visions = [(n, native_vision.vision_part(cv, n)) for n, cv in (("clip_vision", clip_vision),
                                                                  ("clip_vision_2", clip_vision_2)) if cv is not None]
    projection = load_projection(text_projection)
    paired, notes = _pair(parts, visions, projection)
    weights = {"clip_l": weight_clip_l, "clip_g": weight_clip_g}
    towers = []
    for part in parts:
        fills = projection is not None and not part.has_projection and projection.shape[1] == part.width
        backbone = native_text.convert(clip, part, torch.device(device), projection if fills else None)
        if backbone.tower.text_projection is None:
            notes.append(f"{part.name} has no text_projection: texts are compared in its pooled space, images "
                         "cannot be.")
        images = native_vision.image_encoder(paired[part.name], crop) if part.name in paired else None
        towers.append(Tower(part.name, backbone, images, float(weights.get(part.name, 1.0))))
    names = " + ".join(p.name for p in parts)
    others = native_text.other_encoders(clip)
    if others:
        notes.append(f"{' and '.join(others)} is not a CLIP text encoder and is left out: PEZ learns the prompt for "
                     f"{names}. Give the {' / '.join(others)} box a sentence of its own (Flux / SD3: method guided, "
                     "as in the pez_prompt_pair workflows).")
    hint = "Connect the CLIP Vision model that matches it to PEZ CLIP from Workflow: " + "; ".join(
        f"{p.name} → {MATCHING_VISION.get(p.width, 'the vision half of the same CLIP')}" for p in parts) + "."
    return JointClip(towers, f"workflow CLIP ({names})", notes, image_hint=hint)


def _pair(parts, visions, projection) -> tuple[dict, list[str]]:
    """{tower name: its CLIP Vision} and notes; one error for a vision model no tower can use."""
    by_width = {p.width: p for p in parts}
    paired, notes = {}, []
    for input_name, vision in visions:
        part = by_width.get(vision.dim)
        if part is None:
            wanted = "; ".join(f"{p.kind} → {MATCHING_VISION.get(p.width, 'its own vision model')}" for p in parts)
            raise ValueError(f"{input_name} is {vision.kind} ({vision.dim}-wide image features) but clip's text "
                             f"encoder{'s are' if len(parts) > 1 else ' is'} {', '.join(p.kind for p in parts)}: the "
                             f"pair does not match. Load the CLIP Vision that matches: {wanted}.")
        if part.name in paired:
            raise ValueError(f"clip_vision and clip_vision_2 are both {vision.kind} for {part.name}; connect one CLIP "
                             "Vision per text encoder (SDXL: bigG and ViT-L/14).")
        paired[part.name] = vision
        if vision.image_size != 224:
            notes.append(f"{input_name} is a {vision.image_size}-px variant of {vision.kind}: close to, not the "
                         f"model {part.name} was trained with (its 224-px vision model is).")
        fills = projection is not None and projection.shape[1] == part.width
        if part.projection is None and part.has_projection:
            notes.append(f"how {part.name} was loaded was not seen; its text_projection is assumed loaded (SD 2.x and "
                         "SDXL checkpoints hold it).")
        elif not part.has_projection and not fills:
            raise ValueError(
                f"clip's {part.kind} text encoder ({part.name}) has no text_projection — SD 1.5 and SDXL checkpoints "
                f"leave CLIP-L's out — so its features cannot be compared with {input_name}'s images. Choose a file "
                f"holding it in text_projection: {PROJECTION_SOURCES}"
                + (f" (the file given projects {projection.shape[1]}-wide features, not {part.width})."
                   if projection is not None else "."))
    return paired, notes
