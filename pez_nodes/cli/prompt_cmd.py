"""``pez invert``, ``distill``, ``concat`` and ``demo``: the core commands, one prompt learned against a CLIP.

    pez invert photo.png --model toy --steps 500   # one or more images (several: their shared style)
    pez distill "a long prompt ..." --prompt-len 8
    pez concat "prompt one" "prompt two"
    pez demo                                       # draw a toy-world picture, invert it, generate from the prompt

Their parsers, the run from flags to the result's dict (``main`` prints it), and the demo's generation half.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from .common import ProgressBar, clip_args, load_models, prepare


DEMO = {"prompt_len": 8, "steps": 300}  # a showing in seconds: the toy world's captions are 6 words


def add_parsers(sub) -> None:
    from ..core import DEFAULT_MODEL

    p = sub.add_parser("invert", help="learn a prompt for one or more images (several: their shared style)")
    p.add_argument("images", nargs="+", help="image files")
    clip_args(p, DEFAULT_MODEL)
    p = sub.add_parser("distill", help="learn a short prompt with the meaning of a long one")
    p.add_argument("text", help="the prompt to distill")
    clip_args(p, DEFAULT_MODEL)
    p = sub.add_parser("concat", help="one prompt that composes two or more prompts")
    p.add_argument("texts", nargs="+", help="two or more prompts")
    clip_args(p, DEFAULT_MODEL)
    p = sub.add_parser("demo", help="invert a toy-world picture with the bundled model, generate from the prompt "
                                    "(no download)")
    p.add_argument("--save", type=Path, default=None, help="also save the drawn picture here")
    clip_args(p, "toy", own=DEMO)


def run(args: argparse.Namespace) -> dict:
    from .. import core

    config = prepare(args)
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
    model, lms = load_models(args, config)
    bar = ProgressBar(not args.quiet)
    previous = signal.signal(signal.SIGINT, bar.interrupt)
    negatives = [Path(i) for i in args.negative_image] + list(args.negative_text)
    try:
        if args.command == "concat":
            if args.extra_text or negatives:
                raise ValueError("concat takes no --text/--negative-* targets; use distill or invert for those.")
            result = core.concat(model, args.texts, config, bar, **lms)
        else:
            if args.command == "invert":
                main_targets = [core.Target(image=i) for i in args.images]
            elif args.command == "demo":
                main_targets = [core.Target(image=image)]
            else:
                main_targets = [core.Target(text=args.text)]
            main_targets += [core.Target(text=t) for t in args.extra_text]
            targets = core.with_negatives(main_targets, negatives, args.negative_weight)
            result = core.optimize(model, targets, config, bar, **lms)
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
        out.update(demo_generation(image, result.text, args.seed, args.save))
    return out


def demo_generation(image, prompt: str, seed: int, save: Path | None) -> dict:
    """Generate from the demo's learned prompt with the toy model; both similarities and a side-by-side PNG."""
    try:
        import diffusers  # noqa: F401
    except ImportError:
        return {"generation": "skipped: install pez-hard-prompts[generate] (diffusers) to see the generated picture"}
    from ..evaluate.grid import save_grid
    from ..evaluate.metric import image_similarity
    from ..evaluate.reference import load_reference_clip
    from ..evaluate.run import Row
    from ..generate import load_generator

    generated = load_generator("toy").generate(prompt, [seed])
    judge = load_reference_clip()
    similarity = float(image_similarity(judge, [image], generated)[0, 0])
    path = save_grid([Row("pez demo: the learned prompt", prompt, [similarity], generated, image)],
                     save.with_name(save.stem + "_loop.png") if save else Path("pez_demo.png"))
    return {"generated_similarity": round(similarity, 6), "picture": str(path)}
