"""Which patience stops a run when it has converged: the measurement behind ``PEZConfig.patience``.

    python benchmarks/bench_patience.py                    # 4 inversion + 4 distillation tasks, 8 and 16 tokens
    python benchmarks/bench_patience.py --tasks 2 --prompt-lens 8

Each task runs the full ``--steps`` (patience off) with our other defaults and records the best (round-trip)
similarity after every step. Early stopping only decides *when* a run ends, never what it does before, so
the same trajectory tells what every patience P would have returned: the run stops at the first step that
is P steps past the last gain. For each P the table shows the median share of the steps it runs and how far
its prompt falls below the full run's (median and worst gap). The toy CLIP over its full vocabulary stands in
for a real CLIP here; with no pretrained CLIP to run, real models' plateaus are not measured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from bench_quality import tasks  # noqa: E402
from pez_nodes.core import PEZConfig, load_clip, optimize  # noqa: E402

PATIENCES = (100, 200, 300, 500, 1000)


def trajectory(model, target, prompt_len: int, steps: int) -> list[float]:
    """The best similarity after each step of a run with early stopping off."""
    best: list[float] = []
    optimize(model, [target], PEZConfig(prompt_len=prompt_len, steps=steps, patience=0),
             lambda step, total, text, sim: best.append(sim))
    return best


def stop_step(best: list[float], patience: int) -> int:
    """The step (1-based) a run with ``patience`` stops at, read from a patience-off trajectory."""
    last_gain, seen = 0, -float("inf")
    for step, sim in enumerate(best, start=1):
        if sim > seen:
            seen, last_gain = sim, step
        if step - last_gain >= patience:
            return step
    return len(best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=4, help="tasks of each kind")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--prompt-lens", default="8,16")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_clip("toy")
    print(f"toy CLIP (full vocabulary), CPU {args.threads} thread(s), {args.steps} steps, "
          f"restarts {PEZConfig().restarts}, patience off; {args.tasks} inversion + {args.tasks} distillation tasks\n")
    for prompt_len in (int(x) for x in args.prompt_lens.split(",")):
        runs = [(kind, trajectory(model, target, prompt_len, args.steps)) for kind, target in tasks(args.tasks)]
        for kind, best in runs:
            print(f"  {prompt_len} tokens, {kind:<7}: full-run best {best[-1]:.4f}, last gain at step "
                  f"{best.index(best[-1]) + 1}", flush=True)
        head = f"{'patience':>8} | {'median steps run':>16} | {'median gap':>10} | {'worst gap':>9} | {'gap = 0':>7}"
        print(f"\n{prompt_len} tokens\n{head}\n{'-' * len(head)}")
        for patience in PATIENCES:
            stops = [stop_step(best, patience) for _, best in runs]
            gaps = [best[-1] - best[s - 1] for (_, best), s in zip(runs, stops)]
            print(f"{patience:>8} | {statistics.median(stops) / args.steps:>16.1%} | {statistics.median(gaps):>10.4f} | "
                  f"{max(gaps):>9.4f} | {sum(g == 0 for g in gaps):>3}/{len(gaps):<3}", flush=True)
        print()


if __name__ == "__main__":
    main()
