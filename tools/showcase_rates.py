"""How often the shipped toy workflows' settings give a prompt that names the picture's subject and colour.

    python tools/showcase_rates.py          # ~3 min on 2 cores

For each offline example (the pictures in ``workflows/``: a large yellow star on night, a small yellow star on
grass), PEZ Invert's shipped settings (8 tokens, 300 steps, 4 restarts; bundled toy CLIP) are run over seeds 0–9
with the toy CLIP's full vocabulary and with its declared one (the 20 words it was trained on, what the shipped
workflows use), and for the style workflow (both pictures → one prompt). A prompt counts when it holds the words
"star" and "yellow". Prints the rates and one example prompt each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pez_nodes.core import PEZConfig, invert, load_clip  # noqa: E402

SEEDS = range(10)


def main() -> None:
    torch.set_num_threads(2)
    pictures = {name: Image.open(ROOT / "workflows" / f"{name}.png") for name in ("pez_example", "pez_example_2")}
    cases = {"invert pez_example": [pictures["pez_example"]], "invert pez_example_2": [pictures["pez_example_2"]],
             "style (both pictures)": list(pictures.values())}
    for vocabulary in ("full", "declared"):
        model = load_clip("toy", vocabulary=vocabulary)
        for case, images in cases.items():
            texts = [invert(model, images, PEZConfig(prompt_len=8, steps=300, seed=s)).text for s in SEEDS]
            hits = sum({"star", "yellow"} <= set(t.split()) for t in texts)
            print(f"{vocabulary:8} {case:24} {hits:2d}/{len(texts)}  e.g. {texts[0]!r}", flush=True)


if __name__ == "__main__":
    main()
