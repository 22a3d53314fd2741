"""Train the toy text-to-image model (``pez_nodes/generate/toy.py``) on the toy world, on a CPU.

    python tools/train_toy_diffusion.py          # ~30 min on 2 CPU cores, writes pez_nodes/models/toy_diffusion/

The UNet learns to denoise 32×32 toy-world pictures (as a 16×16×12 space-to-depth latent) conditioned
on the bundled toy CLIP's per-token text hidden states (frozen), DDPM loss on the noise (epsilon), 1000
training timesteps, cosine schedule; the shipped weights are an exponential moving average (0.999). Captions name all four attributes in varied forms (70 %), a
random subset of them (20 %) or nothing (10 %: the unconditional branch of classifier-free guidance).

Afterwards it generates one picture per scene for ``--eval-scenes`` scenes from their true captions
(the toy model's guidance 2, 25 DDIM steps) and measures, with the independent reference CLIP when it exists
(``pez_nodes/models/toy_reference``), how often each attribute of the generated picture is classified
correctly zero-shot; the numbers go to ``training_report.json``.
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.generate.toy import (  # noqa: E402
    IMAGE_SIZE, TOY_DIFFUSION_DIR, ToyTextToImage, scheduler_config, to_latent, unet_config)

FILLERS = ("a", "photo", "of", "the", "on", "picture", "with", "an", "image", "in")


def caption(scene: tw.Scene, rng: random.Random) -> str:
    """A caption for training: all attributes in one of several forms, a subset, or empty."""
    form = rng.random()
    if form < 0.1:
        return ""
    words = list(scene.words)
    if form < 0.3:  # a subset: the model learns each word on its own
        words = rng.sample(words, rng.randint(1, 3))
        rng.shuffle(words)
        return " ".join(words)
    if form < 0.55:
        return rng.choice(["", "a photo of ", "an image of "]) + scene.caption
    if form < 0.8:  # word soup, as PEZ prompts often are
        words += rng.sample(FILLERS, rng.randint(0, 3))
        rng.shuffle(words)
        return " ".join(words)
    return f"a {scene.size} {scene.color} {scene.shape} " + rng.choice(["on ", "with ", "in front of "]) + scene.background


def _render(job):
    scene, seed = job
    return np.asarray(tw.render(scene, size=IMAGE_SIZE, seed=seed), dtype=np.uint8)


def dataset(n: int, seed: int, workers: int) -> tuple[list, torch.Tensor]:
    rng = random.Random(seed)
    scenes = [tw.random_scene(rng) for _ in range(n)]
    with multiprocessing.Pool(workers) as pool:
        arrays = pool.map(_render, [(s, seed * 1_000_003 + i) for i, s in enumerate(scenes)], chunksize=256)
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return scenes, pixels


def attribute_accuracy(generator: ToyTextToImage, judge, n: int, seed: int, guidance: float | None = None,
                       steps: int | None = None) -> dict:
    """Share of pictures generated from true captions whose attributes ``judge`` (a CLIP) classifies right."""
    from pez_nodes.evaluate.zero_shot import classify_attributes

    rng = random.Random(seed)
    scenes = [tw.random_scene(rng) for _ in range(n)]
    images = [generator.generate(s.caption, [seed + i], guidance, steps)[0] for i, s in enumerate(scenes)]
    return classify_attributes(judge, images, scenes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=28.0, help="training time budget (stops early when reached)")
    ap.add_argument("--steps", type=int, default=100000, help="at most this many steps")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--images", type=int, default=24000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-scenes", type=int, default=200)
    ap.add_argument("--out", type=Path, default=TOY_DIFFUSION_DIR)
    ap.add_argument("--ema", type=float, default=0.999, help="decay of the weights' moving average that is shipped")
    ap.add_argument("--resume", action="store_true", help="continue from the UNet in --out (its report's steps add up)")
    args = ap.parse_args()

    from diffusers import DDPMScheduler, UNet2DConditionModel

    from pez_nodes.core import load_clip

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    t0 = time.time()
    clip = load_clip("toy")
    scenes, pixels = dataset(args.images, args.seed + 100, args.threads)
    print(f"rendered {len(scenes)} pictures in {time.time() - t0:.0f} s", flush=True)
    previous = {}
    if args.resume:
        unet = UNet2DConditionModel.from_pretrained(args.out / "unet", local_files_only=True, low_cpu_mem_usage=False)
        previous = json.loads((args.out / "training_report.json").read_text())
    else:
        unet = UNet2DConditionModel(**unet_config(clip.token_embedding.shape[1]))
    noise_schedule = DDPMScheduler(**scheduler_config())
    generator = ToyTextToImage(unet, clip)
    unet.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.01)
    averaged = [p.detach().clone() for p in unet.parameters()]  # an exponential moving average of the weights
    budget = args.minutes * 60
    start, step, ema = time.time(), 0, None
    while step < args.steps and time.time() - start < budget:
        frac = (time.time() - start) / budget  # cosine decay over the time budget, 200-step warm-up
        for g in optimizer.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        pick = torch.randint(len(scenes), (args.batch,))
        x0 = to_latent(pixels[pick])
        if rng.random() < 0.5:
            x0 = to_latent(pixels[pick].flip(-1))  # mirror: the world has no handedness
        context = generator.condition([caption(scenes[int(i)], rng) for i in pick])
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_schedule.config.num_train_timesteps, (args.batch,))
        pred = unet(noise_schedule.add_noise(x0, noise, t), t, encoder_hidden_states=context).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(averaged, [p.detach() for p in unet.parameters()], 1 - decay)
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 100 == 0:
            print(f"step {step}  loss {ema:.4f}  {time.time() - start:.0f} s", flush=True)
    with torch.no_grad():  # ship the averaged weights: smoother samples than the last step's
        for p, a in zip(unet.parameters(), averaged):
            p.copy_(a)
    unet.eval().requires_grad_(False)
    report = {"train_steps": step + previous.get("train_steps", 0), "batch": args.batch, "train_images": args.images,
              "threads": args.threads, "train_seconds": round(time.time() - start) + previous.get("train_seconds", 0),
              "final_loss_ema": round(ema, 5), "seed": args.seed,
              "runs": [*previous.get("runs", []), {"steps": step, "seconds": round(time.time() - start),
                                                   "threads": args.threads, "lr": args.lr, "batch": args.batch}]}
    args.out.mkdir(parents=True, exist_ok=True)
    generator.save(args.out, report)
    from pez_nodes.evaluate.reference import REFERENCE_DIR, load_reference_clip

    judges = {"toy CLIP (conditioning model)": clip}
    if (REFERENCE_DIR / "open_clip_model.safetensors").is_file():
        judges["reference CLIP"] = load_reference_clip()
    for name, judge in judges.items():
        report[f"true_caption_accuracy ({name})"] = attribute_accuracy(generator, judge, args.eval_scenes, 7, None, None)
    report["total_seconds"] = round(time.time() - t0)
    generator.save(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
