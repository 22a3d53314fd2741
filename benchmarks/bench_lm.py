"""The paper's Sec. 5 in miniature: hard prompts for LM classification, fluency, few-shot, transfer — and fluent
image prompts. Prints the README's tables and writes every number to ``--json``.

    python benchmarks/bench_lm.py                  # ~25 min on 2 cores (bundled toy LMs and toy CLIP)

Task: the synthetic yes/no questions of ``pez_nodes/lm/synthetic.py`` (the question is not in the text: a
prompt must supply it). Accuracies are on 200 validation examples per question, means over questions × seeds.

1. *Methods × fluency* (toy_lm_small, 64 training / 32 holdout examples): pez, autoprompt_sgd, fluentprompt,
   each with λ = 0 and λ = ``--lm-fluency``, against the empty template; columns: validation accuracy and the
   prompt's perplexity under the LM.
2. *Few-shot*: k = 2 and 4 examples per class for training and k others for holdout selection (pez).
3. *Transfer*: prompts of table 1 (pez, λ = 0) scored on toy_lm_large, against its empty template.
4. *Fluent image prompts*: toy-CLIP inversions of toy-world pictures with λ = 0 and the ``--clip-fluency``
   weights: round-trip similarity, attribute recall, and perplexity under toy_lm_large (an LM the prompt was
   not optimised against) and toy_lm_small.
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
from pez_nodes.core import PEZConfig, invert, load_clip  # noqa: E402
from pez_nodes.core.optim.fluency import PromptFluency  # noqa: E402
from pez_nodes.core.optim.projection import VocabularyProjector, projector_for  # noqa: E402
from pez_nodes.lm import synthetic  # noqa: E402
from pez_nodes.lm.load import load_lm  # noqa: E402
from pez_nodes.lm.objective import accuracy  # noqa: E402
from pez_nodes.lm.tune import tune  # noqa: E402

METHODS = ("pez", "autoprompt_sgd", "fluentprompt")


def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"


def perplexity_of(lm) -> PromptFluency:
    return PromptFluency(lm.model, VocabularyProjector(lm.token_embedding, torch.arange(lm.token_embedding.shape[0])))


def ppl(scorer: PromptFluency, ids: list[int]) -> float:
    ce = scorer.of_ids(ids)
    return float("nan") if math.isnan(ce) else math.exp(ce)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--questions", default=",".join(synthetic.QUESTIONS))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--prompt-len", type=int, default=4)
    ap.add_argument("--lm-fluency", type=float, default=0.003, help="λ for the LM task (the paper's 0.003)")
    ap.add_argument("--clip-fluency", default="0.01,0.03", help="λ values for the toy-CLIP inversions")
    ap.add_argument("--clip-targets", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--parts", default="1,2,3,4")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    parts = {int(p) for p in args.parts.split(",")}
    small, large = load_lm("toy_lm_small"), load_lm("toy_lm_large")
    small_ppl, large_ppl = perplexity_of(small), perplexity_of(large)
    task = synthetic.task()
    questions = [q.strip() for q in args.questions.split(",") if q.strip()]
    data = {q: (synthetic.examples(q, 64, seed=1), synthetic.examples(q, 32, seed=2), synthetic.examples(q, 200, seed=99))
            for q in questions}
    out: dict = {"settings": vars(args) | {"json": str(args.json)}}
    start = time.time()

    def run(q, train, holdout, seed, method="pez", fluency=0.0):
        config = PEZConfig(prompt_len=args.prompt_len, steps=args.steps, seed=seed, method=method, fluency=fluency,
                           patience=0, top_k=5)
        return tune(small, task, train, holdout, config)

    if parts & {1, 3}:
        template = {q: accuracy(small, task, "", data[q][2]) for q in questions}
        template_large = {q: accuracy(large, task, "", data[q][2]) for q in questions}
        rows: dict[str, dict[str, list]] = {}
        for method in METHODS:
            for fluency in (0.0, args.lm_fluency):
                key = f"{method} λ={fluency:g}"
                row = rows.setdefault(key, {"val": [], "ppl": [], "large": [], "prompts": []})
                for q in questions:
                    train, holdout, val = data[q]
                    for seed in range(args.seeds):
                        r = run(q, train, holdout, seed, method, fluency)
                        row["val"].append(accuracy(small, task, r.prompt, val))
                        row["ppl"].append(r.perplexity)
                        row["large"].append(accuracy(large, task, r.prompt, val))
                        row["prompts"].append([q, seed, r.prompt])
                print(f"{key}: val {mean_std(row['val'])}  ppl median {statistics.median(row['ppl']):.0f}  "
                      f"({time.time() - start:.0f} s)", flush=True)
        print("\n1. methods × fluency (toy_lm_small; validation accuracy, prompt perplexity median)")
        print(f"| empty template | {statistics.fmean(template.values()):.3f} | – |")
        for key, row in rows.items():
            print(f"| {key} | {mean_std(row['val'])} | {statistics.median(row['ppl']):.0f} |")
        print("\n3. transfer to toy_lm_large (validation accuracy)")
        print(f"| empty template on large | {statistics.fmean(template_large.values()):.3f} |")
        for key, row in rows.items():
            print(f"| {key}, tuned on small | {mean_std(row['large'])} |")
        out.update(template=template, template_large=template_large, methods=rows)

    if 2 in parts:
        few: dict[int, list[float]] = {}
        for k in (2, 4):
            for q in questions:
                for seed in range(args.seeds):
                    pool = synthetic.examples(q, 4 * k, seed=100 + seed)
                    yes = [e for e in pool if e.label == "yes"]
                    no = [e for e in pool if e.label == "no"]
                    train, holdout = yes[:k] + no[:k], yes[k:2 * k] + no[k:2 * k]
                    r = run(q, train, holdout, seed)
                    few.setdefault(k, []).append(accuracy(small, task, r.prompt, data[q][2]))
            print(f"k={k}: val {mean_std(few[k])}  ({time.time() - start:.0f} s)", flush=True)
        print("\n2. few-shot (pez, holdout selection; validation accuracy)")
        for k, vals in few.items():
            print(f"| k = {k} | {mean_std(vals)} |")
        out["few_shot"] = few

    if 4 in parts:
        clip = load_clip("toy")
        clip_small = PromptFluency(small.model, projector_for(clip))
        clip_large = PromptFluency(large.model, projector_for(clip))
        rng = random.Random(11)
        scenes = [tw.random_scene(rng) for _ in range(args.clip_targets)]
        image_rows: dict[str, dict[str, list]] = {}
        for fluency in [0.0, *(float(x) for x in args.clip_fluency.split(","))]:
            row = image_rows.setdefault(f"λ={fluency:g}", {"sim": [], "recall": [], "ppl_large": [], "ppl_small": [],
                                                           "prompts": []})
            for i, scene in enumerate(scenes):
                image = tw.render(scene, size=128, seed=i)
                for seed in range(args.seeds):
                    r = invert(clip, [image], PEZConfig(prompt_len=8, steps=300, seed=seed, fluency=fluency, patience=0),
                               fluency_lm=small)
                    ids = clip.tokenize(r.text)
                    row["sim"].append(r.similarity)
                    row["recall"].append(sum(w in r.text.split() for w in scene.words) / len(scene.words))
                    row["ppl_large"].append(ppl(clip_large, ids))
                    row["ppl_small"].append(ppl(clip_small, ids))
                    row["prompts"].append([scene.caption, seed, r.text])
            print(f"clip λ={fluency:g}: sim {mean_std(row['sim'])}  ppl(large) median "
                  f"{statistics.median(row['ppl_large']):.0f}  ({time.time() - start:.0f} s)", flush=True)
        print("\n4. fluent image prompts (toy CLIP inversion, 8 tokens, 300 steps)")
        print("| λ | similarity | attribute recall | perplexity, toy_lm_large (median) | toy_lm_small (median) |")
        for key, row in image_rows.items():
            print(f"| {key} | {mean_std(row['sim'])} | {mean_std(row['recall'])} | "
                  f"{statistics.median(row['ppl_large']):.0f} | {statistics.median(row['ppl_small']):.0f} |")
        out["images"] = image_rows

    print(f"\n{time.time() - start:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
