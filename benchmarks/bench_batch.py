"""Captioning throughput: images one at a time vs per-image prompts batched 4 / 8 / 16, and local vs Ray.

    python benchmarks/bench_batch.py                       # toy and ViT-L-14 (random weights); ~10 min on 2 cores
    python benchmarks/bench_batch.py --models toy --ray    # + `pez batch` locally vs `--ray auto` on a folder

Images/hour are at ``--full-steps`` steps a prompt (default 300, `pez batch`'s default), from the time of
``--steps`` steps (the loop's cost is the same every step), 4 restarts, 8 tokens — measured side by side in
one run. ViT-L-14 is SD 1.5's text tower with random weights (``bench_step.build``; speed does not depend on
the weights); the images are toy pictures (the image features are computed once, outside the loop).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_step import build  # noqa: E402

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.core import PEZConfig, invert, invert_each  # noqa: E402


def per_image_seconds(model, images, batch: int, steps: int, restarts: int = 4) -> float:
    """Seconds one image costs when ``batch`` images share each encoder pass (batch 1: ``invert`` alone)."""
    config = PEZConfig(prompt_len=8, steps=steps, patience=0, restarts=restarts)
    chunk = images[:batch]
    start = time.perf_counter()
    if batch == 1:
        invert(model, [chunk[0]], config)
    else:
        invert_each(model, chunk, config)
    return (time.perf_counter() - start) / len(chunk)


def ray_vs_local(steps: int, n: int) -> dict:
    """`pez batch` on a folder of ``n`` toy pictures: local (batch 8) vs ``--ray auto`` (2 actors × batch 4)."""
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(n):
            tw.render(tw.random_scene(rng), 64, i).save(folder / f"img{i}.png")
        out = {}
        for name, extra in (("local", ["--batch-size", "8", "--threads", "2"]),
                            ("ray", ["--ray", "auto", "--workers", "2", "--batch-size", "4", "--threads", "1"])):
            cmd = [sys.executable, "-m", "pez_nodes.cli", "batch", str(folder), "--out", str(folder / f"{name}.jsonl"),
                   "--steps", str(steps), "--prompt-len", "8", "--quiet", "--json", *extra]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            wall = time.perf_counter() - start
            assert done.returncode == 0, done.stderr[-2000:]
            out[name] = {"wall_s": round(wall, 1), "images_per_hour": round(3600 * n / wall)}
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="toy,ViT-L-14")
    ap.add_argument("--batches", default="1,4,8,16")
    ap.add_argument("--steps", type=int, default=20, help="steps timed (toy: ×5)")
    ap.add_argument("--full-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--restarts", default="4", help="restarts per image (comma-separated: one table each)")
    ap.add_argument("--ray", action="store_true", help="also time `pez batch` locally vs --ray auto (toy)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random(1)
    batches = [int(b) for b in args.batches.split(",")]
    images = [tw.render(tw.random_scene(rng), 128, i) for i in range(max(batches))]
    report = {}
    for name in args.models.split(","):
        model = build(name, "cpu")
        steps = args.steps * (5 if name == "toy" else 1)
        per_image_seconds(model, images, 1, 2)  # warm-up
        for restarts in (int(r) for r in args.restarts.split(",")):
            rows = {}
            for batch in batches:
                seconds = per_image_seconds(model, images, batch, steps, restarts) * args.full_steps / steps
                rows[batch] = {"s_per_image": round(seconds, 2), "images_per_hour": round(3600 / seconds)}
            base = rows[1]["images_per_hour"]
            print(f"\n{model.name}: images/hour at {args.full_steps} steps (8 tokens, {restarts} restarts, "
                  f"{args.threads} threads)")
            print("| batch | s / image | images / hour | × one at a time |\n|---|---|---|---|")
            for batch, row in rows.items():
                print(f"| {batch} | {row['s_per_image']} | {row['images_per_hour']} | {row['images_per_hour'] / base:.2f} |")
            report[f"{name}, {restarts} restarts"] = rows
    if args.ray:
        report["ray_vs_local"] = ray_vs_local(60, 16)
        print("\n`pez batch`, 16 toy pictures, 60 steps:", json.dumps(report["ray_vs_local"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
