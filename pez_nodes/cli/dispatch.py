"""``pez``: the command line front end over ``pez_nodes.core`` — its parser and the dispatch to a command.

    pez demo                                   # draw a toy-world picture, invert it, generate from the prompt
    pez invert photo.png --model toy --steps 500
    pez distill "a long prompt ..." --prompt-len 8
    pez concat "prompt one" "prompt two"
    pez eval targets/                          # the paper's metric: generate from the prompts, score (eval_cmd.py)
    pez batch photos/ --sidecar                # one prompt per image, resumable prompts.jsonl (batch_cmd.py)
    pez lm-tune synthetic:outdoors             # a prompt that makes a causal LM classify (paper Sec. 5; lm_cmd.py)
    pez lm-eval synthetic:outdoors --model toy_lm_large --prompt "..."   # the prompt on another LM (transfer)

The progress bar and live best prompt go to stderr; the result to stdout (one JSON object with
``--json``). Every error is one line on stderr and exit status 2; Ctrl-C exits 130 (after printing
the best prompt so far when the optimisation had started).

Each family of commands is one module: ``prompt_cmd.py`` (invert, distill, concat, demo), ``eval_cmd.py``,
``lm_cmd.py``, ``batch_cmd.py``; what they share (flags, config, progress bar, exit codes) is ``common.py``.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import batch_cmd, eval_cmd, lm_cmd, prompt_cmd
from .common import EXIT_ERROR, EXIT_INTERRUPTED, check_args, resolve_task_defaults


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line like every other error; the usage is one --help away
        self.exit(EXIT_ERROR, f"pez: error: {message} (see '{self.prog} --help').\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pez", description="PEZ: learn hard text prompts for CLIP by gradient descent.")
    sub = parser.add_subparsers(dest="command", required=True)
    prompt_cmd.add_parsers(sub)  # invert, distill, concat, demo
    eval_cmd.add_parser(sub)
    lm_cmd.add_parsers(sub)  # lm-tune, lm-eval
    batch_cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:  # everything, torch's import included: an early Ctrl-C is one line too
        args = resolve_task_defaults(build_parser().parse_args(argv))
        if args.command == "eval":
            eval_cmd.resolve_model(args)
        if args.command == "batch":
            return _batch(args)
        lm_command = args.command.startswith("lm-")
        if lm_command:
            out = lm_cmd.run_lm(args)
        else:
            check_args(args)  # a CLIP command's flags, refused before any model loads
            if args.command == "eval":
                eval_cmd.eval_inputs(args)  # its images folder, --prompts and generation settings
                out = eval_cmd.run(args)
            else:
                out = prompt_cmd.run(args)
        if args.json:
            print(json.dumps(out))
        elif args.command == "eval":
            return 0
        elif lm_command:
            lm_cmd.print_lm(out, args.command)
        else:
            for note in out["notes"]:
                print(f"note: {note}", file=sys.stderr)
            print(out["prompt"])
            fluency = f"  perplexity {out['perplexity']:.1f}" if "perplexity" in out else ""
            print(f"similarity {out['similarity']:.4f}{fluency}  steps {out['steps']}  {out['seconds']:.1f}s", file=sys.stderr)
            if "picture" in out:
                print(f"generated from the prompt: similarity to the drawn picture {out['generated_similarity']:.4f} "
                      f"(reference CLIP); target | generated saved to {out['picture']}")
            elif "generation" in out:
                print(f"note: generation {out['generation']}", file=sys.stderr)
        if out.get("stop_reason") != "interrupted":
            return 0
        print(f"pez: interrupted at step {out['steps']}; printed the best prompt so far.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("pez: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - whatever the core or torch raises, the user gets one line
        if _caused_by_interrupt(e):  # a Ctrl-C during an import can come back wrapped (e.g. in a RuntimeError)
            print("pez: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        name = "" if isinstance(e, (ValueError, OSError)) else f"{type(e).__name__}: "  # ours say what to do
        text = next((line.strip() for line in str(e).splitlines() if line.strip()), "(no message)")
        print(f"pez: error: {name}{text[:300]}", file=sys.stderr)
        return EXIT_ERROR


def _batch(args: argparse.Namespace) -> int:
    counts = batch_cmd.run_batch(args)
    print(json.dumps(counts)) if args.json else batch_cmd.print_counts(counts)
    if counts.get("stopped"):
        print("pez: interrupted; finished images are in the journal, run again to go on.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _caused_by_interrupt(error: BaseException | None) -> bool:
    for _ in range(10):
        if error is None:
            return False
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__cause__ or error.__context__
    return False

