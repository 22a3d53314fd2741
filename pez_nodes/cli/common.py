"""What every ``pez`` command shares: the model and optimiser flags and their ``PEZConfig``, the up-front
argument check, the set-up before a CLIP command's work, the progress bar and the exit codes.

Every command module imports this one; it imports none of them (nor ``dispatch``), and the core only through
``pez_nodes.core``'s public names, inside the functions that need it (``import pez_nodes.cli`` loads no torch).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
import warnings
from pathlib import Path

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
CLIP_PROMPT_TOKENS = 75  # CLIP's 77-token context less its start and end tokens
GUIDED_FLAGS = ("beams", "candidates", "lm_weight", "start_text", "instruction")  # guided_args' PEZConfig fields
GENERATOR_CLIP = "the generator's CLIP: toy for the toy generator, else ViT-L-14"  # pez eval's --model
COMMAND_TASK = {"distill": "distill", "concat": "concat"}  # every other command learns a prompt for images


def clip_args(p: argparse.ArgumentParser, default_model: str | None, own: dict | None = None) -> None:
    """Every flag of a command that learns a prompt against a CLIP (invert, distill, concat, demo, eval)."""
    model_args(p, default_model)
    optimiser_args(p, own)
    paper_arg(p)
    fluency_and_target_args(p)
    guided_args(p)


def model_args(p: argparse.ArgumentParser, default_model: str | None) -> None:
    """Which CLIP to load and where to run it (every command that loads a CLIP)."""
    from ..core import ACTIVATIONS, VOCABULARIES, PEZConfig, load_clip

    d, load = PEZConfig(), inspect.signature(load_clip).parameters  # the core's defaults are the CLI's
    p.add_argument("--model", default=default_model,
                   help="'toy' (bundled), an open_clip name (ViT-L-14 = SD 1.5's CLIP), hf-hub:org/repo, "
                        "local-dir:/path or a folder (default: "
                        f"{default_model or GENERATOR_CLIP})")
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


def fluency_and_target_args(p: argparse.ArgumentParser) -> None:
    """The fluency LM, the extra and negative targets, the template and ``--json`` (the CLIP commands)."""
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


def guided_args(p: argparse.ArgumentParser) -> None:
    """``--method guided``: the LM that writes the prompt and the beam search's settings (the CLIP commands)."""
    from ..core import PEZConfig

    d = PEZConfig()
    g = p.add_argument_group("guided decoding (--method guided: a language model writes the prompt, CLIP chooses)")
    g.add_argument("--lm", default=None, metavar="PATH",
                   help="the LM: a local transformers folder (GPT-2, Llama, Qwen, Mistral ...) or toy_lm_small / "
                        "toy_lm_large (default with --model toy: toy_lm_small)")
    g.add_argument("--beams", type=int, default=d.beams, help="beams kept (default: %(default)s)")
    g.add_argument("--candidates", type=int, default=d.candidates,
                   help="continuations each beam proposes per token (default: %(default)s)")
    g.add_argument("--lm-weight", type=float, default=d.lm_weight,
                   help="weight of the LM's mean log-probability against CLIP's similarity (default: %(default)s)")
    g.add_argument("--start-text", default=None, metavar="TEXT", help="words every prompt starts with")
    g.add_argument("--instruction", default=None, metavar="TEXT",
                   help="what the LM reads first, not part of the prompt (an instruction-tuned LM's request)")


