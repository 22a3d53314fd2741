"""``pez``: the command line front end over ``pez_nodes.core``.

    pez demo                                   # draw a toy-world picture, invert it, generate from the prompt
    pez invert photo.png --model toy --steps 500
    pez distill "a long prompt ..." --prompt-len 8
    pez concat "prompt one" "prompt two"
    pez eval targets/                          # the paper's metric: generate from the prompts, score (cli_eval.py)
    pez batch photos/ --sidecar                # one prompt per image, resumable prompts.jsonl (cli_batch.py)
    pez lm-tune synthetic:outdoors             # a prompt that makes a causal LM classify (paper Sec. 5; cli_lm.py)
    pez lm-eval synthetic:outdoors --model toy_lm_large --prompt "..."   # the prompt on another LM (transfer)

The progress bar and live best prompt go to stderr; the result to stdout (one JSON object with
``--json``). Every error is one line on stderr and exit status 2; Ctrl-C exits 130 (after printing
the best prompt so far when the optimisation had started).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import signal
import sys
import time
import warnings
from pathlib import Path

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
DEVICES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _common(p: argparse.ArgumentParser, default_model: str) -> None:
    model_args(p, default_model)
    optimiser_args(p)
    _fluency_and_targets(p)


def model_args(p: argparse.ArgumentParser, default_model: str) -> None:
    """Which CLIP to load and where to run it (every command that loads a CLIP)."""
    from ..core import PEZConfig, load_clip
    from ..core import ACTIVATIONS
    from ..core import VOCABULARIES

    d, load = PEZConfig(), inspect.signature(load_clip).parameters  # the core's defaults are the CLI's
    p.add_argument("--model", default=default_model,
                   help="'toy' (bundled), an open_clip name (ViT-L-14 = SD 1.5's CLIP), hf-hub:org/repo, "
                        "local-dir:/path or a folder (default: %(default)s)")
    p.add_argument("--pretrained", default=None,
                   help="pretrained tag or .safetensors file for an open_clip name (ViT-L-14 default: openai)")
    p.add_argument("--activation", choices=ACTIVATIONS, default=load["activation"].default,
                   help="the MLP activation the weights were trained with; auto decides from the model's config or "
                        "weights (default: %(default)s)")
    p.add_argument("--vocabulary", choices=VOCABULARIES, default=load["vocabulary"].default,
                   help="tokens PEZ may use: every token, or only the words of the model folder's "
                        "pez_vocabulary.txt (default: %(default)s)")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N, mps (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def _fluency_and_targets(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fluency (prompts that read as language)")
    g.add_argument("--fluency-lm", default=None, metavar="PATH",
                   help="the --fluency LM: a causal LM on CLIP's tokenizer (a transformers folder, or toy_lm_small / "
                        "toy_lm_large; default with --model toy: toy_lm_small)")
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


def optimiser_args(p: argparse.ArgumentParser) -> None:
    """The settings of the loop itself, shared by every command that learns a prompt (CLIP or LM)."""
    from ..core import PEZConfig
    from ..core import METHODS

    d = PEZConfig()
    p.add_argument("--prompt-len", type=int, default=d.prompt_len, help="learned tokens (default: %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="optimisation steps (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay (default: %(default)s)")
    p.add_argument("--restarts", type=int, default=d.restarts, help="prompts optimised together (default: %(default)s)")
    p.add_argument("--targets-per-step", type=int, default=d.targets_per_step,
                   help="targets sampled per step (default: all)")
    p.add_argument("--patience", type=int, default=d.patience,
                   help="stop after this many steps without improvement (0: never; default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=d.top_k, help="also list the K best distinct prompts (JSON: candidates)")
    g = p.add_argument_group("method (the paper's baselines)")
    g.add_argument("--method", choices=METHODS, default=d.method,
                   help="pez (Algorithm 1), autoprompt_sgd, fluentprompt, soft (projected once at the end) or "
                        "greedy_bank (append bank phrases; --prompt-len is its token budget) (default: %(default)s)")
    g.add_argument("--beta", type=float, default=d.beta, help="fluentprompt: initial Langevin temperature "
                                                            "(default: %(default)s; 0 = autoprompt_sgd)")
    g.add_argument("--beta-end", type=float, default=d.beta_end, help="fluentprompt: final temperature (default: %(default)s)")
    g.add_argument("--bank", type=Path, default=None, metavar="FILE",
                   help="greedy_bank: phrases to append, one a line (default: the model's pez_vocabulary.txt)")
    g.add_argument("--fluency", type=float, default=d.fluency, metavar="LAMBDA",
                   help="weight of a language model's cross-entropy over the prompt, for prompts that read as "
                        "language (paper: 0.003; 0: off; default: %(default)s)")
    g = p.add_argument_group("vocabulary")
    g.add_argument("--blocklist", action="append", default=[], metavar="WORD[,WORD...]",
                   help="words that must never appear (whole words; repeatable)")
    g.add_argument("--blocklist-substring", action="store_true", help="block every token containing a blocked word")
    g.add_argument("--allowlist", type=Path, default=None, metavar="FILE", help="use only these words (one a line)")
    g.add_argument("--ascii-only", action="store_true", help="no emoji or non-Latin tokens")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line like every other error; the usage is one --help away
        self.exit(EXIT_ERROR, f"pez: error: {message} (see '{self.prog} --help').\n")


def build_parser() -> argparse.ArgumentParser:
    from ..core import DEFAULT_MODEL

    parser = _Parser(prog="pez", description="PEZ: learn hard text prompts for CLIP by gradient descent.")
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
    p = sub.add_parser("demo", help="invert a toy-world picture with the bundled model, generate from the prompt "
                                    "(no download)")
    p.add_argument("--save", type=Path, default=None, help="also save the drawn picture here")
    _common(p, "toy")
    p.set_defaults(steps=300, prompt_len=8)  # a quick demo; everything else is PEZConfig's default
    from . import eval_cmd

    eval_cmd.add_parser(sub)
    _common(sub.choices["eval"], "toy")
    sub.choices["eval"].set_defaults(steps=300, prompt_len=8)  # the toy world needs no more; paper: 3000 and 16
    from . import batch_cmd, lm_cmd

    lm_cmd.add_parsers(sub, optimiser_args)
    batch_cmd.add_parser(sub, model_args, optimiser_args)
    return parser


class ProgressBar:
    """One stderr line: step counter, bar, best similarity and the live best prompt.

    As the core's callback it also asks to stop after the first Ctrl-C, so the best prompt so far
    is still printed; a second Ctrl-C aborts.
    """

    def __init__(self, enabled: bool, label: str = "sim"):
        self.enabled = enabled and sys.stderr is not None
        self.label = label
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
        due = (now - self.last >= 0.1) if tty else (step == 1 or step * 10 // total != (step - 1) * 10 // total)
        if not self.enabled or not (due or step == total):
            return self.stop
        self.last = now
        width = 20
        done = int(width * step / total)
        rate = step / max(now - self.started, 1e-9)
        line = f"{step:>5}/{total} [{'#' * done}{'.' * (width - done)}] {rate:5.1f} it/s  {self.label} {sim:.4f}  {text}"
        if tty:  # redraw one line in place
            sys.stderr.write("\r" + line[: _columns()] + "\x1b[K")
        else:  # a log file gets a line at the start and per 10 %
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


def check_args(args: argparse.Namespace) -> None:
    """Refuse, before any model is loaded, what would fail late, cryptically or be silently ignored."""
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads {args.threads} is not a thread count; give 1 or more, or leave it out.")
    if not DEVICES.fullmatch(args.device.strip().lower()):
        raise ValueError(f"--device {args.device!r} cannot run PEZ; use auto, cpu, cuda, cuda:N or mps.")
    model = args.model.strip()
    if args.pretrained is not None and (model == "toy" or model.startswith(("local-dir:", "hf-hub:"))
                                        or Path(model).expanduser().is_dir()):
        raise ValueError(f"--pretrained is only for an open_clip model name such as ViT-L-14; model {model!r} "
                         "brings its own weights, so drop --pretrained.")
    files = [("image", i, "an image file") for i in [*getattr(args, "images", []), *args.negative_image]]
    files += [("allowlist", args.allowlist, "a text file with one word a line"),
              ("--save", getattr(args, "save", None), "a file name such as picture.png")]
    for what, path, fix in files:
        if path is not None and Path(path).expanduser().is_dir():
            raise ValueError(f"{what} {str(path)!r} is a directory; give {fix}.")
    if args.command == "eval":  # its images folder, --prompts and generation settings
        from .eval_cmd import eval_inputs

        eval_inputs(args)


def check_device(name: str) -> None:
    """The device checks torch itself does not do up front (PEZ only runs on cpu, cuda:N and mps)."""
    import torch

    name = name.strip().lower()
    if name.startswith("cuda:") and torch.cuda.is_available() and int(name[5:]) >= torch.cuda.device_count():
        last = torch.cuda.device_count() - 1
        raise ValueError(f"--device {name} does not exist; this machine has cuda:0 to cuda:{last}.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps was asked for but MPS is not available here; use --device cpu.")


def config_from_args(args: argparse.Namespace):
    """The ``PEZConfig`` of ``optimiser_args``' flags (files read here; each bad one is one clear error)."""
    from ..core import PEZConfig

    allowlist = None
    if args.allowlist is not None:
        if not args.allowlist.is_file():
            raise ValueError(f"allowlist {str(args.allowlist)!r} does not exist; give a text file with one word a line.")
        allowlist = tuple(args.allowlist.read_text(encoding="utf-8").split())
    bank = None
    if args.bank is not None:
        if not args.bank.is_file():
            raise ValueError(f"bank {str(args.bank)!r} does not exist; give a text file with one phrase a line.")
        bank = args.bank.read_text(encoding="utf-8")
    return PEZConfig(prompt_len=args.prompt_len, steps=args.steps, lr=args.lr, weight_decay=args.weight_decay,
                     restarts=args.restarts, targets_per_step=args.targets_per_step, seed=args.seed,
                     patience=args.patience, device=args.device, top_k=args.top_k,
                     blocklist=tuple(w for item in args.blocklist for w in item.split(",") if w.strip()),
                     blocklist_substring=args.blocklist_substring, allowlist=allowlist, ascii_only=args.ascii_only,
                     template=getattr(args, "template", None), slot_len=getattr(args, "slot_len", None),
                     method=args.method, beta=args.beta, beta_end=args.beta_end, bank=bank, fluency=args.fluency)


