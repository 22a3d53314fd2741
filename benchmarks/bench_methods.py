"""PEZ against the paper's baselines on the same toy tasks, at equal steps and at equal wall time.

    python benchmarks/bench_methods.py                 # ~15 min on 2 cores; prints the table, writes --json

Tasks (bundled toy CLIP, full 49,406-token vocabulary): *inversion* of toy-world pictures and
*distillation* of long captions, each over ``--seeds`` seeds. Methods (``pez_nodes/core/methods.py``):
pez, autoprompt_sgd, fluentprompt, soft and greedy_bank, at token budgets 8 and 16 (and 75, the
window, for greedy_bank). Columns:

* ``sim``: the round-trip similarity of the returned text to the targets (what PEZ optimises), mean ± std;
* ``recall``: the share of the scene's four attribute words that appear in the prompt;
* ``s``: seconds per run;
* ``gen``: the paper's Table 1 metric — the independent reference CLIP's similarity of pictures the toy
  text-to-image model generates from the prompt (``--gen-seeds`` each) to the target picture (inversion),
  or to the original caption's pictures with the same seed (distillation);
* ``soft (embeddings)``: the soft prompt fed to the generator as raw embeddings instead of as its
  projected text — the transfer gap the paper describes.

"equal time" runs every gradient method for the wall time pez needed for ``--steps`` steps on the same
task (greedy_bank stops by itself and is listed once).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.core import PEZConfig, distill, invert, load_clip  # noqa: E402
from pez_nodes.core.optim.methods import GRADIENT_METHODS as GRADIENT, METHODS  # noqa: E402
LONG_CAPTIONS = (
    (tw.Scene("circle", "red", "large", "grass"), "a photo of a large red circle on a grass background, a big red round "
                                                  "shape lying on green grass"),
    (tw.Scene("star", "blue", "small", "night"), "an image of a small blue star at night, a tiny blue star shining "
                                                 "against a dark night sky"),
)


def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"


class Deadline:
    """A callback that stops a run after ``seconds`` (equal wall time)."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.perf_counter()

    def __call__(self, step, total, text, sim) -> bool:
        return time.perf_counter() - self.start >= self.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--targets", type=int, default=2, help="toy pictures to invert (each over every seed)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--gen-seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip = load_clip("toy")
    try:
        from pez_nodes.evaluate.metric import image_similarity, paired_similarity
        from pez_nodes.evaluate.reference import load_reference_clip
        from pez_nodes.generate import load_generator

        generator, judge = load_generator("toy"), load_reference_clip()
    except ValueError as e:  # no diffusers: the CLIP-side columns only
        print(f"generation columns skipped: {e}")
        generator = judge = None
    gen_seeds = list(range(args.gen_seeds))
    rng = random.Random(11)
    tasks = [("invert", s, tw.render(s, size=128, seed=i)) for i, s in
             enumerate(tw.random_scene(rng) for _ in range(args.targets))]
    tasks += [("distill", scene, caption) for scene, caption in LONG_CAPTIONS]
    rows: dict[tuple, dict[str, list[float]]] = {}

    def record(key, result, scene, target, original_images, seconds):
        row = rows.setdefault(key, {"sim": [], "recall": [], "s": [], "gen": [], "gen_soft_embeddings": []})
        row["sim"].append(result.similarity)
        row["recall"].append(sum(w in result.text.split() for w in scene.words) / len(scene.words))
        row["s"].append(seconds)
        if generator is None:
            return
        prompts = [("gen", result.text)]
        if result.soft_prompt is not None:
            prompts.append(("gen_soft_embeddings", result.soft_prompt))
        for column, prompt in prompts:
            images = generator.generate(prompt, gen_seeds)
            if original_images is None:
                row[column] += image_similarity(judge, [target], images)[0].tolist()
            else:
                row[column] += paired_similarity(judge, original_images, images).tolist()

    start = time.time()
    for kind, scene, target in tasks:
        run = (lambda config, cb=None: invert(clip, [target], config, cb)) if kind == "invert" else \
              (lambda config, cb=None: distill(clip, target, config, cb))
        original = generator.generate(target, gen_seeds) if generator is not None and kind == "distill" else None
        for budget in (8, 16):
            for seed in range(args.seeds):
                pez_seconds = None
                for method in GRADIENT:
                    t = time.perf_counter()
                    result = run(PEZConfig(prompt_len=budget, steps=args.steps, seed=seed, method=method, patience=0))
                    seconds = time.perf_counter() - t
                    pez_seconds = seconds if method == "pez" else pez_seconds
                    record((kind, budget, "equal steps", method), result, scene, target, original, seconds)
                    t = time.perf_counter()
                    result = run(PEZConfig(prompt_len=budget, steps=100_000, seed=seed, method=method, patience=0),
                                 Deadline(pez_seconds))
                    record((kind, budget, "equal time", method), result, scene, target, original,
                           time.perf_counter() - t)
        for budget in (8, 16, 75):  # deterministic: one run per task and budget
            t = time.perf_counter()
            result = run(PEZConfig(prompt_len=budget, method="greedy_bank"))
            record((kind, budget, "own stop", "greedy_bank"), result, scene, target, original, time.perf_counter() - t)
        print(f"{kind} {scene.caption!r} done, {time.time() - start:.0f} s", flush=True)

    print(f"\n{'task':8} {'tokens':>6} {'regime':12} {'method':22} {'sim':>15} {'recall':>7} {'s':>6} {'gen':>15}")
    for (kind, budget, regime, method), row in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2],
                                                                                     METHODS.index(kv[0][3]))):
        gen = mean_std(row["gen"]) if row["gen"] else "-"
        print(f"{kind:8} {budget:6} {regime:12} {method:22} {mean_std(row['sim']):>15} "
              f"{statistics.fmean(row['recall']):7.2f} {statistics.fmean(row['s']):6.2f} {gen:>15}")
        if row["gen_soft_embeddings"]:
            print(f"{kind:8} {budget:6} {regime:12} {'soft (embeddings)':22} {'':>15} {'':>7} {'':>6} "
                  f"{mean_std(row['gen_soft_embeddings']):>15}")
    print(f"\n{time.time() - start:.0f} s total; {args.seeds} seeds, {args.steps} steps, {args.gen_seeds} generations "
          f"per prompt, {args.threads} threads")
    if args.json:
        args.json.write_text(json.dumps([{"task": k[0], "tokens": k[1], "regime": k[2], "method": k[3], **v}
                                         for k, v in rows.items()], indent=1) + "\n")


if __name__ == "__main__":
    main()
