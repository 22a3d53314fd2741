"""Soak: many optimising prompts back to back through one real ComfyUI server; its memory must stay flat.

    COMFYUI_DIR=/path/to/ComfyUI python benchmarks/soak_comfyui.py [--prompts 50] [--steps 40]

Starts ComfyUI (CPU, one thread) with this pack linked, then queues ``--prompts`` prompts that mix
the shipped toy workflows (invert, distill, concat), each with a new seed so none is a cache hit, and
reads the server's resident memory after each. Prints a row every 10 prompts and the growth from
prompt 10 to the last (aim: < 100 MB, every prompt a success). Exit status 1 if a prompt fails or
the aim is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # harness: the test-only ComfyUI launcher
sys.path.insert(0, str(ROOT))

from pez_nodes.clients import comfyui as client  # noqa: E402
from harness.comfyui_server import running_comfyui  # noqa: E402

WORKFLOWS = ("pez_invert_toy", "pez_distill_toy", "pez_concat_toy")
IMAGES = [ROOT / "workflows" / "pez_example.png", ROOT / "workflows" / "pez_example_2.png"]
AIM_MB = 100


def workflow(kind: str, seed: int, steps: int) -> dict:
    wf = json.loads((ROOT / "workflows" / "api" / f"{kind}.json").read_text())
    for node in wf.values():
        if node["class_type"] in client.PEZ_NODES:
            node["inputs"].update(seed=seed, steps=steps)
    return wf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=50)
    ap.add_argument("--steps", type=int, default=40, help="optimisation steps per PEZ node")
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR"), help="ComfyUI folder (default: $COMFYUI_DIR)")
    args = ap.parse_args()
    if not args.comfyui:
        print("set COMFYUI_DIR (or --comfyui) to a ComfyUI folder; see README 'Testing with ComfyUI'", file=sys.stderr)
        return 2
    log = Path(tempfile.mkdtemp(prefix="pez-soak-")) / "server.log"
    rss: list[float] = []
    failures = 0
    with running_comfyui(args.comfyui, log) as server:
        comfy = client.Comfy(server.address, timeout=600)
        start_rss = server.rss_mb()
        print(f"ComfyUI up at {server.address}, RSS {start_rss:.0f} MB; {args.prompts} prompts, {args.steps} steps each")
        print(f"{'prompt':>6} {'workflow':<16} {'status':<8} {'seconds':>7} {'RSS MB':>7}")
        started = time.perf_counter()
        for i in range(1, args.prompts + 1):
            kind = WORKFLOWS[(i - 1) % len(WORKFLOWS)]
            t0 = time.perf_counter()
            _, status, prompts = client.run(comfy, workflow(kind, 1000 + i, args.steps), IMAGES,
                                            client.Progress(quiet=True))
            ok = status == "success" and prompts and all(p.strip() for p in prompts.values())
            failures += not ok
            rss.append(server.rss_mb())
            if i % 10 == 0 or i == 1 or not ok:
                print(f"{i:>6} {kind:<16} {status:<8} {time.perf_counter() - t0:>7.1f} {rss[-1]:>7.0f}", flush=True)
        total = time.perf_counter() - started
    base = rss[min(9, len(rss) - 1)]
    growth = rss[-1] - base
    print(f"\n{args.prompts} prompts in {total:.0f} s, {failures} failed; RSS after prompt 1: {rss[0]:.0f} MB, "
          f"after prompt {min(10, len(rss))}: {base:.0f} MB, after prompt {len(rss)}: {rss[-1]:.0f} MB, "
          f"peak {max(rss):.0f} MB; growth from prompt 10 to {len(rss)}: {growth:+.0f} MB (aim < {AIM_MB} MB)")
    return 0 if failures == 0 and growth < AIM_MB else 1


if __name__ == "__main__":
    sys.exit(main())