def run(args: argparse.Namespace) -> dict:
    import torch

    from .. import core

    check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    max_len = 75
    config.validate(max_len)  # fail on bad numbers before a model download
    extra: dict = {}
    if args.command == "demo":
        import random

        from .. import toyworld

        scene = toyworld.random_scene(random.Random(args.seed))
        image = toyworld.render(scene, size=256, seed=args.seed)
        if args.save:
            image.save(args.save)
        extra = {"image_words": list(scene.words), "image_caption": scene.caption}
        if not args.json:
            print(f"drew: {scene.caption}" + (f"  (saved to {args.save})" if args.save else ""))
    fluency_lm = _fluency_lm(args) if config.fluency else None  # before the CLIP: its errors come first
    with warnings.catch_warnings():  # a guessed activation is a warning in Python; here it is a "note:" line
        warnings.simplefilter("ignore", UserWarning)
        model = core.load_clip(args.model, args.pretrained, device=args.device, activation=args.activation,
                               vocabulary=args.vocabulary)
    if args.command == "eval":
        from .eval_cmd import run_eval

        return run_eval(args, model, config, fluency_lm)
    bar = ProgressBar(not args.quiet)
    previous = signal.signal(signal.SIGINT, bar.interrupt)
    negatives = [Path(i) for i in args.negative_image] + list(args.negative_text)
    try:
        if args.command == "concat":
            if args.extra_text or negatives:
                raise ValueError("concat takes no --text/--negative-* targets; use distill or invert for those.")
            result = core.concat(model, args.texts, config, bar, fluency_lm=fluency_lm)
        else:
            if args.command == "invert":
                main_targets = [core.Target(image=i) for i in args.images]
            elif args.command == "demo":
                main_targets = [core.Target(image=image)]
            else:
                main_targets = [core.Target(text=args.text)]
            main_targets += [core.Target(text=t) for t in args.extra_text]
            targets = core.with_negatives(main_targets, negatives, args.negative_weight)
            result = core.optimize(model, targets, config, bar, fluency_lm=fluency_lm)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    out = {"prompt": result.text, "similarity": round(result.similarity, 6), "steps": result.steps,
           "seconds": round(result.seconds, 3), "stop_reason": "interrupted" if bar.stop else result.stop_reason,
           "model": result.model, "method": result.method, "token_ids": result.token_ids, "notes": result.notes, **extra}
    if result.perplexity is not None:
        out["perplexity"] = round(result.perplexity, 3)
    if config.top_k > 1:
        out["candidates"] = [{"prompt": c.text, "similarity": round(c.similarity, 6)} for c in result.candidates]
    if args.command == "demo" and not bar.stop:
        from .eval_cmd import demo_generation

        out.update(demo_generation(image, result.text, args.seed, args.save))
    return out


def _fluency_lm(args: argparse.Namespace):
    """The fluency term's LM: ``--fluency-lm``, or the toy world's own for the bundled toy model."""
    from ..lm.load import default_fluency_lm, load_lm

    source = args.fluency_lm or default_fluency_lm(args.model.strip())
    if source is None:
        raise ValueError(f"--fluency {args.fluency} needs --fluency-lm PATH: a causal LM trained on CLIP's tokenizer "
                         "(a transformers folder).")
    return load_lm(source, device=args.device)


def main(argv: list[str] | None = None) -> int:
    try:  # everything, torch's import included: an early Ctrl-C is one line too
        args = build_parser().parse_args(argv)
        lm_command = args.command.startswith("lm-")
        if lm_command:
            from .lm_cmd import print_lm, run_lm
        elif args.command == "batch":
            return _batch(args)
        else:
            check_args(args)
        out = run_lm(args) if lm_command else run(args)
        if args.json:
            print(json.dumps(out))
        elif args.command == "eval":
            return 0
        elif lm_command:
            print_lm(out, args.command)
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
    from .batch_cmd import print_counts, run_batch

    counts = run_batch(args)
    print(json.dumps(counts)) if args.json else print_counts(counts)
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

