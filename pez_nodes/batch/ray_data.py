"""``pez batch --ray``: the same job on Ray Data — actors that load the model once, the driver writes the journal.

Images not yet in the journal become a Ray dataset of (path, seed); ``map_batches`` sends ``--batch-size`` of them
at a time to a pool of ``workers`` actors, each holding one model (``num_gpus=1`` each when CUDA is there), which
run ``local.invert_batch`` — the very code a local run uses, so the lines are the same. Only the driver writes
``prompts.jsonl`` (one atomic line per image, as results stream back), and it never writes a path twice, so a
batch Ray re-runs after an actor dies still gives each image exactly one line. ``ray`` is an optional extra.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Sequence

from ..core import PEZConfig
from .jobs import Job
from .journal import Journal
from .local import write_sidecar

INSTALL = "pip install 'pez-hard-prompts[ray]' (or: pip install 'ray[data]')"


class _Inverter:
    """A Ray Data actor: loads the CLIP once, inverts each batch it is given."""

    def __init__(self, load: dict, config: dict, model_name: str, threads: int):
        import torch

        from ..core import load_clip

        torch.set_num_threads(threads)
        self.model = load_clip(**load)
        self.config = PEZConfig(**config)
        self.model_name = model_name

    def __call__(self, batch: dict) -> dict:
        from .local import invert_batch

        jobs = [Job(str(p), int(s)) for p, s in zip(batch["path"], batch["seed"])]
        return {"row": [json.dumps(r) for r in invert_batch(self.model, jobs, self.config, self.model_name)]}


def connect(address: str):
    """``ray.init``: 'auto' joins the cluster ``RAY_ADDRESS`` names or starts a local one; else that address."""
    try:
        import ray
    except ImportError as e:
        raise ValueError(f"--ray needs ray: {INSTALL}.") from e
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "auto" else address, log_to_driver=False,
                     logging_level="ERROR", include_dashboard=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise ValueError(f"could not reach the Ray cluster at {address!r} ({e}); give 'auto' for a local cluster "
                             "or a running cluster's address (ray start --head prints it).") from e
    return ray


def run_ray(address: str, jobs: Sequence[Job], config: PEZConfig, journal: Journal, args, workers: int,
            progress: Callable[[int, int, float], bool] | None = None) -> dict:
    """Run the jobs not in ``journal`` on Ray Data; the driver appends each returned line. Returns counts."""
    import torch

    if workers < 1:
        raise ValueError(f"--workers {workers} must be 1 or more.")
    ray = connect(address)
    finished = journal.done()
    todo = [j for j in jobs if j.path not in finished]
    counts = {"images": len(jobs), "skipped": len(jobs) - len(todo), "written": 0, "errors": 0, "sidecars": 0,
              "workers": workers, "ray": address}
    start = time.perf_counter()
    if todo:
        gpus = 1 if torch.cuda.is_available() else 0
        load = {"source": args.model, "pretrained": args.pretrained, "device": "cuda" if gpus else "cpu",
                "activation": args.activation, "vocabulary": args.vocabulary}
        config_dict = {**config.to_dict(), "device": "auto"}
        data = ray.data.from_items([{"path": j.path, "seed": j.seed} for j in todo])
        rows = data.map_batches(_Inverter, batch_size=args.batch_size, concurrency=workers, num_gpus=gpus, num_cpus=1,
                                fn_constructor_kwargs={"load": load, "config": config_dict,
                                                       "model_name": journal.model, "threads": args.threads or 1})
        seen = set(finished)
        for batch in rows.iter_batches(batch_size=None):
            for line in batch["row"]:
                row = json.loads(line)
                if row["path"] in seen:  # a batch Ray ran again after an actor died
                    continue
                seen.add(row["path"])
                if args.sidecar and "prompt" in row:
                    row["sidecar"] = write_sidecar(row["path"], row["prompt"], args.overwrite)
                    counts["sidecars"] += row["sidecar"] == "written"
                journal.append(row)
                counts["errors" if "error" in row else "written"] += 1
            done = counts["written"] + counts["errors"]
            if progress is not None and progress(done, len(todo), time.perf_counter() - start):
                counts["stopped"] = True
                break
    counts["seconds"] = round(time.perf_counter() - start, 3)
    return counts
