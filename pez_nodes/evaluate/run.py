"""``pez eval``: the paper's evaluation loop (Table 1, Figures 5 and 6), as plain functions.

Inversion: for each target image, a prompt (learned by PEZ, or given), ``seeds`` generations from it,
and the reference CLIP's cosine similarity of each generation to the target; reported as mean ± std
over seeds and images. Distillation: generations from the original prompt and from prompts distilled to
``ratio`` × its token count, scored pairwise (same seed) by the reference CLIP.
"""

from __future__ import annotations

import posixpath
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..core import PEZConfig, distill, invert
from .metric import image_similarity, paired_similarity

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
RATIOS = (0.7, 0.5, 0.3, 0.1)


@dataclass
class Timing:
    invert: float = 0.0
    generate: float = 0.0
    score: float = 0.0

    def as_dict(self) -> dict:
        return {"invert_s": round(self.invert, 2), "generate_s": round(self.generate, 2), "score_s": round(self.score, 2),
                "total_s": round(self.invert + self.generate + self.score, 2)}


@dataclass
class Row:
    """One prompt's generations and their similarities."""

    name: str
    prompt: str
    similarities: list[float]
    images: list = field(default_factory=list, repr=False)
    target: object = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {"name": self.name, "prompt": self.prompt, "similarities": [round(s, 5) for s in self.similarities],
                "mean": round(statistics.fmean(self.similarities), 5)}


def summary(rows: Sequence[Row]) -> dict:
    """Mean ± std over every (image, seed) pair, and the mean of per-image means."""
    values = [s for r in rows for s in r.similarities]
    return {"mean": round(statistics.fmean(values), 5), "std": round(statistics.pstdev(values), 5), "n": len(values)}


