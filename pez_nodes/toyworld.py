"""The toy world: synthetic pictures of one shape whose attributes are plain English words.

Every picture shows one shape (``circle``, ``square`` ...) of one colour (``red``, ``blue`` ...),
of one size (``small`` / ``large``) on one background (``grass``, ``sand`` ...). Each attribute is a
single token of the CLIP tokenizer, so a prompt recovered by PEZ can be scored by counting the
attribute words it contains. ``tools/train_toy_clip.py`` trains the bundled tiny CLIP on this
world; ``pez demo`` and the tests draw from it.

Only numpy and Pillow are used, so the world can be drawn anywhere the package imports.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "star")
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "orange": (250, 140, 20),
    "white": (250, 250, 250),
}
SIZES = ("small", "large")
BACKGROUNDS = ("grass", "sand", "night", "brick")

ATTRIBUTE_KINDS = ("size", "color", "shape", "background")
VOCABULARY = {"size": SIZES, "color": tuple(COLORS), "shape": SHAPES, "background": BACKGROUNDS}


@dataclass(frozen=True)
class Scene:
    """One picture's attributes; ``words`` are the tokens a good prompt should contain."""

    shape: str
    color: str
    size: str
    background: str

    @property
    def words(self) -> tuple[str, ...]:
        return (self.size, self.color, self.shape, self.background)

    @property
    def caption(self) -> str:
        return f"a {self.size} {self.color} {self.shape} on {self.background}"

    def attribute(self, kind: str) -> str:
        return {"size": self.size, "color": self.color, "shape": self.shape, "background": self.background}[kind]


def all_scenes() -> list[Scene]:
    """Every combination of attributes (the toy world's 392 classes)."""
    return [Scene(shape, color, size, bg) for shape in SHAPES for color in COLORS for size in SIZES for bg in BACKGROUNDS]


def random_scene(rng: random.Random) -> Scene:
    return Scene(rng.choice(SHAPES), rng.choice(tuple(COLORS)), rng.choice(SIZES), rng.choice(BACKGROUNDS))


def _background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A textured background of ``size``×``size`` RGB pixels."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    noise = rng.normal(0.0, 1.0, (size, size, 1)).astype(np.float32)
    if kind == "grass":
        base = np.array([60, 140, 50], np.float32)
        img = base + 25 * noise + 20 * np.sin(xx * 40 + rng.uniform(0, 6))[..., None] * np.array([0.3, 1, 0.3])
    elif kind == "sand":
        base = np.array([225, 200, 150], np.float32)
        img = base + 12 * noise + 15 * np.sin(yy * 12 + xx * 4 + rng.uniform(0, 6))[..., None]
    elif kind == "night":
        base = np.array([15, 20, 55], np.float32)
        img = base + 6 * noise + (yy[..., None] * np.array([10, 10, 30]))
        stars = rng.random((size, size)) > 0.985
        img[stars] = 235
    elif kind == "brick":
        base = np.array([150, 65, 45], np.float32)
        rows = (yy * 8).astype(int)
        mortar = ((yy * 8) % 1 < 0.12) | (((xx * 4 + 0.5 * (rows % 2)) % 1) < 0.06)
        img = base + 10 * noise
        img[mortar] = np.array([200, 195, 185], np.float32)
    else:
        raise ValueError(f"unknown background {kind!r}; choose one of {BACKGROUNDS}")
    return np.clip(img, 0, 255).astype(np.uint8)


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    def pts(radii: list[float], count: int) -> list[tuple[float, float]]:
        out = []
        for i in range(count):
            a = angle + 2 * math.pi * i / count
            rad = radii[i % len(radii)]
            out.append((cx + rad * math.sin(a), cy - rad * math.cos(a)))
        return out

    if kind == "triangle":
        return pts([r * 1.2], 3)
    if kind == "diamond":
        return [(cx, cy - r * 1.25), (cx + r * 0.8, cy), (cx, cy + r * 1.25), (cx - r * 0.8, cy)]
    if kind == "star":
        return pts([r * 1.25, r * 0.5], 10)
    raise ValueError(kind)


def _rotated_square(cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    out = []
    for i in range(4):
        a = angle + math.pi / 4 + i * math.pi / 2
        out.append((cx + r * 1.3 * math.cos(a), cy + r * 1.3 * math.sin(a)))
    return out


def render(scene: Scene, size: int = 128, seed: int | None = None) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``size``×``size`` pixels (4× supersampled).

    Position, small rotations and texture vary with ``seed``; the attributes do not.
    """
    rng = np.random.default_rng(seed)
    big = size * 4
    img = Image.fromarray(_background(scene.background, big, rng))
    draw = ImageDraw.Draw(img)
    radius = big * (0.17 if scene.size == "small" else 0.32) * rng.uniform(0.9, 1.1)
    margin = radius * 1.35
    cx = rng.uniform(margin, big - margin)
    cy = rng.uniform(margin, big - margin)
    color = COLORS[scene.color]
    angle = rng.uniform(-0.25, 0.25)
    outline = (20, 20, 20) if scene.color == "white" else None
    if scene.shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=color)
    elif scene.shape == "ring":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=color, width=max(1, int(radius * 0.35)))
    elif scene.shape == "cross":
        w = radius * 0.38
        draw.rectangle([cx - radius, cy - w, cx + radius, cy + w], fill=color)
        draw.rectangle([cx - w, cy - radius, cx + w, cy + radius], fill=color)
    elif scene.shape == "square":
        draw.polygon(_rotated_square(cx, cy, radius * 0.75, angle), fill=color, outline=outline)
    else:
        draw.polygon(_polygon(scene.shape, cx, cy, radius * 0.85, angle), fill=color, outline=outline)
    return img.resize((size, size), Image.Resampling.LANCZOS)
