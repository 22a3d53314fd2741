"""What a guided-decoding step and prompt cost next to PEZ's, side by side in one run (bundled toy CLIP).

    python benchmarks/bench_guided_cost.py          # ~2 min on 2 cores

A PEZ step is one projected forward + backward over ``restarts`` prompts; a guided step is one decoded token:
one LM forward over the beams, then ``beams × candidates`` texts tokenized and scored by CLIP in one batch.
Printed per configuration: ms per step, steps per prompt, seconds per prompt, and the ratio of a guided step to
a PEZ step measured in the same run (``--repeats`` runs each, the median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.core import PEZConfig, invert, load_clip  # noqa: E402
from pez_nodes.lm.load import load_lm  # noqa: E402


def timed(run, repeats: int) -> tuple[float, int]:
    """(median seconds, steps) of ``repeats`` calls of ``run``."""
    seconds, steps = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - t)
        steps = result.steps
    return statistics.median(seconds), steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip = load_clip("toy")
    picture = tw.render(tw.Scene("star", "yellow", "large", "night"), size=128, seed=7)
    rows = [("pez, 8 tokens, 4 restarts, 300 steps", None,
             lambda: invert(clip, [picture], PEZConfig(prompt_len=8, steps=300, patience=0, seed=0)))]
    for lm_name in ("toy_lm_small", "toy_lm_large"):
        lm = load_lm(lm_name)
        for beams, candidates in ((5, 5), (10, 10), (20, 10)):
            config = PEZConfig(method="guided", prompt_len=16, beams=beams, candidates=candidates)
            rows.append((f"guided, {lm_name}, {beams} beams × {candidates}", lm,
                         lambda config=config, lm=lm: invert(clip, [picture], config, guide_lm=lm)))
    print(f"{'configuration':44} {'ms/step':>8} {'steps':>6} {'s/prompt':>9} {'step ÷ pez step':>16}")
    pez_ms = None
    for name, _, run in rows:
        run()  # warm-up
        seconds, steps = timed(run, args.repeats)
        ms = 1000 * seconds / max(1, steps)
        pez_ms = pez_ms or ms
        print(f"{name:44} {ms:8.1f} {steps:6d} {seconds:9.2f} {ms / pez_ms:16.1f}", flush=True)
    print(f"\n{args.threads} threads, median of {args.repeats} runs each")


if __name__ == "__main__":
    main()
