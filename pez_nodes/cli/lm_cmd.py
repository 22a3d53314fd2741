"""``pez lm-tune`` and ``pez lm-eval``: hard prompts for language-model classification (the paper's Sec. 5).

    pez lm-tune reviews.csv --model ./gpt2-large --verbalizer negative=bad,positive=good --few-shot 4
    pez lm-tune synthetic:outdoors                       # the bundled toy LM and task (no download)
    pez lm-eval synthetic:outdoors --model toy_lm_large --prompt "outdoors :"   # transfer; empty template too

DATA is a ``.csv`` (columns ``text``, ``label``) or ``.jsonl`` file, or ``synthetic:QUESTION`` (the toy
world's yes/no questions, ``pez_nodes/lm/synthetic.py``). Progress goes to stderr; the prompt and the
accuracies to stdout (one JSON object with ``--json``).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
from pathlib import Path

from .common import ProgressBar, config_from_args, optimiser_args

SYNTHETIC = "synthetic:"
SYNTHETIC_SIZE = 400  # examples drawn for a synthetic task (seeded): the pool the splits come from


def add_parsers(sub) -> None:
    from ..lm.task import DEFAULT_TEMPLATE

    for name, help_ in (("lm-tune", "learn a prompt that makes a causal LM classify (paper Sec. 5)"),
                        ("lm-eval", "score prompts (and the empty template) on a causal LM: transfer")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("data", help="a .csv / .jsonl of (text, label), or synthetic:QUESTION (toy task)")
        p.add_argument("--model", default="toy_lm_small", help="a transformers folder of a causal LM, or "
                                                               "toy_lm_small / toy_lm_large (default: %(default)s)")
        p.add_argument("--template", dest="lm_template", default=DEFAULT_TEMPLATE, help="with {text} and a final {mask}; AG News: "
                                                                    "'{text} It was about {mask}' (default: %(default)s)")
        p.add_argument("--verbalizer", default=None, metavar="LABEL=WORD,...",
                       help="one single-token word per label (default for synthetic tasks: no=no,yes=yes)")
        p.add_argument("--validation", type=Path, default=None, help="accuracy on this file too")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps (default: %(default)s)")
        p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        if name == "lm-eval":
            p.add_argument("--prompt", action="append", default=[], help="a prompt to score (repeatable); the empty "
                                                                         "template is always scored")
            continue
        p.add_argument("--few-shot", type=int, default=None, metavar="K",
                       help="train on K examples per class and select on K others (the paper's k = 2, 4)")
        p.add_argument("--holdout", type=Path, default=None, help="select the prompt on this file (default: "
                                                                  "--few-shot's draw, else 20%% of DATA)")
        p.add_argument("--vocabulary", choices=("full", "declared"), default="full",
                       help="tokens the prompt may use: every token, or the words of the model folder's "
                            "pez_vocabulary.txt (default: %(default)s)")
        optimiser_args(p, own={"steps": 300, "prompt_len": 8}, paper=False)  # the paper's Sec. 5 runs, on a small LM


def _data(source: str, seed: int = 0):
    from ..lm import synthetic
    from ..lm.task import read_examples

    if source.startswith(SYNTHETIC):
        return synthetic.examples(source[len(SYNTHETIC):].strip(), SYNTHETIC_SIZE, seed=seed)
    return read_examples(source)


def _task(args):
    from ..lm import synthetic
    from ..lm.task import Task, parse_verbalizer

    spec = args.verbalizer
    if spec is None:
        if not args.data.startswith(SYNTHETIC):
            raise ValueError("--verbalizer is required for a data file: one word per label, e.g. "
                             "--verbalizer negative=bad,positive=good.")
        return Task(args.lm_template, dict(synthetic.VERBALIZER))
    return Task(args.lm_template, parse_verbalizer(spec))


def split(examples, few_shot: int | None, seed: int, has_holdout: bool, what: str = "the data"):
    """(train, holdout, rest): K per class each with ``few_shot``; else 80 / 20 (no holdout when one is given).

    ``what`` names the data in the errors (e.g. ``"data 'reviews.csv'"``).
    """
    rng = random.Random(seed)
    pool = list(examples)
    rng.shuffle(pool)
    if few_shot is None:
        if has_holdout:
            return pool, [], []
        if len(pool) < 2:
            raise ValueError(f"{what} has {len(pool)} example; without --holdout at least 2 are needed (4 in 5 "
                             "train the prompt, 1 in 5 picks it): add rows, or give --holdout FILE.")
        cut = max(1, len(pool) // 5)
        return pool[cut:], pool[:cut], []
    if few_shot < 1:
        raise ValueError(f"--few-shot {few_shot} must be 1 or more examples per class.")
    train, holdout, rest = [], [], []
    taken: dict[str, int] = {}
    for e in pool:
        n = taken.get(e.label, 0)
        (train if n < few_shot else holdout if n < 2 * few_shot and not has_holdout else rest).append(e)
        taken[e.label] = n + 1
    short = sorted(label for label, n in taken.items() if n < few_shot * (1 if has_holdout else 2))
    if short:
        raise ValueError(f"--few-shot {few_shot} needs {few_shot * (1 if has_holdout else 2)} examples of each class; "
                         f"labels {short} have fewer in {what}.")
    return train, holdout, rest


def _labelled(task, source, what: str, seed: int = 0) -> list:
    """The examples of ``source``, their labels checked against the verbalizer (before any model loads)."""
    examples = _data(str(source), seed)
    task.check_labels(examples, what)
    return examples


def run_lm(args: argparse.Namespace) -> dict:
    """Every input is read and checked (data, template, verbalizer, labels, splits, settings) before the LM loads."""
    import torch

    from ..lm.load import load_lm
    from ..lm.objective import accuracy

    if args.threads:
        torch.set_num_threads(args.threads)
    task = _task(args)
    data = _labelled(task, args.data, f"data {args.data!r}", getattr(args, "seed", 0))
    validation = _labelled(task, args.validation, f"--validation {str(args.validation)!r}") if args.validation else None
    if args.command == "lm-eval":
        lm = load_lm(args.model, device=args.device, vocabulary="full")
        judge = validation or data
        rows = [{"prompt": p, "accuracy": accuracy(lm, task, p, judge)} for p in ["", *args.prompt]]
        return {"model": lm.name, "examples": len(judge), "rows": rows}
    holdout = _labelled(task, args.holdout, f"--holdout {str(args.holdout)!r}") if args.holdout else []
    train, drawn, rest = split(data, args.few_shot, args.seed, bool(args.holdout), f"data {args.data!r}")
    config = config_from_args(args)
    config.validate(1 << 20)  # bad numbers before the LM loads; tune() checks prompt_len against its window
    lm = load_lm(args.model, device=args.device, vocabulary=args.vocabulary)
    return _tune(args, lm, task, train, holdout or drawn, validation or rest, config)


def _tune(args, lm, task, train, holdout, validation, config) -> dict:
    from ..lm.objective import accuracy
    from ..lm.tune import tune

    bar = ProgressBar(not args.quiet, label="p(right)")
    previous = signal.signal(signal.SIGINT, bar.interrupt)
    try:
        result = tune(lm, task, train, holdout, config, bar)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    out = result.to_dict()
    out.update(train_examples=len(train), holdout_examples=len(holdout),
               validation_accuracy=accuracy(lm, task, result.prompt, validation) if validation else None,
               template_validation_accuracy=accuracy(lm, task, "", validation) if validation else None)
    if bar.stop:  # the loop reports "callback"; on the command line that is Ctrl-C
        out["stop_reason"] = "interrupted"
    out["candidates"] = out["candidates"][: max(1, args.top_k)]
    return out


def print_lm(out: dict, command: str) -> None:
    if command == "lm-eval":
        for row in out["rows"]:
            print(f"{row['accuracy']:.3f}  {row['prompt'] or '(empty template)'}")
        print(f"accuracy on {out['examples']} examples, model {out['model']}", file=sys.stderr)
        return
    print(out["prompt"])
    parts = [f"train {out['train_accuracy']:.3f}"]
    if out["holdout_accuracy"] is not None:
        parts.append(f"holdout {out['holdout_accuracy']:.3f}")
    if out["validation_accuracy"] is not None:
        parts.append(f"validation {out['validation_accuracy']:.3f} (empty template {out['template_validation_accuracy']:.3f})")
    stopped = "  (stopped: no gain for --patience steps)" if out["stop_reason"] == "patience" else ""
    parts.append(f"perplexity {out['perplexity']:.1f}  steps {out['steps']}{stopped}  {out['seconds']:.1f}s")
    print("accuracy " + "  ".join(parts), file=sys.stderr)