def image_files(folder: Path | str) -> list[Path]:
    """The images in ``folder`` (sorted), or one error naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"target folder {str(folder)!r} does not exist; give a folder of images.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"target folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); add some.")
    return files


def match_prompts(prompts, names: Sequence[str], what: str = "prompts",
                  folder: Path | str | None = None) -> dict[str, str]:
    """``prompts`` ({key: prompt}) keyed by the target ``names`` they name; every key must name one.

    A key matches a name as a user writes it: the name itself (an image's file name), a relative path from
    the images folder (``./a.png``, ``sub\\a.png`` → ``sub/a.png``) or, with ``folder``, the path of the file
    itself (absolute or from the current folder). A key that names no target, two keys for one target, or
    anything but an object of non-empty strings is one ``ValueError`` naming ``what`` and the fix.
    """
    if not isinstance(prompts, dict):
        raise ValueError(f"{what} holds a JSON {_json_kind(prompts)}; write an object of prompts keyed by image file "
                         'name, e.g. {"cat.png": "a photo of a cat"}.')
    names = list(names)
    files = {} if folder is None else {(Path(folder) / n).resolve(): n for n in names}
    matched: dict[str, str] = {}
    keys: dict[str, str] = {}
    for key, prompt in prompts.items():
        if not isinstance(key, str):
            raise ValueError(f"{what}: key {key!r} is not a string; key each prompt by its image's file name.")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{what}: the prompt for {key!r} is {prompt!r}; write each prompt as a non-empty string "
                             "(or drop the key to learn that image's prompt).")
        name = _name_of(key, names, files)
        if name is None:
            shown = ", ".join(names[:10]) + (f", ... ({len(names)} images)" if len(names) > 10 else "")
            where = f" in {str(folder)!r}" if folder is not None else ""
            raise ValueError(f"{what}: key {key!r} names no image{where}; key each prompt by one of the file names "
                             f"{shown}.")
        if name in keys:
            raise ValueError(f"{what}: keys {keys[name]!r} and {key!r} both name {name}; keep one.")
        keys[name], matched[name] = key, prompt
    return matched


def _name_of(key: str, names: Sequence[str], files: dict) -> str | None:
    if key in names:
        return key
    relative = posixpath.normpath(key.strip().replace("\\", "/"))
    if relative in names:
        return relative
    try:
        return files.get(Path(key.strip()).expanduser().resolve())
    except (OSError, RuntimeError, ValueError):  # not a path this system can resolve
        return None


def _json_kind(value) -> str:
    kinds = ((bool, "true/false"), (str, "string"), (int, "number"), (float, "number"), (list, "list"),
             (type(None), "null"))
    return next((kind for t, kind in kinds if isinstance(value, t)), type(value).__name__)


def evaluate_inversion(clip, generator, judge, targets: Sequence[tuple[str, object]], seeds: Sequence[int],
                       config: PEZConfig, prompts: dict[str, str] | None = None, guidance: float | None = None,
                       steps: int | None = None, log: Callable[[str], None] = lambda s: None,
                       lms: dict | None = None) -> tuple[list[Row], Timing]:
    """Invert (or take ``prompts[name]``), generate ``seeds``, score against the target with ``judge``.

    ``lms``: the language models the method uses, as the core takes them (``fluency_lm``, ``guide_lm``).

    ``prompts`` keys are matched to the targets' names as ``match_prompts`` does; one that names no target is
    an error before anything runs (never a silently learned prompt instead of the given one).
    """
    from ..core import load_image

    prompts = match_prompts(prompts, [name for name, _ in targets]) if prompts is not None else {}
    timing, rows = Timing(), []
    for name, image in targets:
        if isinstance(image, (str, Path)):
            image = load_image(image)
        start = time.perf_counter()
        prompt = prompts.get(name)
        if prompt is None:
            prompt = invert(clip, [image], config, **(lms or {})).text
        timing.invert += time.perf_counter() - start
        start = time.perf_counter()
        images = generator.generate(prompt, seeds, guidance, steps)
        timing.generate += time.perf_counter() - start
        start = time.perf_counter()
        sims = image_similarity(judge, [image], images)[0].tolist()
        timing.score += time.perf_counter() - start
        rows.append(Row(name, prompt, sims, images, image))
        log(f"{name}: {prompt!r}  similarity {statistics.fmean(sims):.4f}")
    return rows, timing


def evaluate_distillation(clip, generator, judge, text: str, seeds: Sequence[int], config: PEZConfig,
                          ratios: Sequence[float] = RATIOS, guidance: float | None = None, steps: int | None = None,
                          log: Callable[[str], None] = lambda s: None, lms: dict | None = None
                          ) -> tuple[list[Row], Timing]:
    """Generations of ``text`` vs of its distillations to ``ratio`` × its tokens (Figure 6), pairwise by seed."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the text to distill is empty; give a prompt.")
    bad = [r for r in ratios if not 0 < r <= 1]
    if bad:
        raise ValueError(f"distillation ratios {bad} must be in (0, 1].")
    timing = Timing()
    n_tokens = len(clip.tokenize(text))
    start = time.perf_counter()
    original = generator.generate(text, seeds, guidance, steps)
    timing.generate += time.perf_counter() - start
    rows = [Row("original (1.0)", text, [1.0] * len(original), original)]
    for ratio in ratios:
        length = max(1, round(ratio * n_tokens))
        start = time.perf_counter()
        prompt = distill(clip, text, PEZConfig(**{**config.to_dict(), "prompt_len": length}), **(lms or {})).text
        timing.invert += time.perf_counter() - start
        start = time.perf_counter()
        images = generator.generate(prompt, seeds, guidance, steps)
        timing.generate += time.perf_counter() - start
        start = time.perf_counter()
        sims = paired_similarity(judge, original, images).tolist()
        timing.score += time.perf_counter() - start
        rows.append(Row(f"ratio {ratio} ({length} tokens)", prompt, sims, images))
        log(f"ratio {ratio}: {prompt!r}  similarity to the original's generations {statistics.fmean(sims):.4f}")
    return rows, timing


def table(rows: Sequence[Row]) -> str:
    """A plain-text table: name, mean ± std over seeds, prompt."""
    lines = [f"{'target':28} {'similarity':>17}  prompt"]
    for r in rows:
        std = statistics.pstdev(r.similarities)
        lines.append(f"{r.name[:28]:28} {statistics.fmean(r.similarities):8.4f} ± {std:6.4f}  {r.prompt}")
    return "\n".join(lines)
