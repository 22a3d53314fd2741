"""Run a batch job on this machine: ``batch_size`` images per ``invert_each`` call, each finished image one
journal line (and, with ``sidecar``, its ``IMAGE.txt``) as soon as its batch ends."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from ..core import PEZConfig, invert_each, load_image
from .jobs import Job, sidecar_for
from .journal import Journal

Progress = Callable[[int, int, float, int], bool]
"""``progress(done, total, seconds, retried)``: images done of ``total`` to do (``retried`` of them had only an
error line before); True asks to stop after the batch in flight is recorded."""


def settings_of(config: PEZConfig) -> dict:
    """What must match for prompts to belong in one journal (not where they ran), as JSON reads it back."""
    how = ("device", "precision", "compile", "compile_step", "sync_every")  # same prompts whatever these are
    settings = {k: v for k, v in config.to_dict().items() if k not in how}
    return json.loads(json.dumps(settings))


def read_images(model, jobs: Sequence[Job]) -> tuple[list, list[Job], dict[str, dict]]:
    """The jobs' images, decoded as the core decodes image files for ``model`` (shrunk to 2x-4x its input
    size, ``core.load_image``), the jobs they belong to, and an error row for each one that is unreadable."""
    max_side = getattr(model, "image_size", None)  # the size core.image_features reads files at
    images, ready, errors = [], [], {}
    for job in jobs:
        try:
            images.append(load_image(job.path, max_side))
            ready.append(job)
        except (OSError, ValueError) as e:
            errors[job.path] = {"path": job.path, "error": str(e).splitlines()[0]}
    return images, ready, errors


def invert_batch(model, jobs: Sequence[Job], config: PEZConfig, model_name: str, callback=None) -> list[dict]:
    """One journal row per job: its prompt (images of a batch optimised together), or the error reading it."""
    images, ready, rows = read_images(model, jobs)
    if ready:
        start = time.perf_counter()
        results = invert_each(model, images, config, callback, seeds=[j.seed for j in ready])
        seconds = (time.perf_counter() - start) / len(ready)
        settings = settings_of(config)
        for job, r in zip(ready, results):
            rows[job.path] = {"path": job.path, "prompt": r.text, "similarity": round(r.similarity, 6), "seed": job.seed,
                              "model": model_name, "settings": settings, "seconds": round(seconds, 3),
                              "stop_reason": r.stop_reason}
    return [rows[j.path] for j in jobs]


def pending(jobs: Sequence[Job], journal: Journal) -> tuple[list[Job], dict]:
    """The jobs still to do (no prompt line yet: new ones and earlier errors, tried again) and the run's counts."""
    done, failed = journal.done(), journal.failed()
    todo = [j for j in jobs if j.path not in done]
    counts = {"images": len(jobs), "skipped": len(jobs) - len(todo), "retried": sum(j.path in failed for j in todo),
              "written": 0, "errors": 0, "sidecars": 0}
    return todo, counts


def write_sidecar(path: str, prompt: str, overwrite: bool) -> str:
    """Write ``IMAGE.txt`` (atomically) unless one exists and ``overwrite`` is off; say which happened."""
    target = sidecar_for(path)
    if target.exists() and not overwrite:
        return "kept existing"
    fd, tmp = tempfile.mkstemp(prefix=".pez-", suffix=".tmp", dir=target.parent)  # a name no input can have
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(prompt + "\n")
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return "written"


def run_local(model, jobs: Sequence[Job], config: PEZConfig, journal: Journal, batch_size: int = 8,
              sidecar: bool = False, overwrite: bool = False,
              progress: Progress | None = None) -> dict:
    """Invert every job without a prompt in ``journal`` (earlier errors are tried again); ``progress`` may ask to
    stop after the batch in flight is recorded. Returns counts."""
    todo, counts = pending(jobs, journal)
    start = time.perf_counter()
    for i in range(0, len(todo), batch_size):
        for row in invert_batch(model, todo[i : i + batch_size], config, journal.model):
            if sidecar and "prompt" in row:
                row["sidecar"] = write_sidecar(row["path"], row["prompt"], overwrite)
                counts["sidecars"] += row["sidecar"] == "written"
            journal.append(row)
            counts["errors" if "error" in row else "written"] += 1
        done = min(i + batch_size, len(todo))
        if progress is not None and progress(done, len(todo), time.perf_counter() - start, counts["retried"]):
            counts["stopped"] = True
            break
    counts["seconds"] = round(time.perf_counter() - start, 3)
    return counts


def check_sidecars_writable(jobs: Sequence[Job]) -> None:
    """Refuse, before any work, a folder where ``--sidecar`` could not write its captions."""
    for folder in sorted({str(Path(j.path).parent) for j in jobs}):
        if not os.access(folder, os.W_OK):
            raise ValueError(f"folder {folder!r} is not writable, so --sidecar cannot put captions beside its images; "
                             "drop --sidecar (prompts.jsonl still holds every prompt) or make it writable.")
