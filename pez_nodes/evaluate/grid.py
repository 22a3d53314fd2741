"""The picture ``pez eval`` and ``pez demo`` save: per row, the target | its prompt | the generations."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

CELL = 128
TEXT_W = 260


def save_grid(rows: Sequence, path: Path | str, cell: int = CELL) -> Path:
    """One row per ``Row`` (``target`` image or none, ``prompt``, ``images``, ``similarities``); returns the path."""
    if not rows:
        raise ValueError("nothing to draw: no rows.")
    columns = max(len(r.images) for r in rows)
    width = cell + TEXT_W + columns * cell
    height = len(rows) * (cell + 18)
    sheet = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        top = i * (cell + 18)
        if row.target is not None:
            sheet.paste(_rgb(row.target).resize((cell, cell), Image.Resampling.LANCZOS), (0, top))
        label = "\n".join(textwrap.wrap(f"{row.name}: {row.prompt}", 40)[:7])
        draw.multiline_text((cell + 8, top + 4), label, fill=(230, 230, 230), spacing=2)
        for j, (image, sim) in enumerate(zip(row.images, row.similarities)):
            left = cell + TEXT_W + j * cell
            sheet.paste(_rgb(image).resize((cell, cell), Image.Resampling.NEAREST), (left, top))
            draw.text((left + 4, top + cell + 2), f"{sim:.3f}", fill=(180, 200, 255))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _rgb(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    from ..core import to_tensor

    return Image.fromarray((to_tensor(image).permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
