"""What the ComfyUI client and the webui client share: the error a user can fix, the live progress on stderr
(one line rewritten in place on a terminal, line by line in a log), and the check that an image file
exists. Standard library only.
"""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path


class ClientError(Exception):
    """A problem the user can fix (bad workflow, missing file, server unreachable)."""


class Progress:
    """The live best prompt on stderr; ``end()`` finishes it.

    On a terminal: one line, rewritten in place. Without one (stderr piped to a file, a log, CI): one line per
    update, so the log reads line by line — a line when the steps (``k/N`` in the text) have advanced 5 % since
    the last line, or, for a text without a step count, at most once a second; the last update at the end.
    """

    EVERY_FRACTION = 0.05
    EVERY_S = 1.0

    def __init__(self, quiet: bool, live: bool | None = None):
        self.quiet, self.open = quiet, False
        self.live = _is_terminal(sys.stderr) if live is None else live
        self.pending: str | None = None  # a line-mode update not written yet
        self.last_text: str | None = None
        self.last_fraction: float | None = None
        self.last_time = -math.inf

    def show(self, text: str) -> None:
        if self.quiet:
            return
        if self.live:
            sys.stderr.write(f"\r{text[:150]:<150}")
            sys.stderr.flush()
            self.open = True
            return
        line = " ".join(text.split())[:300]
        if line == self.last_text:
            return
        fraction, now = _fraction(line), time.monotonic()
        if fraction is not None and self.last_fraction is not None:
            due = fraction - self.last_fraction >= self.EVERY_FRACTION or fraction < self.last_fraction  # a new run
        else:
            due = now - self.last_time >= self.EVERY_S
        if due:
            self._write(line, fraction, now)
        else:
            self.pending = line

    def _write(self, line: str, fraction: float | None, now: float) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.last_text, self.last_fraction, self.last_time, self.pending = line, fraction, now, None

    def end(self) -> None:
        if self.open:
            sys.stderr.write("\n")
            self.open = False
        if self.pending is not None:
            self._write(self.pending, _fraction(self.pending), time.monotonic())


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def _fraction(text: str) -> float | None:
    """How far a run is, from the first ``k/N`` in a progress text (``step 40/300 ...``, ``PEZ 40/300 ...``)."""
    found = re.search(r"\b(\d+)/(\d+)\b", text)
    return int(found.group(1)) / int(found.group(2)) if found and int(found.group(2)) > 0 else None


def check_image(path: Path) -> None:
    """A ClientError unless ``path`` is an existing file."""
    if not Path(path).exists():
        raise ClientError(f"image {str(path)!r} does not exist")
    if not Path(path).is_file():
        raise ClientError(f"image {str(path)!r} is not a file; pass an image file to --image")
