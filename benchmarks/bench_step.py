"""Per-step speed, compute efficiency and memory: our loop vs the paper's, side by side in one run.

    python benchmarks/bench_step.py                       # toy, ViT-L-14, ViT-H-14; restarts 1 and 8; CPU
    python benchmarks/bench_step.py --models toy --restarts 1,8 --steps 20
    python benchmarks/bench_step.py --device cuda --models ViT-H-14 --full-steps 3000   # GPU wall times
    python benchmarks/bench_step.py --compiled --models toy,ViT-B-32 --restarts 4       # + the compiled step
    python benchmarks/bench_step.py --device cuda --compiled --models ViT-L-14,sdxl     # SDXL: both text towers

``--compiled`` adds our loop with ``PEZConfig.compile_step="on"`` (``core/optim/step.py``: the whole step as one
``torch.compile(fullgraph=True)`` graph; on CUDA a CUDA graph, ``mode="reduce-overhead"``) beside the eager one,
in the same run: its ms/step, the ratio eager / compiled, and the seconds its first (warm-up) run took, which
include compiling (a process compiles once per model and shape; later runs reuse the graph).

Real-size models use random weights (open_clip's text tower config, nothing downloaded; the vision
tower is shrunk, as PEZ's steps never use it): speed does not depend on the weights. Each
(model, restarts, loop) case runs in its own subprocess so its peak RSS is its own. Prints ms/step for both loops and their ratio; our loop's useful FLOP/s beside the peak
of a large fp32 matmul, and the weight bytes it streams per second beside a large copy's bandwidth
(with one restart a step is a few rows through every weight matrix: memory-bound, not compute-bound),
both measured in the same run; and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def towers(model) -> list:
    """The text towers a step runs: one, or a ``JointClip``'s (the SDXL pair)."""
    return [t.text for t in model.towers] if hasattr(model, "towers") else [model]


def text_flops_per_step(model, prompt_len: int, restarts: int, length: int, vocab: int) -> float:
    """Useful FLOPs of one step: the text transformer's forward on ``length`` tokens and its backward to
    the inputs only (the weights are frozen, so ≈ one more forward), plus the projection matmul over
    ``vocab`` rows. The paper's extra no-grad pass is not counted as useful work."""
    if len(towers(model)) > 1:
        return sum(text_flops_per_step(t, prompt_len, restarts, length, vocab) for t in towers(model))
    t = model.tower
    width = t.token_embedding.weight.shape[1]
    layers = len(t.transformer.resblocks)
    per_layer = 24 * length * width * width + 4 * length * length * width
    encoder = 2 * restarts * layers * per_layer
    projection = 2 * restarts * prompt_len * vocab * width
    return encoder + projection


def weight_bytes_per_step(model, vocab: int) -> float:
    """Bytes of weights one step must read at least: the text transformer twice (forward, backward),
    and the normalised vocabulary table once."""
    if len(towers(model)) > 1:
        return sum(weight_bytes_per_step(t, vocab) for t in towers(model))
    t = model.tower
    params = sum(p.numel() * p.element_size() for p in t.transformer.parameters())
    return 2 * params + vocab * t.token_embedding.weight.shape[1] * 4


def peak_bandwidth(device: str, seconds: float = 1.5) -> float:
    """Bytes per second of a large tensor copy (read + write), the memory-bound ceiling."""
    import torch

    a = torch.empty(64 * 2 ** 20, device=device)  # 256 MB
    b = torch.empty_like(a)
    b.copy_(a)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        b.copy_(a)
        count += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * a.numel() * 4 * count / (time.perf_counter() - start)


def peak_matmul_flops(device: str, seconds: float = 2.0) -> float:
    import torch

    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n ** 3 * count / (time.perf_counter() - start)


def build(name: str, device: str):
    import open_clip
    import torch

    from pez_nodes.core import ClipBackbone, load_clip

    if name == "toy":
        return load_clip("toy", device=device)  # the full 49,406-token vocabulary, as the paper's loop searches
    if name == "sdxl":  # SDXL's two text encoders as PEZ CLIP from Workflow joins them: one prompt for both
        from pez_nodes.core import JointClip, Tower

        return JointClip([Tower("clip_l", build("ViT-L-14", device)), Tower("clip_g", build("ViT-bigG-14", device))],
                         "SDXL pair (random weights)")
    cfg = dict(open_clip.get_model_config(name))
    # the real text tower; a token-sized vision tower (PEZ's steps never touch it, and it saves minutes and GBs)
    cfg["vision_cfg"] = {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16}
    with torch.inference_mode(False):
        model = open_clip.CLIP(**cfg).to(device)
    return ClipBackbone(model, open_clip.get_tokenizer(name), f"{name} (random weights)", (0.5,) * 3, (0.5,) * 3, 32)


