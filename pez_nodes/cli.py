"""``pez``: the command line front end over ``pez_nodes.core``.

    pez demo                                   # draw a toy-world picture, invert it with the bundled model
    pez invert photo.png --model toy --steps 500
    pez distill "a long prompt ..." --prompt-len 8
    pez concat "prompt one" "prompt two"

The progress bar and live best prompt go to stderr; the result to stdout (one JSON object with
``--json``). Every error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

EXIT_ERROR = 2


def _common(p: argparse.ArgumentParser, default_model: str) -> None:
    from .core import PEZConfig

    d = PEZConfig()
    p.add_argument("--model", default=default_model,
                   help="'toy' (bundled), an open_clip name (ViT-L-14 = SD 1.5's CLIP), hf-hub:org/repo, "
                        "local-dir:/path or a folder (default: %(default)s)")
    p.add_argument("--pretrained", default=None,
                   help="pretrained tag or .safetensors file for an open_clip name (ViT-L-14 default: openai)")
    p.add_argument("--prompt-len", type=int, default=d.prompt_len, help="learned tokens (default: %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="optimisation steps (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay (default: %(default)s)")
    p.add_argument("--restarts", type=int, default=d.restarts, help="prompts optimised together (default: %(default)s)")
    p.add_argument("--targets-per-step", type=int, default=None, help="targets sampled per step (default: all)")
    p.add_argument("--patience", type=int, default=d.patience,
                   help="stop after this many steps without improvement (0: never; default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N, mps (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--top-k", type=int, default=1, help="also list the K best distinct prompts (JSON: candidates)")
    g = p.add_argument_group("vocabulary")
    g.add_argument("--blocklist", action="append", default=[], metavar="WORD[,WORD...]",
                   help="words that must never appear (whole words; repeatable)")
    g.add_argument("--blocklist-substring", action="store_true", help="block every token containing a blocked word")
    g.add_argument("--allowlist", type=Path, default=None, metavar="FILE", help="use only these words (one a line)")
    g.add_argument("--ascii-only", action="store_true", help="no emoji or non-Latin tokens")
    g = p.add_argument_group("targets and template")
    g.add_argument("--text", dest="extra_text", action="append", default=[], metavar="TEXT",
                   help="add a text target (repeatable)")
    g.add_argument("--negative-image", action="append", default=[], metavar="IMAGE",
                   help="an image the prompt must not match (repeatable)")
    g.add_argument("--negative-text", action="append", default=[], metavar="TEXT",
                   help="a text the prompt must not match (repeatable)")
    g.add_argument("--negative-weight", type=float, default=0.5,
                   help="the negatives' total weight as a share of the positives' (0..1, default: %(default)s)")
    g.add_argument("--template", default=None, help="learn only inside a template, e.g. 'a photo of {} in the style of {}'")
    g.add_argument("--slot-len", type=int, default=None, help="tokens per template slot (default: --prompt-len)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from .core import DEFAULT_MODEL

    parser = argparse.ArgumentParser(prog="pez", description="PEZ: learn hard text prompts for CLIP by gradient descent.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("invert", help="learn a prompt for one or more images (several: their shared style)")
    p.add_argument("images", nargs="+", help="image files")
    _common(p, DEFAULT_MODEL)
    p = sub.add_parser("distill", help="learn a short prompt with the meaning of a long one")
    p.add_argument("text", help="the prompt to distill")
    _common(p, DEFAULT_MODEL)
    p = sub.add_parser("concat", help="one prompt that composes two or more prompts")
    p.add_argument("texts", nargs="+", help="two or more prompts")
    _common(p, DEFAULT_MODEL)
    p = sub.add_parser("demo", help="invert a toy-world picture with the bundled model (no download)")
    p.add_argument("--save", type=Path, default=None, help="also save the drawn picture here")
    _common(p, "toy")
    p.set_defaults(steps=300, restarts=4, prompt_len=8)
    return parser


class ProgressBar:
    """One stderr line: step counter, bar, best similarity and the live best prompt.

    As the core's callback it also asks to stop after the first Ctrl-C, so the best prompt so far
    is still printed; a second Ctrl-C aborts.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr is not None
        self.last = 0.0
        self.started = time.perf_counter()
        self.stop = False

    def interrupt(self, signum, frame) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __call__(self, step: int, total: int, text: str, sim: float) -> bool:
        now = time.perf_counter()
        tty = sys.stderr.isatty()
        due = (now - self.last >= 0.1) if tty else (step * 10 // total != (step - 1) * 10 // total)
        if not self.enabled or not (due or step == total):
            return self.stop
        self.last = now
        width = 20
        done = int(width * step / total)
        rate = step / max(now - self.started, 1e-9)
        line = f"{step:>5}/{total} [{'#' * done}{'.' * (width - done)}] {rate:5.1f} it/s  sim {sim:.4f}  {text}"
        if tty:  # redraw one line in place
            sys.stderr.write("\r" + line[: _columns()] + "\x1b[K")
        else:  # a log file gets a line per 10 %
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        return self.stop

    def close(self) -> None:
        if self.enabled and sys.stderr.isatty():
            sys.stderr.write("\n")
            sys.stderr.flush()


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns - 1
    except (OSError, ValueError):
        return 200


def run(args: argparse.Namespace) -> dict:
    import torch

    from . import core

    if args.threads:
        torch.set_num_threads(args.threads)
    allowlist = None
    if args.allowlist is not None:
        if not args.allowlist.is_file():
            raise ValueError(f"allowlist {str(args.allowlist)!r} does not exist; give a text file with one word a line.")
        allowlist = tuple(args.allowlist.read_text(encoding="utf-8").split())
    config = core.PEZConfig(prompt_len=args.prompt_len, steps=args.steps, lr=args.lr, weight_decay=args.weight_decay,
                            restarts=args.restarts, targets_per_step=args.targets_per_step, seed=args.seed,
                            patience=args.patience, device=args.device, top_k=args.top_k,
                            blocklist=tuple(w for item in args.blocklist for w in item.split(",") if w.strip()),
                            blocklist_substring=args.blocklist_substring, allowlist=allowlist,
                            ascii_only=args.ascii_only, template=args.template, slot_len=args.slot_len)
    max_len = 75
    config.validate(max_len)  # fail on bad numbers before a model download
    extra: dict = {}
    if args.command == "demo":
        import random

        from . import toyworld

        scene = toyworld.random_scene(random.Random(args.seed))
        image = toyworld.render(scene, size=256, seed=args.seed)
        if args.save:
            image.save(args.save)
        extra = {"image_words": list(scene.words), "image_caption": scene.caption}
        if not args.json:
            print(f"drew: {scene.caption}" + (f"  (saved to {args.save})" if args.save else ""))
    model = core.load_clip(args.model, args.pretrained, device=args.device)
    bar = ProgressBar(not args.quiet)
    previous = signal.signal(signal.SIGINT, bar.interrupt)
    negatives = [Path(i) for i in args.negative_image] + list(args.negative_text)
    try:
        if args.command == "concat":
            if args.extra_text or negatives:
                raise ValueError("concat takes no --text/--negative-* targets; use distill or invert for those.")
            result = core.concat(model, args.texts, config, bar)
        else:
            if args.command == "invert":
                main_targets = [core.Target(image=i) for i in args.images]
            elif args.command == "demo":
                main_targets = [core.Target(image=image)]
            else:
                main_targets = [core.Target(text=args.text)]
            main_targets += [core.Target(text=t) for t in args.extra_text]
            targets = core.with_negatives(main_targets, negatives, args.negative_weight)
            result = core.optimize(model, targets, config, bar)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    out = {"prompt": result.text, "similarity": round(result.similarity, 6), "steps": result.steps,
           "seconds": round(result.seconds, 3), "stop_reason": result.stop_reason, "model": result.model,
           "token_ids": result.token_ids, "notes": result.notes, **extra}
    if config.top_k > 1:
        out["candidates"] = [{"prompt": c.text, "similarity": round(c.similarity, 6)} for c in result.candidates]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        out = run(args)
    except KeyboardInterrupt:
        print("pez: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        print(f"pez: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(out))
    else:
        for note in out["notes"]:
            print(f"note: {note}", file=sys.stderr)
        print(out["prompt"])
        print(f"similarity {out['similarity']:.4f}  steps {out['steps']}  {out['seconds']:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
