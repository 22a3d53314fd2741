"""Readable prompts on the toy world: PEZ, PEZ + fluency, guided decoding (alone and seeded by PEZ) and best-of-N by
generation, side by side.

    python benchmarks/bench_readable.py            # ~10 min on 2 cores; prints the table (mean ± std), --json

Each toy-world picture (``--images``) is inverted over ``--seeds`` seeds by every method (guided decoding is
deterministic: one run per picture, repeated for its timing). Columns:

* ``sim``: the round-trip CLIP similarity of the returned text to the picture (bundled toy CLIP);
* ``recall``: share of the scene's four attribute words in the prompt;
* ``ppl (judge)``: perplexity of the prompt under ``toy_lm_large`` — a *different* LM from the guiding and
  fluency LM (``toy_lm_small``), so the column measures readability, not agreement with the guide;
* ``gen``: the paper's metric — the reference CLIP's similarity of the toy text-to-image model's pictures
  from the prompt (``--gen-seeds`` each) to the target picture;
* ``s``: seconds per prompt (generation not included; best-of-N includes its candidates' generations).

``guided seeded by PEZ`` starts guided decoding from the word of that seed's PEZ prompt that alone is closest to
the picture (its seconds include PEZ's). ``best-of-N (gen)`` takes PEZ's ``top_k`` candidates and the guided prompt and keeps the one whose generated
pictures the judge finds closest to the target (``pez_nodes.evaluate.pick``; Williams et al. 2024: a better CLIP
score need not mean a closer regenerated picture). Its ``gen`` is measured on the generations it was chosen by
(``pez eval --pick-by-generation`` chooses on other seeds than it reports).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.core import PEZConfig, encode_text, image_features, invert, load_clip  # noqa: E402
from pez_nodes.lm.load import load_lm  # noqa: E402


def perplexity(lm, text: str) -> float:
    ids, context = lm.encode(text), lm.context_ids("")
    log_p = sum(float(lm.next_log_probs([context + ids[:i]])[0, t]) for i, t in enumerate(ids))
    return math.exp(-log_p / max(1, len(ids)))


def mean_std(values: list[float], digits: int = 3) -> str:
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.pstdev(values):.{digits}f}"


def best_word(clip, picture, text: str) -> str:
    """The word of PEZ's prompt that alone is closest to the picture: guided decoding's first word (as VGD starts
    from the CLIP token nearest the image, here chosen among PEZ's hard prompt)."""
    words = sorted(set(text.split()))
    feature = image_features(clip, [picture])[0]
    return max(words, key=lambda w: float(encode_text(clip, w) @ feature))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--prompt-len", type=int, default=8, help="PEZ's tokens (guided: its token budget is 16)")
    ap.add_argument("--fluency", type=float, default=0.03, help="λ of pez + fluency (the README's best: 0.03)")
    ap.add_argument("--gen-seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip, guide, judge_lm = load_clip("toy"), load_lm("toy_lm_small"), load_lm("toy_lm_large")
    from pez_nodes.evaluate.metric import image_similarity
    from pez_nodes.evaluate.pick import pick_by_generated_images
    from pez_nodes.evaluate.reference import load_reference_clip
    from pez_nodes.generate import load_generator

    generator, judge = load_generator("toy"), load_reference_clip()
    gen_seeds = list(range(args.gen_seeds))
    rng = random.Random(5)
    pictures = [(s, tw.render(s, size=128, seed=700 + i)) for i, s in
                enumerate(tw.random_scene(rng) for _ in range(args.images))]
    rows: dict[str, dict[str, list[float]]] = {}

    def gen_similarity(picture, text: str) -> float:
        return statistics.fmean(image_similarity(judge, [picture], generator.generate(text, gen_seeds))[0].tolist())

    def record(method, scene, picture, text, sim, seconds, gen=None):
        row = rows.setdefault(method, {"sim": [], "recall": [], "ppl": [], "gen": [], "s": []})
        row["sim"].append(sim)
        row["recall"].append(sum(w in text.split() for w in scene.words) / len(scene.words))
        row["ppl"].append(perplexity(judge_lm, text))
        row["gen"].append(gen if gen is not None else gen_similarity(picture, text))
        row["s"].append(seconds)

    start = time.time()
    for scene, picture in pictures:
        t = time.perf_counter()
        guided = invert(clip, [picture], PEZConfig(method="guided", prompt_len=16), guide_lm=guide)
        guided_seconds = time.perf_counter() - t
        for seed in range(args.seeds):
            record("guided", scene, picture, guided.text, guided.similarity, guided_seconds)
            t = time.perf_counter()
            pez = invert(clip, [picture], PEZConfig(prompt_len=args.prompt_len, steps=args.steps, seed=seed, top_k=4))
            pez_seconds = time.perf_counter() - t
            record("pez", scene, picture, pez.text, pez.similarity, pez_seconds)
            t = time.perf_counter()
            seed_word = best_word(clip, picture, pez.text)
            seeded = invert(clip, [picture], PEZConfig(method="guided", prompt_len=16, start_text=seed_word),
                            guide_lm=guide)
            record("guided seeded by PEZ", scene, picture, seeded.text, seeded.similarity,
                   pez_seconds + time.perf_counter() - t)
            t = time.perf_counter()
            fluent = invert(clip, [picture], PEZConfig(prompt_len=args.prompt_len, steps=args.steps, seed=seed,
                                                       fluency=args.fluency), fluency_lm=guide)
            record(f"pez + fluency {args.fluency}", scene, picture, fluent.text, fluent.similarity,
                   time.perf_counter() - t)
            t = time.perf_counter()
            pool = {c.text: c.similarity for c in pez.candidates} | {guided.text: guided.similarity}
            best = pick_by_generated_images(judge, list(pool), [picture],
                                            [generator.generate(text, gen_seeds) for text in pool])
            record("best-of-N (gen)", scene, picture, best.prompt, pool[best.prompt],
                   pez_seconds + guided_seconds + time.perf_counter() - t, best.score)
        print(f"{scene.caption!r}: guided {guided.text!r}, {time.time() - start:.0f} s", flush=True)

    print(f"\n{'method':24} {'sim':>15} {'recall':>7} {'ppl (judge)':>22} {'gen':>15} {'s':>7}")
    for method, row in rows.items():
        ppl = f"{statistics.median(row['ppl']):.3g} (median)"
        print(f"{method:24} {mean_std(row['sim']):>15} {statistics.fmean(row['recall']):7.2f} {ppl:>22} "
              f"{mean_std(row['gen']):>15} {statistics.fmean(row['s']):7.2f}")
    print(f"\n{time.time() - start:.0f} s total; {args.images} pictures × {args.seeds} seeds, {args.steps} PEZ steps, "
          f"{args.gen_seeds} generations per prompt, {args.threads} threads")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
