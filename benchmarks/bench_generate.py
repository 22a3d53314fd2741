"""Generation cost in the paper's loop: ms per image, and where ``pez eval``'s time goes.

    python benchmarks/bench_generate.py            # toy model and a tiny random Stable Diffusion; 2 threads

Prints ms/image (25 steps, each model's default guidance, 5 seeds per prompt, as ``pez eval`` runs them) for the toy
text-to-image model and for a tiny random-weight Stable Diffusion pipeline (the real pipeline's code
path at toy size: text encoder, UNet, VAE decode), then one ``pez eval`` over 4 toy targets with its
time split into invert / generate / score.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.core import PEZConfig, load_clip  # noqa: E402
from pez_nodes.evaluate.reference import load_reference_clip  # noqa: E402
from pez_nodes.evaluate.run import evaluate_inversion  # noqa: E402
from pez_nodes.generate import load_generator  # noqa: E402


def ms_per_image(generator, seeds: int, rounds: int) -> float:
    generator.generate("a large red circle on grass", [0])  # warm-up
    start = time.perf_counter()
    for r in range(rounds):
        generator.generate("a small blue star at night", list(range(r * seeds, (r + 1) * seeds)))
    return 1000 * (time.perf_counter() - start) / (rounds * seeds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    toy = load_generator("toy")
    print(f"toy text-to-image (32 px):        {ms_per_image(toy, args.seeds, args.rounds):8.1f} ms/image")
    try:
        from tiny_sd import write_tiny_sd

        with tempfile.TemporaryDirectory() as folder:
            sd = load_generator(str(write_tiny_sd(Path(folder) / "sd")))
            print(f"tiny Stable Diffusion (16 px):    {ms_per_image(sd, args.seeds, args.rounds):8.1f} ms/image")
    except ImportError as e:
        print(f"tiny Stable Diffusion: skipped ({e})")
    rng = __import__("random").Random(3)
    targets = [(f"t{i}", tw.render(tw.random_scene(rng), size=128, seed=i)) for i in range(4)]
    _, timing = evaluate_inversion(load_clip("toy"), toy, load_reference_clip(), targets, list(range(args.seeds)),
                                   PEZConfig(prompt_len=8, steps=300))
    t = timing.as_dict()
    print(f"pez eval, 4 targets × {args.seeds} seeds (300 PEZ steps each): total {t['total_s']} s = invert "
          f"{t['invert_s']} s + generate {t['generate_s']} s + score {t['score_s']} s")


if __name__ == "__main__":
    main()
