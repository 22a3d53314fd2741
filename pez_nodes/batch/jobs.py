"""What a batch job is: the images (a folder or a list file), each one's seed, and the settings that must match.

A per-image seed comes from the file's name (``config.seed`` + CRC-32 of the name), so an image gets the same
prompt whatever the order, the batch size or the number of workers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Job:
    path: str  # as given (absolute)
    seed: int


def list_images(source: Path | str) -> list[Path]:
    """The images of a folder (sorted, not recursive) or of a text file that lists one path a line."""
    source = Path(source).expanduser()
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
        images = [p.resolve() for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            what = f"{len(files)} files but no images" if files else "no files"
            raise ValueError(f"folder {str(source)!r} has {what}; give a folder of {', '.join(IMAGE_SUFFIXES)} files "
                             "or a .txt file listing image paths.")
        return images
    if source.is_file() and source.suffix.lower() == ".txt":
        lines = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()]
        paths = [(source.parent / line).resolve() for line in lines if line and not line.startswith("#")]
        if not paths:
            raise ValueError(f"list {str(source)!r} names no images; write one image path a line.")
        return paths
    raise ValueError(f"{str(source)!r} is neither a folder nor a .txt list of images; give one of them.")


def seed_for(path: Path | str, base_seed: int) -> int:
    """``base_seed`` + CRC-32 of the file name (not its folder): independent of order and of worker count."""
    return (int(base_seed) + zlib.crc32(Path(path).name.encode("utf-8"))) % (2 ** 31)


def jobs_for(paths: list[Path], base_seed: int) -> list[Job]:
    return [Job(str(p), seed_for(p, base_seed)) for p in paths]


def sidecar_for(path: Path | str) -> Path:
    """The caption file kohya-style trainers read: ``IMAGE.txt`` beside ``IMAGE.png``."""
    return Path(path).with_suffix(".txt")
