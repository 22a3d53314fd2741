"""``prompts.jsonl``: one line per finished image, appended atomically, so a killed run loses at most its batch.

Each line is one JSON object: ``path``, ``prompt``, ``similarity``, ``seed``, ``model``, ``settings``,
``seconds`` — or ``path``, ``error`` for an image that could not be read. An image with a prompt line is done;
one with only error lines is tried again by the next run (fix the file, run again), which appends its new line,
so a path's last line is its current state. A line is written with one ``write`` of the whole line and flushed
to disk, so a crash leaves at most a partial *last* line, which opening the journal again repairs (cuts). The
file is UTF-8; a path that is not valid UTF-8 is written with JSON's ``\\u`` escapes. A journal belongs to one
model and one set of settings: another run is refused unless forced, so prompts of different models never mix
in one file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Journal:
    """The JSONL journal at ``path`` (created if missing), opened for appending."""

    def __init__(self, path: Path | str, model: str, settings: dict, force: bool = False):
        self.path = Path(path).expanduser()
        self.model, self.settings = model, settings
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.repaired = _cut_partial_line(self.path)
            self.rows = _read(self.path)
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise ValueError(f"output {str(self.path)!r} cannot be written ({e.strerror or e}); choose a writable "
                             "--out file.") from e
        if not force:
            self._check_same_run()

    def _check_same_run(self) -> None:
        for row in self.rows:
            if "error" in row:
                continue
            theirs = {"model": row.get("model"), **(row.get("settings") or {})}
            ours = {"model": self.model, **self.settings}
            differ = [f"{k} {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in sorted(set(theirs) | set(ours))
                      if theirs.get(k) != ours.get(k)]
            if differ:
                raise ValueError(f"{str(self.path)!r} holds prompts from another run ({'; '.join(differ[:3])}); use "
                                 "another --out, or --force to add to it.")

    def done(self) -> set[str]:
        """Paths with a prompt line: a re-run skips them."""
        return {row["path"] for row in self.rows if "prompt" in row}

    def failed(self) -> set[str]:
        """Paths with error lines only: a re-run tries them again."""
        return {row["path"] for row in self.rows} - self.done()

    def append(self, row: dict) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a file name that is not UTF-8: JSON escapes (\udcff), read back as the same str
            line = json.dumps(row) + "\n"
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows.append(row)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cut_partial_line(path: Path) -> bool:
    """Cut a last line without its newline (a write a crash interrupted); True if one was cut."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return False
        f.truncate(data.rfind(b"\n") + 1)
    return True


def _read(path: Path) -> list[dict]:
    """The journal's rows; anything else (not UTF-8, not JSON, JSON that is not a row) is refused in one line."""
    if not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{str(path)!r} is not UTF-8 text (byte {e.start}); it is not a pez batch journal — "
                         "choose another --out.") from e
    rows = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{str(path)!r} line {i + 1} is not JSON ({e.msg}); it is not a pez batch journal — "
                             "choose another --out.") from e
        if not (isinstance(row, dict) and isinstance(row.get("path"), str)
                and isinstance(row.get("settings", {}), dict)):
            raise ValueError(f"{str(path)!r} line {i + 1} is JSON but not an image's line (an object with a "
                             '"path"); it is not a pez batch journal — choose another --out.')
        rows.append(row)
    return rows
