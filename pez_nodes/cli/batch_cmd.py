"""``pez batch``: caption a folder (or a list of images) — one prompt per image, resumable.

    pez batch photos/ --sidecar                    # photos/prompts.jsonl and photos/IMAGE.txt beside each image
    pez batch list.txt --out run.jsonl --batch-size 16 --model ViT-L-14
    pez batch photos/ --ray auto                   # the same job on Ray Data (pip install 'pez-hard-prompts[ray]')

Each image's seed comes from its file name, so results do not depend on order, batch size or workers. A
re-run skips images that already have a prompt in the journal and tries the ones that failed again; a killed
run (or one stopped with Ctrl-C, locally or on Ray) loses at most the batch in flight. Progress with an ETA goes
to stderr; the counts to stdout (one JSON object with ``--json``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from functools import partial
from pathlib import Path

from .common import config_from_args, model_args, optimiser_args, paper_arg


def add_parser(sub) -> None:
    from ..core import DEFAULT_MODEL

    p = sub.add_parser("batch", help="one prompt per image of a folder or list; prompts.jsonl, optional sidecars")
    p.add_argument("source", type=Path, help="a folder of images, or a .txt file with one image path a line")
    p.add_argument("--out", type=Path, default=None, help="the JSONL journal (default: prompts.jsonl in the folder, "
                                                          "or beside the list)")
    p.add_argument("--sidecar", action="store_true", help="also write IMAGE.txt beside each image (kohya-style captions)")
    p.add_argument("--overwrite", action="store_true", help="with --sidecar: replace existing IMAGE.txt captions")
    p.add_argument("--batch-size", type=int, default=8, help="images optimised together (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="add to a journal written with another model or settings")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS", help="run on Ray Data (a local cluster with "
                                                                        "'auto', or a cluster's address)")
    p.add_argument("--workers", type=int, default=2, help="with --ray: model-holding actors (default: %(default)s)")
    model_args(p, DEFAULT_MODEL)
    optimiser_args(p)
    paper_arg(p)
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object on stdout")


class BatchProgress:
    """One stderr line per batch: images done, rate, ETA. Ctrl-C stops after the batch in flight is recorded."""

    def __init__(self, enabled: bool):
        self.enabled, self.stop = enabled, False

    def interrupt(self, signum, frame) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("pez: stopping after this batch (Ctrl-C again aborts; finished images are kept)", file=sys.stderr)

    def __call__(self, done: int, total: int, seconds: float, retried: int = 0) -> bool:
        if self.enabled:
            eta = seconds / done * (total - done) if done else 0.0
            again = f" ({retried} of them retried after an earlier error)" if retried else ""
            print(f"{done}/{total} images{again}  {seconds / max(done, 1):.1f} s/image  "
                  f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}", file=sys.stderr, flush=True)
        return self.stop


def run_batch(args: argparse.Namespace) -> dict:
    import torch

    from ..batch.jobs import check_sidecars, jobs_for, list_images
    from ..batch.journal import Journal
    from ..batch.local import check_sidecars_writable, run_local, settings_of
    from ..core import check_device_name, load_clip, resolve_device

    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} must be 1 or more.")
    if args.ray and args.workers < 1:
        raise ValueError(f"--workers {args.workers} must be 1 or more.")
    if args.ray:
        check_device_name(args.device)  # only its spelling: each Ray worker resolves the device on its own machine
    else:
        resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = config_from_args(args).validate()
    source = args.source.expanduser()
    jobs = jobs_for(list_images(source), config.seed)
    out = args.out.expanduser() if args.out else ((source if source.is_dir() else source.parent) / "prompts.jsonl")
    if args.sidecar:
        others = {str(out): "the journal"} if source.is_dir() else {str(source): "the list", str(out): "the journal"}
        check_sidecars([j.path for j in jobs], others)
        check_sidecars_writable(jobs)
    model_name = args.model.strip()
    with Journal(out, _journal_model(model_name, args), settings_of(config), args.force) as journal:
        bar = BatchProgress(not args.quiet)
        if args.ray:
            from ..batch.ray_data import connect, load_args, run_ray

            load_args(args)  # a bad --device is refused before a cluster starts
            connect(args.ray)
            run = partial(run_ray, args.ray, jobs, config, journal, args, args.workers, bar)
        else:
            model = load_clip(args.model, args.pretrained, device=args.device, activation=args.activation,
                              vocabulary=args.vocabulary)
            run = partial(run_local, model, jobs, config, journal, args.batch_size, args.sidecar, args.overwrite, bar)
        previous = signal.signal(signal.SIGINT, bar.interrupt)  # from here Ctrl-C stops after the batch in flight
        try:
            counts = run()
        finally:
            signal.signal(signal.SIGINT, previous)
        counts.update(out=str(journal.path), repaired_partial_line=journal.repaired)
    return counts


def _journal_model(name: str, args) -> str:
    """The name journal lines carry: the loaded CLIP's name (the toy model's is 'toy')."""
    return name if args.pretrained is None else f"{name}/{args.pretrained}"


def print_counts(counts: dict) -> None:
    retried = f", {counts['retried']} retried after an earlier error" if counts.get("retried") else ""
    line = (f"{counts['written']} prompts written, {counts['errors']} errors, {counts['skipped']} already "
            f"done{retried} (of {counts['images']} images); {counts['sidecars']} captions written; "
            f"journal {counts['out']}")
    print(line.encode("utf-8", "backslashreplace").decode("utf-8"))  # a path that is not UTF-8 shown escaped
