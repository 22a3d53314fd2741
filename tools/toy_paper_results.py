"""The paper's results in miniature, on the toy world (README, "The paper's loop").

    python tools/toy_paper_results.py            # ~10 min on 2 cores; prints tables, writes pez_nodes/models/toy_diffusion/paper_results.json

Targets are toy-world pictures; prompts are learned with the bundled toy CLIP; pictures are generated
with the toy text-to-image model (its default guidance 2, 25 steps, ``--seeds`` seeds each) and judged by the
independent reference CLIP (image–image cosine with the target). Three experiments:

1. Table 1 in miniature: PEZ prompts vs the true captions (an upper bound) vs random prompts of the same
   length (a lower bound).
2. Figure 5: prompt length 4 / 8 / 16 / 32 — the toy CLIP's similarity (what PEZ optimises) and the
   generated pictures' similarity to the target (what a user gets).
3. Figure 6: distillation of long prompts to 0.7 / 0.5 / 0.3 / 0.1 of their tokens, judged by the
   similarity of each distilled prompt's generations to the original prompt's (same seed).
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
from pez_nodes.core import PEZConfig, invert, load_clip  # noqa: E402
from pez_nodes.evaluate.metric import image_similarity  # noqa: E402
from pez_nodes.evaluate.reference import load_reference_clip  # noqa: E402
from pez_nodes.evaluate.run import RATIOS, evaluate_distillation  # noqa: E402
from pez_nodes.generate import load_generator  # noqa: E402

LONG_PROMPTS = (
    "a photo of a large red circle on a grass background, a big red round shape lying on green grass",
    "an image of a small blue star at night, a tiny blue star shining against a dark night sky",
    "a picture of a large yellow triangle on sand, a big yellow triangle standing on a sandy beach",
    "a small white ring in front of a brick wall, a little white ring on red brick",
)


def mean_std(values) -> dict:
    return {"mean": round(statistics.fmean(values), 4), "std": round(statistics.pstdev(values), 4), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "pez_nodes" / "models" / "toy_diffusion" / "paper_results.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    clip, judge, generator = load_clip("toy"), load_reference_clip(), load_generator("toy")
    seeds = list(range(args.seeds))
    rng = random.Random(2023)
    scenes = [tw.random_scene(rng) for _ in range(args.targets)]
    targets = [tw.render(s, size=128, seed=700 + i) for i, s in enumerate(scenes)]

    def judged(prompt: str, target) -> list[float]:
        return image_similarity(judge, [target], generator.generate(prompt, seeds))[0].tolist()

    report: dict = {"targets": args.targets, "seeds": args.seeds, "pez_steps": args.steps}
    table1 = {"true caption": [], "PEZ (8 tokens)": [], "random (8 tokens)": []}
    lengths = {n: {"clip": [], "generated": [], "examples": []} for n in (4, 8, 16, 32)}
    for i, (scene, target) in enumerate(zip(scenes, targets)):
        table1["true caption"] += judged(scene.caption, target)
        table1["random (8 tokens)"] += judged(clip.decode(rng.sample(range(49406), 8)), target)
        for n in lengths:
            result = invert(clip, [target], PEZConfig(prompt_len=n, steps=args.steps, seed=i))
            gen = judged(result.text, target)
            lengths[n]["clip"].append(result.similarity)
            lengths[n]["generated"] += gen
            lengths[n]["examples"].append(f"{scene.caption} -> {result.text}")
            if n == 8:
                table1["PEZ (8 tokens)"] += gen
        print(f"target {i + 1}/{len(scenes)} done, {time.time() - t0:.0f} s", flush=True)
    report["table1"] = {k: mean_std(v) for k, v in table1.items()}
    report["prompt_length"] = {n: {"clip_similarity": mean_std(v["clip"]), "generated_similarity": mean_std(v["generated"]),
                                   "examples": v["examples"][:3]} for n, v in lengths.items()}
    distill_rows: dict = {r: [] for r in RATIOS}
    for text in LONG_PROMPTS:
        rows, _ = evaluate_distillation(clip, generator, judge, text, seeds, PEZConfig(steps=args.steps))
        for ratio, row in zip(RATIOS, rows[1:]):
            distill_rows[ratio] += row.similarities
    report["distillation"] = {str(r): mean_std(v) for r, v in distill_rows.items()}
    report["seconds"] = round(time.time() - t0)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("\nTable 1 (reference-CLIP similarity of generations to the target, mean ± std over targets × seeds)")
    for k, v in report["table1"].items():
        print(f"  {k:20} {v['mean']:.4f} ± {v['std']:.4f}")
    print("\nFigure 5 (prompt length): toy-CLIP similarity | generated similarity")
    for n, v in report["prompt_length"].items():
        c, g = v["clip_similarity"], v["generated_similarity"]
        print(f"  {n:3} tokens  {c['mean']:.4f} ± {c['std']:.4f} | {g['mean']:.4f} ± {g['std']:.4f}")
    print("\nFigure 6 (distillation ratio): similarity of distilled generations to the original's")
    for r, v in report["distillation"].items():
        print(f"  {r:4}  {v['mean']:.4f} ± {v['std']:.4f}")
    print(f"\n{report['seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
