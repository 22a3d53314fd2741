"""``pez batch --ray``: the same job on Ray Data — actors that load the model once, the driver writes the journal.

Images without a prompt in the journal become a Ray dataset of (path, seed); ``map_batches`` sends
``--batch-size`` of them at a time to a pool of ``workers`` actors, each holding one model (``num_gpus=1`` each
when the cluster has GPUs and ``--device`` is auto or cuda), which run ``local.invert_batch`` — the very code a
local run uses, so the lines are the same. Only the driver writes ``prompts.jsonl`` (one atomic line per image,
as results stream back), and it never writes a path twice, so a batch Ray re-runs after an actor dies still
gives each image exactly one line. The driver resolves only what it must: relative ``--model`` / ``--pretrained``
paths become absolute (an actor may run in another folder); each actor resolves the device itself (``auto``:
the GPU Ray gave it, if any). Paths travel as UTF-8 bytes, so a file name that is not valid UTF-8 goes through
too. ``ray`` is an optional extra.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from ..core import PEZConfig
from .jobs import Job, absolute
from .journal import Journal
from .local import Progress, pending, write_sidecar

INSTALL = "pip install 'pez-hard-prompts[ray]' (or: pip install 'ray[data]')"


class _Inverter:
    """A Ray Data actor: loads the CLIP once (on the device it resolves itself), inverts each batch it is given."""

    def __init__(self, load: dict, config: dict, model_name: str, threads: int):
        import torch

        from ..core import load_clip

        torch.set_num_threads(threads)
        self.model = load_clip(**load)
        self.config = PEZConfig(**config)
        self.model_name = model_name

    def __call__(self, batch: dict) -> dict:
        from .local import invert_batch

        jobs = [Job(unpack(p), int(s)) for p, s in zip(batch["path"], batch["seed"])]
        return {"row": [json.dumps(r) for r in invert_batch(self.model, jobs, self.config, self.model_name)]}


def pack(path: str) -> bytes:
    """A path as Arrow carries it: UTF-8 bytes, the lone surrogates of a name that is not UTF-8 included."""
    return path.encode("utf-8", "surrogatepass")


def unpack(data) -> str:
    return bytes(data).decode("utf-8", "surrogatepass")


def load_args(args) -> dict:
    """``load_clip``'s arguments for the actors: a relative model folder or weights file made absolute here, on
    the driver (an actor may run in another folder), ``~`` expanded; the device left as asked (``auto`` is
    resolved by each actor on its own machine)."""
    source = args.model.strip()
    if source.startswith("local-dir:"):
        source = "local-dir:" + str(absolute(Path(source[len("local-dir:"):]).expanduser()))
    elif source != "toy" and Path(source).expanduser().is_dir():  # the loader's test for a model folder
        source = str(absolute(Path(source).expanduser()))
    pretrained = args.pretrained
    if pretrained and Path(pretrained).suffix:  # the loader's test for a weights file (else a tag)
        pretrained = str(absolute(Path(pretrained).expanduser()))
    if args.device.strip().lower().startswith("cuda:"):
        raise ValueError(f"--device {args.device} names one GPU, but with --ray each worker is given its own; use "
                         "--device cuda or auto.")
    return {"source": source, "pretrained": pretrained, "device": args.device, "activation": args.activation,
            "vocabulary": args.vocabulary}


def gpus_per_actor(device: str, cluster_gpus: float) -> int:
    """1 where the actors run on CUDA (``cuda``, or ``auto`` on a cluster with GPUs), else 0."""
    name = device.strip().lower()
    if name == "cuda" and cluster_gpus < 1:
        raise ValueError("--device cuda was asked for but the Ray cluster has no GPU; use --device auto or cpu.")
    return 1 if name == "cuda" or (name == "auto" and cluster_gpus >= 1) else 0


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
            progress: Progress | None = None) -> dict:
    """Run the jobs without a prompt in ``journal`` on Ray Data (earlier errors are tried again); the driver
    appends each returned line; ``progress`` may ask to stop after the next batch is recorded. Returns counts."""
    if workers < 1:
        raise ValueError(f"--workers {workers} must be 1 or more.")
    load = load_args(args)
    ray = connect(address)
    todo, counts = pending(jobs, journal)
    counts.update(workers=workers, ray=address)
    start = time.perf_counter()
    if todo:
        gpus = gpus_per_actor(args.device, ray.cluster_resources().get("GPU", 0))
        config_dict = {**config.to_dict(), "device": "auto"}
        data = ray.data.from_items([{"path": pack(j.path), "seed": j.seed} for j in todo])
        rows = data.map_batches(_Inverter, batch_size=args.batch_size, concurrency=workers, num_gpus=gpus, num_cpus=1,
                                fn_constructor_kwargs={"load": load, "config": config_dict,
                                                       "model_name": journal.model, "threads": args.threads or 1})
        seen = journal.done()
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
            if progress is not None and progress(done, len(todo), time.perf_counter() - start, counts["retried"]):
                counts["stopped"] = True
                break
    counts["seconds"] = round(time.perf_counter() - start, 3)
    return counts
