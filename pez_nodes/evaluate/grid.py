"""The picture ``pez eval`` and ``pez demo`` save: per row, the target | its prompt | the generations."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

CELL = 224
TEXT_W = 360
HEADER = 30
FONT_SIZE = 18


def _font(size: int):
    """A readable font: DejaVu Sans where installed, else Pillow's own scalable default."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1: a fixed small bitmap font
            return ImageFont.load_default()


def save_grid(rows: Sequence, path: Path | str, cell: int = CELL) -> Path:
    """One row per ``Row`` (``target`` image or none, ``prompt``, ``images``, ``similarities``) under a header
    naming the columns; returns the path."""
    if not rows:
        raise ValueError("nothing to draw: no rows.")
    columns = max(len(r.images) for r in rows)
    width = cell + TEXT_W + columns * cell
    height = HEADER + len(rows) * (cell + FONT_SIZE + 10)
    sheet = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    font, small = _font(FONT_SIZE), _font(FONT_SIZE - 2)
    for left, title in ((4, "target"), (cell + 10, "prompt"), (cell + TEXT_W + 4, "generated")):
        draw.text((left, 6), title, fill=(160, 160, 170), font=small)
    for i, row in enumerate(rows):
        top = HEADER + i * (cell + FONT_SIZE + 10)
        if row.target is not None:
            sheet.paste(_rgb(row.target).resize((cell, cell), Image.Resampling.LANCZOS), (0, top))
        lines = textwrap.wrap(row.prompt, 30)[: max(1, cell // (FONT_SIZE + 6) - 1)]
        draw.text((cell + 10, top + 2), row.name, fill=(160, 160, 170), font=small)
        draw.multiline_text((cell + 10, top + FONT_SIZE + 10), "\n".join(lines), fill=(235, 235, 235), font=font,
                            spacing=6)
        for j, (image, sim) in enumerate(zip(row.images, row.similarities)):
            left = cell + TEXT_W + j * cell
            sheet.paste(_rgb(image).resize((cell, cell), Image.Resampling.NEAREST), (left, top))
            draw.text((left + 4, top + cell + 2), f"{sim:.3f} similarity", fill=(180, 200, 255), font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _rgb(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    from ..core import to_tensor

    return Image.fromarray((to_tensor(image).permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
