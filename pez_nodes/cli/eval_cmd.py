"""``pez eval``: the paper's loop from the command line (learn prompts, generate from them, score the pictures).

    pez eval targets/                         # invert each image, generate 5 seeds each, score (toy models)
    pez eval targets/ --prompts prompts.json  # score given prompts instead ({"file name": "prompt"})
    pez eval --distill "a long prompt ..."    # original vs distilled at ratios 0.7 / 0.5 / 0.3 / 0.1
    pez eval targets/ --pick-by-generation 4  # also keep the best of PEZ's top 4 prompts by what they generate
    pez eval targets/ --model ViT-L-14 --generator /models/sd15 --judge ViT-bigG-14 --judge-pretrained ...

Prints a table (mean ± std over seeds), writes ``eval.json`` and ``eval.png`` (target | prompt |
generations) into ``--out``, and reports the time spent inverting, generating and scoring. (The
generation half of ``pez demo`` is in ``prompt_cmd.py``.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import clip_args, load_models, prepare


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="judge prompts by what they generate, with a reference CLIP (the paper's metric)")
    p.add_argument("targets", nargs="?", type=Path, help="a folder of target images")
    p.add_argument("--prompts", type=Path, default=None, help='JSON {"image file name": "prompt"}: score these '
                                                              "instead of inverting (images without one are inverted; "
                                                              "a key that names no image is an error)")
    p.add_argument("--distill", default=None, metavar="TEXT", help="evaluate distilling TEXT at --ratios instead")
    p.add_argument("--pick-by-generation", type=int, default=0, metavar="N",
                   help="best-of-N by generation: generate each of PEZ's N best prompts (on other seeds than "
                        "--seeds), keep the one whose pictures the judge finds closest, and report it next to the "
                        "top-1 prompt, both scored on --seeds (0: off; default: %(default)s)")
    p.add_argument("--ratios", default="0.7,0.5,0.3,0.1", help="distillation ratios (default: %(default)s)")
    p.add_argument("--generator", default="toy", help="'toy' (bundled) or a Stable Diffusion diffusers folder / "
                                                      ".safetensors file (default: %(default)s)")
    p.add_argument("--sd-config", default=None, help="a local diffusers folder whose configs a single-file checkpoint uses")
    p.add_argument("--judge", default="reference", help="the reference CLIP: 'reference' (bundled toy reference) "
                                                        "or an open_clip source (default: %(default)s)")
    p.add_argument("--judge-pretrained", default=None, help="pretrained tag or file for an open_clip --judge")
    p.add_argument("--seeds", type=int, default=5, help="generations per prompt (paper: 5; default: %(default)s)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the generator's "
                                                                "own: the paper's 9 for Stable Diffusion, 2 for the toy model)")
    p.add_argument("--gen-steps", type=int, default=None, help="denoising steps (default: 25, as the paper)")
    p.add_argument("--out", type=Path, default=Path("pez_eval"), help="folder for eval.json and eval.png")
    clip_args(p, None)  # --model: the generator's own CLIP (resolve_model)


def resolve_model(args: argparse.Namespace) -> None:
    """``--model`` left out: the CLIP the generator was trained with — the bundled toy CLIP for the toy
    generator, else SD 1.5's ViT-L-14 (name ViT-H-14 for SD 2.x)."""
    from ..core import DEFAULT_MODEL

    if args.model is None:
        args.model = "toy" if args.generator.strip() == "toy" else DEFAULT_MODEL


def eval_inputs(args: argparse.Namespace) -> tuple[list[Path], dict[str, str] | None]:
    """The target image files and the given prompts keyed by file name, every setting and file checked.

    Needs no model, so ``pez eval`` calls it before any loads (``main``, after ``common.check_args``) and again
    in ``run_eval``.
    """
    from ..evaluate import run
    from ..generate.stable_diffusion import check_generator_source
    from ..generate.toy import check_settings

    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}: give 1 or more generations per prompt.")
    if (args.targets is None) == (args.distill is None):
        raise ValueError("give a folder of target images, or --distill TEXT (not both).")
    if args.prompts is not None and args.distill is not None:
        raise ValueError("--prompts gives prompts for target images; --distill learns its own, so drop one of them.")
    run.check_pick(args.pick_by_generation)
    if args.pick_by_generation and args.distill is not None:
        raise ValueError("--pick-by-generation chooses among the prompts PEZ learns for target images; --distill has "
                         "none, so drop one of them.")
    check_settings(args.guidance, args.gen_steps)
    check_generator_source(args.generator.strip())
    files = run.image_files(args.targets) if args.targets is not None else []
    prompts = None
    if args.prompts is not None:
        prompts = run.match_prompts(read_prompts(args.prompts), [f.name for f in files],
                                    f"--prompts {str(args.prompts)!r}", args.targets)
    return files, prompts


