"""What a batch job is: the images (a folder or a list file), each one's seed, and the settings that must match.

A per-image seed comes from the file's name (``config.seed`` + CRC-32 of the name), so an image gets the same
prompt whatever the order, the batch size or the number of workers. An image is the path the user named, made
absolute but not symlink-resolved: two links to one picture are two images, each captioned beside itself. A file
name that is not valid UTF-8 stays the ``str`` Python gives it (lone surrogates, PEP 383) and works like any other.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Job:
    path: str  # as given (absolute, symlinks kept)
    seed: int


def list_images(source: Path | str) -> list[Path]:
    """The images of a folder (sorted, not recursive) or of a text file that lists one path a line (relative to
    the list's folder; a path listed twice counts once)."""
    source = Path(source).expanduser()
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
        images = [absolute(p) for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            what = f"{len(files)} files but no images" if files else "no files"
            raise ValueError(f"folder {str(source)!r} has {what}; give a folder of {', '.join(IMAGE_SUFFIXES)} files "
                             "or a .txt file listing image paths.")
        return images
    if source.is_file() and source.suffix.lower() == ".txt":
        # surrogateescape: a listed name that is not UTF-8 reaches the file system as the very bytes listed
        lines = [line.strip() for line in source.read_text(encoding="utf-8", errors="surrogateescape").splitlines()]
        paths = [absolute(source.parent / line) for line in lines if line and not line.startswith("#")]
        if not paths:
            raise ValueError(f"list {str(source)!r} names no images; write one image path a line.")
        return list(dict.fromkeys(paths))
    raise ValueError(f"{str(source)!r} is neither a folder nor a .txt list of images; give one of them.")


def absolute(path: Path | str) -> Path:
    """``path`` made absolute as the user named it: ``..`` folded, symlinks kept (a link is its own input).

    A ``..`` is folded only where that names the same folder: after a linked folder it is kept as written.
    """
    path = Path(path)
    folded = Path(os.path.abspath(path))
    if ".." in path.parts and os.path.realpath(folded.parent) != os.path.realpath(path.absolute().parent):
        return path.absolute()
    return folded


def seed_for(path: Path | str, base_seed: int) -> int:
    """``base_seed`` + CRC-32 of the file name (not its folder): independent of order and of worker count.

    The name's UTF-8 bytes; a name that is not valid UTF-8 (lone surrogates) is hashed as well, never refused.
    """
    return (int(base_seed) + zlib.crc32(Path(path).name.encode("utf-8", "surrogatepass"))) % (2 ** 31)


def jobs_for(paths: list[Path], base_seed: int) -> list[Job]:
    return [Job(str(p), seed_for(p, base_seed)) for p in paths]


def sidecar_for(path: Path | str) -> Path:
    """The caption file kohya-style trainers read: ``IMAGE.txt`` beside ``IMAGE.png``."""
    return Path(path).with_suffix(".txt")


def check_sidecars(paths: Sequence[str], others: Mapping[str, str]) -> None:
    """Refuse, before any work, a caption that would land on an input, on one of ``others`` (path -> what it is:
    the list, the journal) or on another image's caption (``a.png`` and ``a.jpg`` are both captioned ``a.txt``).

    Files are compared by folder (symlinks resolved) and name, so another spelling of the same file is caught.
    """
    taken = {_entry(p): f"the image {p!r}" for p in paths}
    taken.update({_entry(p): f"{what} {p!r}" for p, what in others.items()})
    captions: dict[str, str] = {}
    clashes = []
    for path in paths:
        target = str(sidecar_for(path))
        key = _entry(target)
        if key in taken:
            clashes.append(f"write the caption of {path!r} over {taken[key]}")
        elif key in captions:
            clashes.append(f"write the captions of {captions[key]!r} and {path!r} both to {target!r}")
        else:
            captions[key] = path
    if clashes:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise ValueError(f"--sidecar would {clashes[0]}{more}; rename the image so its IMAGE.txt is its own, or drop "
                         "--sidecar (the journal holds every prompt).")


def _entry(path: str) -> str:
    """The directory entry ``path`` names: its folder resolved, its own name kept (a link is its own entry)."""
    folder, name = os.path.split(absolute(path))
    return os.path.normcase(os.path.join(os.path.realpath(folder), name))
