"""How well a CLIP recognises the toy world's attributes in pictures: zero-shot, per attribute.

Each picture is classified among the world's 392 scene captions (``"a large red circle on grass"``) by
cosine similarity; an attribute counts as right when the chosen caption names the picture's own value.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .. import toyworld as tw
from ..core import encode_token_ids, image_features


def classify_attributes(clip, images: Sequence, scenes: Sequence[tw.Scene]) -> dict:
    """Share of ``images`` whose size / color / shape / background (and all four) ``clip`` gets right."""
    if len(images) != len(scenes) or not images:
        raise ValueError(f"need one scene per image, got {len(images)} images and {len(scenes)} scenes.")
    classes = tw.all_scenes()
    with torch.no_grad():
        text = F.normalize(encode_token_ids(clip, [clip.tokenize(c.caption) for c in classes]), dim=-1)
        pred = (image_features(clip, list(images)) @ text.T).argmax(-1).tolist()
    report = {}
    for kind in tw.ATTRIBUTE_KINDS:
        report[kind] = sum(classes[p].attribute(kind) == s.attribute(kind) for p, s in zip(pred, scenes)) / len(scenes)
    report["all"] = sum(classes[p] == s for p, s in zip(pred, scenes)) / len(scenes)
    report["images"] = len(scenes)
    return report
