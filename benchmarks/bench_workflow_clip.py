"""The cost of reusing the workflow's CLIP: PEZ on ComfyUI's own weights vs on open_clip, side by side.

    COMFYUI_DIR=/path/to/ComfyUI python benchmarks/bench_workflow_clip.py
    COMFYUI_DIR=... python benchmarks/bench_workflow_clip.py --models ViT-L-14 --steps 10 --restarts 4

For each architecture a random-weight open_clip file (fp16, as users download them) is written once and
loaded both ways: by open_clip (``core.load_clip``, the pack's own loader) and by ComfyUI's CLIP loader,
then copied for PEZ by ``PEZ CLIP from Workflow`` (``pez_nodes.comfy.workflow_clip``). Each case runs in
its own subprocess so its peak RSS is its own, alternating cases over ``--rounds``; prints ms/step
(median), their ratio, the time to get the model ready, and peak memory. ``sdxl`` runs the joint
CLIP-L + bigG prompt against bigG alone (both through ComfyUI). Aim: ComfyUI-weights path within 10 % of
the open_clip path's ms/step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

OPEN_CLIP_NAMES = {"ViT-L-14": "ViT-L-14-quickgelu", "ViT-H-14": "ViT-H-14"}


def write_files(models: list[str], folder: Path) -> dict[str, str]:
    """Random-weight fp16 files: open_clip layout (text + vision) per model, and bigG's text tower for sdxl."""
    from comfy_files import write_bigg_text_encoder, write_open_clip, write_sd15_text_encoder

    files = {}
    for name in models:
        if name == "sdxl":
            files["g"] = str(write_bigg_text_encoder(folder / "clip_g.safetensors", seed=3))
            _, l_model = write_open_clip("ViT-L-14-quickgelu", folder / "l_for_sdxl.safetensors", seed=1)
            files["l"] = str(write_sd15_text_encoder(l_model, folder / "clip_l.safetensors"))
        else:
            files[name] = str(write_open_clip(OPEN_CLIP_NAMES[name], folder / f"{name}.safetensors", seed=1)[0])
    return files


def run_case(case: dict) -> dict:
    """One case in this (child) process: load, warm up, time ``steps`` PEZ steps; report ms/step and peak RSS."""
    import torch

    torch.set_num_threads(case["threads"])
    from pez_nodes.core import PEZConfig, distill

    start = time.perf_counter()
    if case["path"] == "open_clip":
        from pez_nodes.core import load_clip

        model = load_clip(OPEN_CLIP_NAMES[case["model"]], case["file"], activation="auto")
    else:
        sys.path.append(case["comfy"])
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
        import comfy.sd

        from pez_nodes.comfy.workflow_clip import workflow_clip

        clip = comfy.sd.load_clip(case["files"])
        model = workflow_clip(clip, weight_clip_l=case.get("weight_clip_l", 1.0))
    ready_s = time.perf_counter() - start
    config = PEZConfig(steps=case["steps"] + 2, prompt_len=case["prompt_len"], restarts=case["restarts"], patience=0)
    times = []

    def clock(step, total, text, sim):
        times.append(time.perf_counter())

    distill(model, "a photo of a red fox in the snow, soft light", config, clock)
    per_step = [b - a for a, b in zip(times[2:], times[3:])]  # two warm-up steps left out
    return {"ms_step": 1000 * statistics.median(per_step), "ready_s": ready_s, "peak_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ``ru_maxrss``, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(case: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(case["threads"])}
    out = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True,
                         env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="ViT-L-14,ViT-H-14,sdxl")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    comfy = os.environ.get("COMFYUI_DIR")
    if not comfy:
        sys.exit("set COMFYUI_DIR to a ComfyUI checkout (docs/testing.md says how to set one up).")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    base = dict(steps=args.steps, restarts=args.restarts, prompt_len=args.prompt_len, threads=args.threads, comfy=comfy)
    with tempfile.TemporaryDirectory() as folder:
        files = write_files(models, Path(folder))
        rows = []
        for name in models:
            if name == "sdxl":
                cases = {"bigG alone (ComfyUI)": dict(path="comfy", files=[files["g"], files["l"]], weight_clip_l=0.0),
                         "CLIP-L + bigG joint": dict(path="comfy", files=[files["g"], files["l"]])}
            else:
                cases = {"open_clip": dict(path="open_clip", model=name, file=files[name]),
                         "ComfyUI weights": dict(path="comfy", files=[files[name]])}
            results = {label: [] for label in cases}
            for _ in range(args.rounds):
                for label, case in cases.items():
                    results[label].append(child({**base, **case, "model": name}))
            rows.append((name, {label: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                                for label, rs in results.items()}))
    print(f"\nPEZ ms/step, restarts {args.restarts}, {args.prompt_len} tokens, {args.threads} threads, median of "
          f"{args.rounds} alternating runs × {args.steps} steps (CPU, fp32)")
    print(f"{'model':10} {'path':22} {'ms/step':>9} {'ratio':>7} {'ready s':>8} {'peak MB':>9}")
    for name, by_label in rows:
        first = next(iter(by_label.values()))["ms_step"]
        for label, r in by_label.items():
            print(f"{name:10} {label:22} {r['ms_step']:9.1f} {r['ms_step'] / first:7.3f} {r['ready_s']:8.1f} "
                  f"{r['peak_mb']:9.0f}")


if __name__ == "__main__":
    main()
