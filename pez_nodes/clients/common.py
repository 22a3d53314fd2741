"""What the ComfyUI client and the webui client share: the error a user can fix, the live progress line on
stderr, and the check that an image file exists. Standard library only.
"""

from __future__ import annotations

import sys
from pathlib import Path


class ClientError(Exception):
    """A problem the user can fix (bad workflow, missing file, server unreachable)."""


class Progress:
    """The live best prompt on one stderr line, rewritten in place; ``end()`` finishes the line."""

    def __init__(self, quiet: bool):
        self.quiet, self.open = quiet, False

    def show(self, text: str) -> None:
        if not self.quiet:
            sys.stderr.write(f"\r{text[:150]:<150}")
            sys.stderr.flush()
            self.open = True

    def end(self) -> None:
        if self.open:
            sys.stderr.write("\n")
            self.open = False


def check_image(path: Path) -> None:
    """A ClientError unless ``path`` is an existing file."""
    if not Path(path).exists():
        raise ClientError(f"image {str(path)!r} does not exist")
    if not Path(path).is_file():
        raise ClientError(f"image {str(path)!r} is not a file; pass an image file to --image")