def optimiser_args(p: argparse.ArgumentParser, own: dict | None = None, paper: bool = True) -> None:
    """The settings of the loop itself, shared by every command that learns a prompt (CLIP or LM).

    ``--prompt-len``, ``--steps``, ``--restarts``, ``--patience`` stay None until ``resolve_task_defaults`` fills
    them: from the command's ``own`` defaults (the demo's and the LM commands' ``prompt_len`` / ``steps``), else its
    task's, or with ``--paper`` (``paper_arg``; ``paper``: whether the command has it) the paper's.
    """
    from ..core import METHODS, PAPER, TASK_PROMPT_LEN, PEZConfig

    d, own = PEZConfig(), own or {}
    p.set_defaults(own_defaults=own)
    tasks = f"{TASK_PROMPT_LEN['invert']} for images and concat, {TASK_PROMPT_LEN['distill']} for distill"

    def shown(key, default):
        return f"(default: {default}" + (f"; --paper: {PAPER[key]})" if paper else ")")

    p.add_argument("--prompt-len", type=int, default=None,
                   help=f"learned tokens {shown('prompt_len', own.get('prompt_len', tasks))}")
    p.add_argument("--steps", type=int, default=None,
                   help=f"most optimisation steps {shown('steps', own.get('steps', d.steps))}")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay (default: %(default)s)")
    p.add_argument("--restarts", type=int, default=None,
                   help=f"prompts optimised together {shown('restarts', d.restarts)}")
    p.add_argument("--targets-per-step", type=int, default=d.targets_per_step,
                   help="targets sampled per step (default: all)")
    p.add_argument("--patience", type=int, default=None,
                   help=f"stop after this many steps without a better prompt, 0: never {shown('patience', d.patience)}")
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

    def should_stop(self) -> bool:
        """A Ctrl-C was pressed: checked by the core after every step, without waiting for the GPU."""
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
    """Refuse, before any model is loaded, what would fail late, cryptically or be silently ignored.

    The CLIP commands' shared flags; ``main`` adds a command's own checks (``pez eval``'s inputs).
    """
    from ..core import check_device_name

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads {args.threads} is not a thread count; give 1 or more, or leave it out.")
    check_device_name(args.device)
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


def paper_arg(p: argparse.ArgumentParser) -> None:
    """``--paper``: the paper's settings where no flag names others (``core.defaults.PAPER``)."""
    p.add_argument("--paper", action="store_true",
                   help="the paper's settings: 16 tokens, 3000 steps, one restart, no early stop (flags given "
                        "still win)")


def resolve_task_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the flags left unset (None) from the command's task defaults, or the paper's with ``--paper``
    (``core.defaults``: the one set of defaults every front end shares). Returns ``args``, changed in place."""
    from ..core import task_defaults

    paper = getattr(args, "paper", False)
    defaults = {**task_defaults(COMMAND_TASK.get(args.command, "invert"), paper),
                **({} if paper else getattr(args, "own_defaults", {}))}
    for key, value in defaults.items():  # lr, weight decay and method: the paper's are already every default
        if getattr(args, key, "given") is None:
            setattr(args, key, value)
    return args


def config_from_args(args: argparse.Namespace):
    """The ``PEZConfig`` of ``optimiser_args``' flags (files read here; each bad one is one clear error)."""
    from ..core import PEZConfig

    resolve_task_defaults(args)

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
                     method=args.method, beta=args.beta, beta_end=args.beta_end, bank=bank, fluency=args.fluency,
                     **{k: getattr(args, k) for k in GUIDED_FLAGS if hasattr(args, k)})


def prepare(args: argparse.Namespace):
    """A CLIP command's set-up before anything loads: the device exists here, torch's threads, and the
    ``PEZConfig`` with its numbers checked (bad ones fail before a model download)."""
    import torch

    from ..core import resolve_device

    resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    config.validate(CLIP_PROMPT_TOKENS)
    return config


def load_models(args: argparse.Namespace, config) -> tuple:
    """``(clip, lms)``: the language models first (their errors come first) as the core's keyword arguments
    (``fluency_lm`` with ``--fluency``, ``guide_lm`` with ``--method guided``), then the CLIP of ``--model``."""
    from ..core import load_clip

    lms = {}
    if config.fluency:
        lms["fluency_lm"] = language_model(args, args.fluency_lm, f"--fluency {args.fluency} needs --fluency-lm PATH")
    if config.method == "guided":
        lms["guide_lm"] = language_model(args, args.lm, "--method guided needs --lm PATH")
    with warnings.catch_warnings():  # a guessed activation is a warning in Python; here it is a "note:" line
        warnings.simplefilter("ignore", UserWarning)
        model = load_clip(args.model, args.pretrained, device=args.device, activation=args.activation,
                          vocabulary=args.vocabulary)
    return model, lms


def language_model(args: argparse.Namespace, source: str | None, missing: str):
    """An LM of ``--fluency-lm`` / ``--lm``, or the toy world's own for the bundled toy model."""
    from ..lm.load import default_fluency_lm, load_lm

    source = source or default_fluency_lm(args.model.strip())
    if source is None:
        raise ValueError(f"{missing}: a causal LM (a transformers folder; for --fluency one trained on CLIP's "
                         "tokenizer).")
    return load_lm(source, device=args.device)
