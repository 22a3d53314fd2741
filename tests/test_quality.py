"""PEZ really works: real optimisation on the bundled toy CLIP, thresholds measured and written down.

Every test here projects onto the FULL vocabulary (49,406 ordinary tokens, the default), so sub-word
pieces, re-tokenization and junk tokens are all in play. Numbers measured on the shipped toy model
(2-core CPU) are in each docstring; thresholds sit below them with a margin for platform differences
in float arithmetic.
"""

import random

import pytest

from pez_nodes import toyworld as tw
from pez_nodes.core import PEZConfig, Target, distill, encode_text, invert, optimize

INVERT = dict(prompt_len=8, steps=300, restarts=4)


def _words(text: str) -> set[str]:
    return set(text.lower().replace(",", " ").split())


def test_inversion_recovers_attribute_words(toy):
    """20 random toy-world images, each inverted on its own over the full vocabulary (8 tokens, 300 steps,
    4 restarts).

    Measured: 90.0 % of the 80 attribute words appear in the learned prompts (72/80; with the model's
    declared 20-word vocabulary the previous model reached 93.8 %). Threshold 80 % (the aim: 70 %).
    """
    rng = random.Random(2024)
    hits = total = 0
    for i in range(20):
        scene = tw.random_scene(rng)
        result = invert(toy, [tw.render(scene, size=128, seed=500 + i)], PEZConfig(seed=i, **INVERT))
        words = _words(result.text)
        hits += sum(w in words for w in scene.words)
        total += len(scene.words)
    share = hits / total
    print(f"attribute words recovered: {share:.1%}")
    assert share >= 0.80


@pytest.mark.parametrize("caption", ["a small red circle on grass", "a large white star on night",
                                     "a photo of a small purple diamond on brick"])
def test_distilled_prompt_matches_the_caption(toy, caption):
    """Distil each caption into 4 tokens over the full vocabulary (300 steps, 4 restarts). Measured cosines:
    0.9999, 0.9998, 0.9988 ('small red grass circle', 'large white star night', 'small brick purple
    diamond'). Threshold 0.95."""
    result = distill(toy, caption, PEZConfig(prompt_len=4, steps=300, restarts=4))
    cos = float(encode_text(toy, result.text) @ encode_text(toy, caption))
    print(f"{caption!r} -> {result.text!r}: {cos:.4f}")
    assert cos >= 0.95
    assert abs(cos - result.similarity) < 1e-4


def test_negative_target_reduces_the_attribute_it_names(toy):
    """Red shapes inverted with and without a negative text target "red" (weight −1, as strong as the
    image), 8 seeds each.

    Measured: "red" in 8/8 prompts without the negative, 0/8 with it (with weight −0.5 still 6/8: the
    objective is ``Σ w·cos / Σ|w|``, so −0.5 is a third of it). Thresholds: at least 6/8 without, and at
    least 4 fewer with it.
    """
    scenes = [tw.Scene(shape, "red", "large", bg) for shape, bg in [("circle", "grass"), ("square", "sand"),
                                                                     ("star", "night"), ("cross", "brick")]]
    images = [tw.render(s, size=96, seed=k) for k, s in enumerate(scenes)]
    plain = with_negative = 0
    for seed in range(8):
        img = images[seed % len(images)]
        a = optimize(toy, [Target(image=img)], PEZConfig(seed=seed, **INVERT))
        b = optimize(toy, [Target(image=img), Target(text="red", weight=-1.0)], PEZConfig(seed=seed, **INVERT))
        plain += "red" in _words(a.text)
        with_negative += "red" in _words(b.text)
    print(f"'red' without negative: {plain}/8, with negative: {with_negative}/8")
    assert plain >= 6 and with_negative <= plain - 4
