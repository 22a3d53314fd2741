"""Train the bundled toy CLIP on the toy world (``pez_nodes/toyworld.py``) on a CPU.

    python tools/train_toy_clip.py            # ~16 min on one CPU core, writes pez_nodes/models/toy/
    python tools/train_toy_clip.py --seed 1 --text-width 96 --vision-width 128 --layers 5 --steps 2000 \
        --pez-images 0 --out pez_nodes/models/toy_reference   # the independent reference CLIP for `pez eval`

The model is a stock open_clip ``CLIP`` (config in ``pez_nodes/models/toy/open_clip_config.json``)
with CLIP's own 49,408-token BPE vocabulary. Captions name a random subset of an image's attributes
in one of several sentence forms (canonical, shuffled with filler words, "a photo of ...", "... on a
... background", "there is a ..."), so the text tower learns each word as evidence, not a position.

Honest on the full vocabulary — PEZ may pick any of the 49,406 ordinary tokens:

* **One "unknown" embedding.** Every row of the token table starts at one shared random vector u
  plus a tiny offset of its own (std ``--unknown-noise``); only the rows of the 20 attribute words and
  of the filler words in ``FILLERS`` are trained. Every other token stays at u, so the model is
  indifferent to them by construction — with open_clip's default initialisation they were random vectors as large
  as trained ones, and PEZ found gibberish that out-scored true captions.
* **Unknown-token distractors.** Half the captions get 1–3 random vocabulary ids inserted at random
  places, their embeddings detached (they stay at u), so the transformer learns that such positions
  mean nothing.
* **Specific captions fit best.** The contrastive loss uses soft targets: a caption matches every
  image in the batch whose attributes include all the words it names. In the image → text direction
  each matching caption is weighted ``--specificity ** (attributes it names)``, so an image's feature
  is closest to a caption that names all four of its attributes; with equal weights a two-word caption
  fitted as well as the full one, and PEZ stopped after one or two attribute words.

Measured, share of attribute words PEZ recovers over the full vocabulary (20 pictures, 8 tokens,
300 steps, 4 restarts; ``pez_full_vocabulary`` in the report): open_clip's initialisation 0 %;
random-token distractors 20 %; tiny initial table 0 %; shared unknown vector 45 %; + attribute-only
embeddings 33 %; + specificity, attribute words only 76 %; + specificity, fillers learned too (the
defaults) **90 %**. ``pez_vocabulary.txt`` (the attribute words) remains as an opt-in declared vocabulary
(``load_clip(..., vocabulary="declared")``).

Writes ``open_clip_model.safetensors`` (fp16), ``training_report.json`` (zero-shot accuracy and PEZ
recovery) and ``pez_vocabulary.txt``. The shipped model is this script's output with its defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pez_nodes.core.clip.backbone import ClipBackbone  # noqa: E402
from pez_nodes.core.optim.text_encoder import embed_token_ids  # noqa: E402
from pez_nodes.core.clip.images import preprocess  # noqa: E402
from pez_nodes import toyworld as tw  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "pez_nodes" / "models" / "toy"
ATTRIBUTE_WORDS = tuple(w for kind in tw.ATTRIBUTE_KINDS for w in tw.VOCABULARY[kind])
FILLERS = ("a", "photo", "of", "the", "on", "picture", "with", "an", "image", "in", "there", "is", "background")


def caption(scene: tw.Scene, rng: random.Random) -> tuple[str, tuple]:
    """A caption naming a random non-empty subset of the scene's attributes, in one of several sentence
    forms; returns (text, named attributes in ``ATTRIBUTE_KINDS`` order, None where not named)."""
    kinds = [k for k in tw.ATTRIBUTE_KINDS if rng.random() < 0.75] or [rng.choice(tw.ATTRIBUTE_KINDS)]
    named = tuple(scene.attribute(k) if k in kinds else None for k in tw.ATTRIBUTE_KINDS)
    size, color, shape, bg = named
    form = rng.random()
    if len(kinds) == 4 and form < 0.2:
        return (rng.choice(["", "a photo of ", "an image of ", "a picture of "]) + scene.caption), named
    if form < 0.55:
        words = [w for w in named if w]
        words += rng.sample(FILLERS, rng.randint(0, 3))
        rng.shuffle(words)
        return " ".join(words), named
    noun = " ".join(w for w in (size, color, shape) if w) or "shape"
    where = rng.choice([f" on {bg}", f" on a {bg} background", f" with {bg}", f" in front of {bg}"]) if bg else ""
    lead = rng.choice(["a ", "a photo of a ", "there is a ", "an image of a ", "the "])
    return lead + noun + where, named


def _render(job):
    scene, size, seed = job
    return tw.render(scene, size=size, seed=seed)


def build_dataset(n: int, seed: int, size: int, workers: int):
    rng = random.Random(seed)
    scenes = [tw.random_scene(rng) for _ in range(n)]
    jobs = [(s, size, seed * 1_000_003 + i) for i, s in enumerate(scenes)]
    with multiprocessing.Pool(workers) as pool:
        images = pool.map(_render, jobs, chunksize=64)
    return scenes, images


def attr_index(scenes) -> torch.Tensor:
    return torch.tensor([[tw.VOCABULARY[k].index(s.attribute(k)) for k in tw.ATTRIBUTE_KINDS] for s in scenes])


def zero_shot(backbone: ClipBackbone, pixels: torch.Tensor, scenes) -> dict:
    """Accuracy of choosing the right caption among all 392 scenes, and per attribute."""
    classes = tw.all_scenes()
    with torch.no_grad():
        ids = [backbone.tokenize(c.caption) for c in classes]
        embeds, eot = embed_token_ids(backbone, ids)
        text = F.normalize(backbone.encode_embeddings(embeds, eot), dim=-1)
        image = F.normalize(backbone.encode_pixels(pixels), dim=-1)
        pred = (image @ text.T).argmax(-1)
    truth = torch.tensor([classes.index(s) for s in scenes])
    report = {"classes": len(classes), "images": len(scenes), "top1_all_attributes": float((pred == truth).float().mean())}
    for k in tw.ATTRIBUTE_KINDS:
        got = torch.tensor([classes[int(p)].attribute(k) == s.attribute(k) for p, s in zip(pred, scenes)])
        report[f"top1_{k}"] = float(got.float().mean())
    return report


def with_distractors(ids: list[list[int]], rng: random.Random, share: float, special: set[int]):
    """Insert 1–3 random vocabulary ids into ``share`` of the captions; returns (ids, mask of inserted
    positions as [B, L+2] aligned with ``embed_token_ids``' [SOT, ids, EOT] rows)."""
    out, masks = [], []
    for row in ids:
        row, mask = list(row), [False] * len(row)
        if rng.random() < share:
            for _ in range(rng.randint(1, 3)):
                tok = rng.randrange(49406)
                while tok in special:
                    tok = rng.randrange(49406)
                at = rng.randint(0, len(row))
                row.insert(at, tok)
                mask.insert(at, True)
        out.append(row)
        masks.append([False] + mask + [False])
    width = max(len(m) for m in masks)
    return out, torch.tensor([m + [False] * (width - len(m)) for m in masks])


def pez_recovery(backbone: ClipBackbone, n: int) -> dict:
    """Share of attribute words PEZ recovers over the *full* vocabulary (as ``tests/test_quality.py``)."""
    from pez_nodes.core import PEZConfig, invert

    backbone.vocabulary_ids = None
    rng = random.Random(2024)
    hits = total = 0
    prompts = []
    for i in range(n):
        scene = tw.random_scene(rng)
        result = invert(backbone, [tw.render(scene, size=128, seed=500 + i)],
                        PEZConfig(seed=i, prompt_len=8, steps=300, restarts=4, device="cpu"))
        words = set(result.text.lower().split())
        hits += sum(w in words for w in scene.words)
        total += len(scene.words)
        prompts.append(f"{scene.caption} -> {result.text}")
        print(prompts[-1], flush=True)
    print(f"PEZ full vocabulary: {hits}/{total} attribute words", flush=True)
    return {"images": n, "attribute_words_recovered": hits / total, "examples": prompts[:5]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--images", type=int, default=16000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads and rendering workers (the shipped model: 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--unknown-std", type=float, default=0.02, help="std of the shared unknown-token vector u")
    ap.add_argument("--unknown-noise", type=float, default=1e-3, help="std of each token's offset from u")
    ap.add_argument("--distractors", type=float, default=0.5, help="share of captions given unknown-token distractors")
    ap.add_argument("--text-width", type=int, default=None, help="override the config's text width (heads: width/16)")
    ap.add_argument("--vision-width", type=int, default=None, help="override the config's vision width")
    ap.add_argument("--layers", type=int, default=None, help="override both towers' depth")
    ap.add_argument("--specificity", type=float, default=4.0,
                    help="an image's target weight of a matching caption is specificity ** (attributes it names)")
    ap.add_argument("--attribute-words-only", action="store_true",
                    help="learn only the attribute words' embeddings, not the filler words' (measured: worse)")
    ap.add_argument("--pez-images", type=int, default=20, help="pictures for the full-vocabulary PEZ check (0: skip)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import open_clip

    cfg = json.loads((OUT / "open_clip_config.json").read_text())
    if args.text_width:
        cfg["model_cfg"]["text_cfg"].update(width=args.text_width, heads=max(1, args.text_width // 16))
    if args.vision_width:
        cfg["model_cfg"]["vision_cfg"].update(width=args.vision_width)
    if args.layers:
        cfg["model_cfg"]["vision_cfg"].update(layers=args.layers)
        cfg["model_cfg"]["text_cfg"].update(layers=args.layers)
    model = open_clip.CLIP(**cfg["model_cfg"])
    with torch.no_grad():  # every token starts at one shared "unknown" vector u (+ a tiny offset of its own) ...
        table = model.token_embedding.weight
        u = torch.randn(table.shape[1]) * args.unknown_std
        table.copy_(u + torch.randn_like(table) * args.unknown_noise)
    pre = cfg["preprocess_cfg"]
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg["model_cfg"]["text_cfg"]["context_length"])
    special = set(tokenizer.all_special_ids)
    learned = torch.zeros(table.shape[0], 1)  # ... and only the rows of words captions use ever move
    learned[[i for w in ATTRIBUTE_WORDS + (() if args.attribute_words_only else FILLERS) for i in tokenizer.encode(w)]] = 1.0
    table.register_hook(lambda grad: grad * learned)
    size = cfg["model_cfg"]["vision_cfg"]["image_size"]
    backbone = ClipBackbone(model, tokenizer, "toy", pre["mean"], pre["std"], size)
    model.train().requires_grad_(True)

    t0 = time.time()
    scenes, images = build_dataset(args.images, args.seed, size, args.threads)
    pixels = preprocess(images, size, pre["mean"], pre["std"])
    attrs = attr_index(scenes)
    eval_scenes, eval_images = build_dataset(1000, args.seed + 1, size * 4, args.threads)
    eval_pixels = preprocess(eval_images, size, pre["mean"], pre["std"])
    print(f"rendered {len(images)} + {len(eval_images)} images in {time.time() - t0:.0f}s", flush=True)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=args.lr)
    warmup = 100
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))
    )
    rng = random.Random(args.seed)
    token_cache: dict[str, list[int]] = {}
    t0 = time.time()
    for step in range(args.steps):
        idx = torch.randint(len(scenes), (args.batch,))
        caps = [caption(scenes[int(i)], rng) for i in idx]
        ids = [token_cache.setdefault(c, tokenizer.encode(c)) for c, _ in caps]
        named = torch.tensor([[-1 if a is None else tw.VOCABULARY[k].index(a) for k, a in zip(tw.ATTRIBUTE_KINDS, n)]
                              for _, n in caps])
        img_attr = attrs[idx]
        match = ((named[None, :, :] < 0) | (named[None, :, :] == img_attr[:, None, :])).all(-1).float()  # [img, cap]
        specific = match * args.specificity ** (named >= 0).sum(-1).float()[None, :]  # full captions fit best

        ids, unknown = with_distractors(ids, rng, args.distractors, special)
        embeds, eot = embed_token_ids(backbone, ids)
        embeds = torch.where(unknown[..., None], embeds.detach(), embeds)  # distractors stay unseen
        text = F.normalize(backbone.encode_embeddings(embeds, eot), dim=-1)
        image = F.normalize(model.encode_image(pixels[idx]), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * image @ text.T
        loss_i = -(specific / specific.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        loss_t = -(match / match.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
        loss = (loss_i + loss_t) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d} loss {loss.item():.3f} scale {model.logit_scale.exp().item():.1f} "
                  f"{time.time() - t0:.0f}s", flush=True)

    model.eval().requires_grad_(False)
    model.half().float()  # evaluate the weights as shipped (fp16)
    report = zero_shot(backbone, eval_pixels, eval_scenes)
    print(json.dumps(report), flush=True)
    if args.pez_images:
        report["pez_full_vocabulary"] = pez_recovery(backbone, args.pez_images)
    report.update(train_steps=args.steps, batch=args.batch, train_images=args.images, seconds=round(time.time() - t0),
                  threads=args.threads, seed=args.seed)
    print(json.dumps(report, indent=2))

    from safetensors.torch import save_file

    cfg_text = json.dumps(cfg, indent=2) + "\n"

    args.out.mkdir(parents=True, exist_ok=True)
    if args.out.resolve() != OUT.resolve():  # make --out a complete local-dir model folder
        (args.out / "open_clip_config.json").write_text(cfg_text)
    elif args.text_width:
        (OUT / "open_clip_config.json").write_text(cfg_text)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out / "open_clip_model.safetensors"), metadata={"format": "pt", "source": "pez toy world"})
    (args.out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "pez_vocabulary.txt").write_text("\n".join(ATTRIBUTE_WORDS) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
