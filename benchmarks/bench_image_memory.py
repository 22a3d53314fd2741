"""Peak memory of opening + preprocessing one image: a small PNG, a ~100-megapixel PNG and JPEG.

    python benchmarks/bench_image_memory.py                   # old and new images.py side by side, 224 px model
    python benchmarks/bench_image_memory.py --impl new --side 6000 --size 32

Each (case, implementation) runs in a fresh subprocess (torch on one thread), so every peak is its own:
the child reports its peak RSS (``ru_maxrss``) right after importing torch/numpy/Pillow/images.py
(baseline), then the peak after ``preprocess(iter_images([path], ...))`` as ``image_features`` calls it, and the time.
"old" is ``pez_nodes/core/images.py`` as of ``--old-ref`` (default: the commit before reduced decoding),
read with ``git show``; "new" is the working tree's. Both are imported straight from their files, so
neither pulls in open_clip. The big files are generated into a temporary folder (a noise tile repeated
with numpy, plus a gradient, so they are cheap to make and not trivially compressible by JPEG).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_REF = "6955be1"  # last commit whose images.py decoded huge files in full and copied them twice


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(impl_file: str, path: str, size: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy  # noqa: F401
    import PIL.Image
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)  # 100 MP is over Pillow's warning line
    spec = importlib.util.spec_from_file_location("images_under_test", impl_file)
    images = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(images)
    base, rss_after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, _rss_mb()
    mean, std = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
    t0 = time.perf_counter()
    try:
        items = images.iter_images([path], max_side=size)
    except TypeError:  # the old iter_images takes paths only
        items = images.iter_images([path])
    pixels = images.preprocess(items, size, mean, std)
    seconds = time.perf_counter() - t0
    assert pixels.shape == (1, 3, size, size) and torch.isfinite(pixels).all()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(base_mb=base, rss_after_imports_mb=rss_after_imports, peak_mb=peak, seconds=seconds)))


def make_files(folder: Path, side: int) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    tile = rng.integers(0, 64, (256, 256, 3), dtype=np.uint8)
    reps = -(-side // 256)
    big = np.tile(tile, (reps, reps, 1))[:side, :side]
    big += np.linspace(0, 191, side, dtype=np.float32).astype(np.uint8)[None, :, None]  # left dark, right bright
    files = {"small PNG 640x480": folder / "small.png",
             f"{side}x{side} PNG": folder / "big.png", f"{side}x{side} JPEG": folder / "big.jpg"}
    Image.fromarray(big[:480, :640]).save(files["small PNG 640x480"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = Image.fromarray(big)
        del big
        image.save(files[f"{side}x{side} PNG"], compress_level=1)
        image.save(files[f"{side}x{side} JPEG"], quality=90)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", choices=["old", "new", "both"], default="both")
    ap.add_argument("--old-ref", default=OLD_REF, help="git revision whose images.py is 'old'")
    ap.add_argument("--side", type=int, default=10000, help="side of the big square images in pixels")
    ap.add_argument("--size", type=int, default=224, help="the model's input size")
    ap.add_argument("--make", metavar="FOLDER", help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=2, metavar=("IMPL_FILE", "IMAGE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.size)
    if args.make:
        return print(json.dumps({case: str(p) for case, p in make_files(Path(args.make), args.side).items()}))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        impls = {"new": ROOT / "pez_nodes" / "core" / "images.py"}
        if args.impl in ("old", "both"):
            old = subprocess.run(["git", "show", f"{args.old_ref}:pez_nodes/core/images.py"], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout
            (folder / "old_images.py").write_text(old)
            impls["old"] = folder / "old_images.py"
        if args.impl != "both":
            impls = {args.impl: impls[args.impl]}
        t0 = time.perf_counter()
        # in a child too: ru_maxrss survives fork + exec, so this process must never hold a big image
        out = subprocess.run([sys.executable, __file__, "--make", str(folder), "--side", str(args.side)],
                             capture_output=True, text=True, check=True)
        files = {case: Path(p) for case, p in json.loads(out.stdout).items()}
        print(f"files made in {time.perf_counter() - t0:.1f} s; model input {args.size} px; old = {args.old_ref}")
        print(f"{'case':<20} {'impl':<4} {'file MB':>8} {'base MB':>8} {'peak MB':>8} {'peak-base':>9} {'seconds':>8}")
        for case, path in files.items():
            for name, impl in sorted(impls.items(), reverse=True):  # old first
                out = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--child", str(impl), str(path)],
                                     capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                if out.returncode != 0:
                    print(f"{case:<20} {name:<4} failed: {out.stderr.strip().splitlines()[-1]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{case:<20} {name:<4} {path.stat().st_size / 2**20:>8.1f} {r['base_mb']:>8.0f} "
                      f"{r['peak_mb']:>8.0f} {r['peak_mb'] - r['base_mb']:>9.0f} {r['seconds']:>8.2f}")


if __name__ == "__main__":
    main()