def run_case(args) -> dict:
    """One case, in this process: time ``steps`` steps after ``warmup`` steps."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.model, args.device)
    from pez_nodes.core import encode_text

    texts = ("a photo of a cat", "a red car on a street", "an oil painting of mountains", "a bowl of fruit")
    targets = F.normalize(torch.stack([encode_text(model, t) for t in texts]).float(), dim=-1)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    if args.loop == "paper":
        from paper_loop import paper_loop

        def go(n):
            return paper_loop(model, targets, args.prompt_len, n, restarts=args.restarts).seconds
        length, vocab = model.context_length, model.token_embedding.shape[0]
    else:
        from pez_nodes.core import PEZConfig, PromptLayout, optimize_prompt, projector_for
        from pez_nodes.core.optim import step as step_module
        from pez_nodes.core.optim.objective import ClipObjective

        objective = ClipObjective(model, PromptLayout.plain(args.prompt_len), targets, torch.ones(4))
        step_module.BACKEND = args.backend
        compile_step = "on" if args.loop == "compiled" else "off"

        def go(n):
            config = PEZConfig(prompt_len=args.prompt_len, steps=n, restarts=args.restarts, device=args.device,
                               compile_step=compile_step)
            result = optimize_prompt(objective, projector_for(model), config)
            if result.notes:
                raise SystemExit("; ".join(result.notes))  # the compiled step fell back to eager: no comparison
            return result.seconds
        length, vocab = args.prompt_len + 2, len(projector_for(model).allowed_ids)
    start = time.perf_counter()
    go(args.warmup)
    first_run = time.perf_counter() - start
    sync()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    seconds = go(args.steps)
    sync()
    out = {"ms_per_step": 1000 * seconds / args.steps, "first_run_s": first_run,
           "flops_per_step": text_flops_per_step(model, args.prompt_len, args.restarts, length, vocab),
           "bytes_per_step": weight_bytes_per_step(model, vocab),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if args.device.startswith("cuda"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    if args.full_steps:
        out["full_run_seconds"] = go(args.full_steps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="toy,ViT-L-14,ViT-H-14")
    ap.add_argument("--restarts", default="1,8")
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--steps", type=int, default=0, help="timed steps per case (default: 40 toy, 10 real-size)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full-steps", type=int, default=0, help="also time a whole run of this many steps")
    ap.add_argument("--compiled", action="store_true",
                    help="also time our loop with compile_step='on' (the whole step through torch.compile)")
    ap.add_argument("--backend", default="inductor", help="torch.compile backend of --compiled (default inductor)")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--loop", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        args.restarts = int(args.restarts)
        print(json.dumps(run_case(args)))
        return

    import torch

    torch.set_num_threads(args.threads)
    peak = peak_matmul_flops(args.device)
    bandwidth = peak_bandwidth(args.device)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {args.threads} threads"
    print(f"device: {device_name}; peak fp32 matmul (2048²): {peak / 1e9:.1f} GFLOP/s; "
          f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s\n")
    header = (f"{'model':<10} {'R':>2} | {'paper ms/step':>13} {'ours ms/step':>12} {'speed-up':>8} | "
              f"{'ours GFLOP/s':>12} {'% of peak':>9} {'weights GB/s':>12} {'% of copy':>9} | "
              f"{'paper RSS MB':>12} {'ours RSS MB':>11}")
    extra = " | paper GPU MB  ours GPU MB" if args.device.startswith("cuda") else ""
    full = f" | paper {args.full_steps} steps  ours {args.full_steps} steps" if args.full_steps else ""
    graphs = "CUDA graph" if args.device.startswith("cuda") and args.backend == "inductor" else "compiled"
    comp = f" | {graphs + ' ms/step':>19} {'eager/compiled':>14} {'1st run s':>9}" if args.compiled else ""
    print(header + extra + full + comp)
    print("-" * (len(header) + len(extra) + len(full) + len(comp)))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for model in args.models.split(","):
        steps = args.steps or (40 if model == "toy" else 10)
        for r in args.restarts.split(","):
            res = {}
            for loop in ("paper", "ours", "compiled")[: 3 if args.compiled else 2]:
                if loop == "paper" and model == "sdxl":  # the paper's code runs one tower
                    res[loop] = {k: float("nan") for k in ("ms_per_step", "peak_rss_mb", "peak_gpu_mb",
                                                             "full_run_seconds")}
                    continue
                cmd = [sys.executable, __file__, "--case", "1", "--model", model, "--loop", loop, "--restarts", r,
                       "--prompt-len", str(args.prompt_len), "--steps", str(steps), "--warmup", str(args.warmup),
                       "--threads", str(args.threads), "--device", args.device, "--full-steps", str(args.full_steps),
                       "--backend", args.backend]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if out.returncode:
                    raise SystemExit(out.stderr)
                res[loop] = json.loads(out.stdout.strip().splitlines()[-1])
            p, o = res["paper"], res["ours"]
            achieved = o["flops_per_step"] / (o["ms_per_step"] / 1000)
            streamed = o["bytes_per_step"] / (o["ms_per_step"] / 1000)
            line = (f"{model:<10} {r:>2} | {p['ms_per_step']:>13.1f} {o['ms_per_step']:>12.1f} "
                    f"{p['ms_per_step'] / o['ms_per_step']:>7.2f}x | {achieved / 1e9:>12.1f} {100 * achieved / peak:>8.0f}% "
                    f"{streamed / 1e9:>12.1f} {100 * streamed / bandwidth:>8.0f}% | "
                    f"{p['peak_rss_mb']:>12.0f} {o['peak_rss_mb']:>11.0f}")
            if extra:
                line += f" | {p['peak_gpu_mb']:>12.0f} {o['peak_gpu_mb']:>11.0f}"
            if full:
                line += f" | {p['full_run_seconds']:>10.1f} s  {o['full_run_seconds']:>10.1f} s"
            if args.compiled:
                c = res["compiled"]
                line += (f" | {c['ms_per_step']:>19.2f} {o['ms_per_step'] / c['ms_per_step']:>13.2f}x "
                         f"{c['first_run_s']:>9.1f}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
