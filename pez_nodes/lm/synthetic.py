"""A synthetic classification world for toy language models, with something for a prompt to find.

Sentences describe toy-world scenes (``a large red circle on grass``). Several *questions* share one
verbalizer (``yes`` / ``no``) but answer different things — is the colour warm, the shape round, the thing
large, the place outdoors — and the training corpus marks which one is asked by a phrase before the
scene::

    warm colour : a large red circle on grass . It was yes
    round shape : a large red circle on grass . It was yes
    outdoors : a small blue star on night . It was no

Without the marker the LM cannot know the question (the bare template ``{text} It was {mask}`` sits near
chance); a learned prompt placed before the text can recover it — the structure the paper's
classification prompts exploit. Tokens are CLIP's BPE, so the same LMs can score CLIP prompts' fluency.
"""

from __future__ import annotations

import random

from .. import toyworld as tw
from .task import Example, Task

QUESTIONS = {
    "warm colour": lambda s: s.color in ("red", "orange", "yellow"),
    "round shape": lambda s: s.shape in ("circle", "ring"),
    "large thing": lambda s: s.size == "large",
    "outdoors": lambda s: s.background in ("grass", "sand"),
}
VERBALIZER = {"no": "no", "yes": "yes"}
TEMPLATE = "{text} It was {mask}"


def task() -> Task:
    return Task(TEMPLATE, dict(VERBALIZER))


def answer(question: str, scene: tw.Scene) -> str:
    return "yes" if QUESTIONS[question](scene) else "no"


def corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` training sentences: marked questions with answers (80 %) and plain captions (20 %)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        scene = tw.random_scene(rng)
        if rng.random() < 0.2:
            lines.append(scene.caption)
            continue
        question = rng.choice(list(QUESTIONS))
        lines.append(f"{question} : {scene.caption} . It was {answer(question, scene)}")
    return lines


def examples(question: str, n: int, seed: int = 0) -> list[Example]:
    """``n`` labelled captions for ``question``, balanced between yes and no."""
    if question not in QUESTIONS:
        raise ValueError(f"question {question!r} is unknown; use one of {', '.join(QUESTIONS)}.")
    rng = random.Random(seed)
    out: list[Example] = []
    want = {"yes": (n + 1) // 2, "no": n // 2}
    while any(want.values()):
        scene = tw.random_scene(rng)
        label = answer(question, scene)
        if want[label]:
            want[label] -= 1
            out.append(Example(scene.caption + " .", label))
    rng.shuffle(out)
    return out