def read_prompts(path: Path) -> dict:
    """The JSON object of ``path`` (a byte-order mark allowed), or one error naming the file and the fix."""
    what = f"--prompts {str(path)!r}"
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "does not exist"
        raise ValueError(f"{what} {state}; give a JSON file of prompts keyed by image file name.")
    try:
        prompts = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not UTF-8 text; save it as UTF-8 JSON.") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} is not JSON (line {e.lineno}, column {e.colno}: {e.msg}); write an object such as "
                         '{"cat.png": "a photo of a cat"}.') from None
    if prompts == {}:
        raise ValueError(f'{what} holds no prompts; add "image file name": "prompt" pairs, or leave --prompts out to '
                         "learn every prompt.")
    return prompts


def run(args: argparse.Namespace) -> dict:
    """``pez eval`` from its flags: the CLIP to optimise against (and the method's LMs) loaded, then ``run_eval``."""
    config = prepare(args)
    model, lms = load_models(args, config)
    return run_eval(args, model, config, lms)


def run_eval(args: argparse.Namespace, model, config, lms: dict | None = None) -> dict:
    """The work behind ``pez eval`` (``model``: the CLIP to optimise against, already loaded)."""
    from .. import core
    from ..evaluate import run
    from ..evaluate.grid import save_grid
    from ..generate import load_generator

    files, prompts = eval_inputs(args)
    targets = [(f.name, core.load_image(f)) for f in files]  # every image readable before the generator loads
    judge = _judge(args.judge, args.judge_pretrained, model.device)
    generator = load_generator(args.generator, device=str(model.device), config=args.sd_config)
    seeds = list(range(args.seeds))
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))  # progress: stderr
    if args.distill is not None:
        ratios = [float(r) for r in args.ratios.split(",") if r.strip()]
        rows, timing = run.evaluate_distillation(model, generator, judge, args.distill, seeds, config, ratios,
                                                 args.guidance, args.gen_steps, log, lms)
        scored = rows[1:]
    else:
        rows, timing = run.evaluate_inversion(model, generator, judge, targets, seeds, config, prompts,
                                              args.guidance, args.gen_steps, log, lms, pick=args.pick_by_generation)
        scored = rows
    args.out.mkdir(parents=True, exist_ok=True)
    picture = save_grid(run.grid_rows(rows), args.out / "eval.png")
    report = {"mode": "distill" if args.distill else "invert", "generator": getattr(generator, "name", args.generator),
              "judge": judge.name, "optimised_with": model.name, "seeds": args.seeds,
              "guidance": args.guidance if args.guidance is not None else generator.guidance,
              "gen_steps": args.gen_steps if args.gen_steps is not None else generator.steps, "summary": run.summary(scored), "rows": [r.as_dict() for r in rows],
              "timing": timing.as_dict(), "picture": str(picture)}
    if args.pick_by_generation:
        report.update(pick_by_generation=args.pick_by_generation, summary_picked=run.summary(scored, picked=True))
    (args.out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.json:
        print(run.table(rows))
        s = report["summary"]
        print(f"mean similarity {s['mean']:.4f} ± {s['std']:.4f} over {s['n']} generations; time "
              f"{timing.invert:.1f} s invert, {timing.generate:.1f} s generate, {timing.score:.1f} s score")
        if args.pick_by_generation:
            p = report["summary_picked"]
            print(f"picked by generation (best of {args.pick_by_generation}): mean similarity {p['mean']:.4f} ± "
                  f"{p['std']:.4f} (top-1: {s['mean']:.4f})")
        print(f"wrote {args.out / 'eval.json'} and {picture}")
    return report


def _judge(source: str, pretrained: str | None, device):
    from ..core import load_clip
    from ..evaluate.reference import load_reference_clip

    if source == "reference":
        return load_reference_clip(device=str(device))
    return load_clip(source, pretrained, device=str(device))
