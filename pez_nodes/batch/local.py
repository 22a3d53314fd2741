"""Run a batch job on this machine: ``batch_size`` images per ``invert_each`` call, each finished image one
journal line (and, with ``sidecar``, its ``IMAGE.txt``) as soon as its batch ends."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from ..core import PEZConfig, invert_each
from ..core.images import load_image
from .jobs import Job, sidecar_for
from .journal import Journal

MAX_SIDE = 4096  # a larger picture is reduced on load: CLIP sees 224 px anyway


def settings_of(config: PEZConfig) -> dict:
    """What must match for prompts to belong in one journal (not where they ran), as JSON reads it back."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("device", "precision", "compile")}
    return json.loads(json.dumps(settings))


def invert_batch(model, jobs: Sequence[Job], config: PEZConfig, model_name: str, callback=None) -> list[dict]:
    """One journal row per job: its prompt (images of a batch optimised together), or the error reading it."""
    rows: dict[str, dict] = {}
    images, ready = [], []
    for job in jobs:
        try:
            images.append(load_image(job.path, MAX_SIDE))
            ready.append(job)
        except (OSError, ValueError) as e:
            rows[job.path] = {"path": job.path, "error": str(e).splitlines()[0]}
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


def write_sidecar(path: str, prompt: str, overwrite: bool) -> str:
    """Write ``IMAGE.txt`` (atomically) unless one exists and ``overwrite`` is off; say which happened."""
    target = sidecar_for(path)
    if target.exists() and not overwrite:
        return "kept existing"
    tmp = target.with_name(f".{target.name}.pez-tmp")
    tmp.write_text(prompt + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return "written"


def run_local(model, jobs: Sequence[Job], config: PEZConfig, journal: Journal, batch_size: int = 8,
              sidecar: bool = False, overwrite: bool = False,
              progress: Callable[[int, int, float], bool] | None = None) -> dict:
    """Invert every job not yet in ``journal``; ``progress(done, total, seconds)`` may return True to stop
    (after the batch in flight is recorded). Returns counts."""
    finished = journal.done()
    todo = [j for j in jobs if j.path not in finished]
    counts = {"images": len(jobs), "skipped": len(jobs) - len(todo), "written": 0, "errors": 0, "sidecars": 0}
    start = time.perf_counter()
    for i in range(0, len(todo), batch_size):
        for row in invert_batch(model, todo[i : i + batch_size], config, journal.model):
            if sidecar and "prompt" in row:
                row["sidecar"] = write_sidecar(row["path"], row["prompt"], overwrite)
                counts["sidecars"] += row["sidecar"] == "written"
            journal.append(row)
            counts["errors" if "error" in row else "written"] += 1
        done = min(i + batch_size, len(todo))
        if progress is not None and progress(done, len(todo), time.perf_counter() - start):
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
