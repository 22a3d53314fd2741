"""``pez eval``: the paper's evaluation loop (Table 1, Figures 5 and 6), as plain functions.

Inversion: for each target image, a prompt (learned by PEZ, or given), ``seeds`` generations from it,
and the reference CLIP's cosine similarity of each generation to the target; reported as mean ± std
over seeds and images. Distillation: generations from the original prompt and from prompts distilled to
``ratio`` × its token count, scored pairwise (same seed) by the reference CLIP.

Best-of-N by generation (``pick``): PEZ's top-N prompts for an image are each generated on other seeds
(``pick_seeds``) and the one whose pictures the judge finds closest is kept (``pick.py`` says why); that prompt
is then generated on the row's ``seeds`` and scored like the top-1 prompt, so the two compare fairly — the choice
was not made on the generations it is scored with.
"""

from __future__ import annotations

import dataclasses
import posixpath
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..core import PEZConfig, distill, invert
from .metric import image_similarity, paired_similarity
from .pick import pick_by_generated_images

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
class Picked:
    """Best-of-N by generation for one target: the prompt kept, its place among the candidates, its generations
    on the row's seeds and their similarities, and each candidate as (prompt, its CLIP similarity to the target
    under the model it was learned with, its generations' mean similarity on the seeds it was chosen with)."""

    prompt: str
    index: int
    similarities: list[float]
    candidates: list[tuple[str, float, float]]
    images: list = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "rank": self.index + 1, "of": len(self.candidates),
                "similarities": [round(s, 5) for s in self.similarities],
                "mean": round(statistics.fmean(self.similarities), 5),
                "candidates": [{"prompt": p, "clip_similarity": round(c, 5), "choice_similarity": round(g, 5)}
                               for p, c, g in self.candidates]}


@dataclass
class Row:
    """One prompt's generations and their similarities (and, with best-of-N by generation, the prompt picked)."""

    name: str
    prompt: str
    similarities: list[float]
    images: list = field(default_factory=list, repr=False)
    target: object = field(default=None, repr=False)
    picked: Picked | None = None

    def as_dict(self) -> dict:
        row = {"name": self.name, "prompt": self.prompt, "similarities": [round(s, 5) for s in self.similarities],
               "mean": round(statistics.fmean(self.similarities), 5)}
        if self.picked is not None:
            row["picked"] = self.picked.as_dict()
        return row


def summary(rows: Sequence[Row], picked: bool = False) -> dict:
    """Mean ± std over every (image, seed) pair; ``picked``: of the prompts best-of-N by generation kept (a row
    without a pick, e.g. a given prompt, counts with its own prompt)."""
    values = [s for r in rows for s in (r.picked.similarities if picked and r.picked else r.similarities)]
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
                       lms: dict | None = None, pick: int = 0, pick_seeds: Sequence[int] | None = None
                       ) -> tuple[list[Row], Timing]:
    """Invert (or take ``prompts[name]``), generate ``seeds``, score against the target with ``judge``.

    ``lms``: the language models the method uses, as the core takes them (``fluency_lm``, ``guide_lm``).

    ``pick`` ≥ 2: best-of-N by generation among PEZ's ``pick`` best distinct prompts (``config.top_k`` raised to
    it), each generated on ``pick_seeds`` (default: as many seeds, after ``seeds``) and judged against the target;
    the prompt kept is generated on ``seeds`` and scored as ``Row.picked``. A given prompt is not picked among.

    ``prompts`` keys are matched to the targets' names as ``match_prompts`` does; one that names no target is
    an error before anything runs (never a silently learned prompt instead of the given one).
    """
    from ..core import load_image

    prompts = match_prompts(prompts, [name for name, _ in targets]) if prompts is not None else {}
    check_pick(pick)
    if pick:
        config = dataclasses.replace(config, top_k=max(config.top_k, pick))
        pick_seeds = list(pick_seeds) if pick_seeds is not None else [max(seeds) + 1 + i for i in range(len(seeds))]
    timing, rows = Timing(), []
    for name, image in targets:
        if isinstance(image, (str, Path)):
            image = load_image(image)
        start = time.perf_counter()
        prompt, candidates = prompts.get(name), []
        if prompt is None:
            result = invert(clip, [image], config, **(lms or {}))
            prompt = result.text
            candidates = _candidates(result, pick) if pick else []
        timing.invert += time.perf_counter() - start
        images, sims = _generate_and_score(generator, judge, image, prompt, seeds, guidance, steps, timing)
        row = Row(name, prompt, sims, images, image)
        if candidates:
            row.picked = _pick(generator, judge, image, row, candidates, seeds, pick_seeds, guidance, steps, timing)
        rows.append(row)
        log(f"{name}: {prompt!r}  similarity {statistics.fmean(sims):.4f}")
        if row.picked is not None:
            log(f"{name}: picked #{row.picked.index + 1} of {len(candidates)} by generation: {row.picked.prompt!r}  "
                f"similarity {statistics.fmean(row.picked.similarities):.4f}")
    return rows, timing


def check_pick(pick: int) -> None:
    """Best-of-N by generation needs 2 or more candidates (0: off); anything else is one clear error."""
    if isinstance(pick, bool) or not isinstance(pick, int) or pick < 0 or pick == 1:
        raise ValueError(f"--pick-by-generation {pick!r}: give 2 or more candidates to choose among (0 or left out: "
                         "off).")


def _candidates(result, n: int) -> list[tuple[str, float]]:
    """The top-1 prompt first, then PEZ's next best distinct prompts, ``n`` at most: (prompt, CLIP similarity)."""
    found = [(result.text, result.similarity)]
    for c in result.candidates:
        if len(found) < n and c.text not in [t for t, _ in found]:
            found.append((c.text, c.similarity))
    return found


def _generate_and_score(generator, judge, image, prompt, seeds, guidance, steps, timing: Timing) -> tuple[list, list]:
    start = time.perf_counter()
    images = generator.generate(prompt, seeds, guidance, steps)
    timing.generate += time.perf_counter() - start
    start = time.perf_counter()
    sims = image_similarity(judge, [image], images)[0].tolist()
    timing.score += time.perf_counter() - start
    return images, sims


def _pick(generator, judge, image, row: Row, candidates: list[tuple[str, float]], seeds, pick_seeds, guidance, steps,
          timing: Timing) -> Picked:
    """Choose among ``candidates`` by their generations on ``pick_seeds``; score the choice on ``seeds``."""
    texts = [t for t, _ in candidates]
    start = time.perf_counter()
    generated = [generator.generate(t, pick_seeds, guidance, steps) for t in texts]
    timing.generate += time.perf_counter() - start
    start = time.perf_counter()
    chosen = pick_by_generated_images(judge, texts, [image], generated)
    timing.score += time.perf_counter() - start
    if chosen.prompt == row.prompt:
        images, sims = row.images, row.similarities
    else:
        images, sims = _generate_and_score(generator, judge, image, chosen.prompt, seeds, guidance, steps, timing)
    return Picked(chosen.prompt, chosen.index, sims, [(t, c, g) for (t, c), g in zip(candidates, chosen.scores)], images)


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
    """A plain-text table: name, mean ± std over seeds, prompt (and under it the prompt picked by generation)."""
    lines = [f"{'target':28} {'similarity':>17}  prompt"]
    for r in rows:
        std = statistics.pstdev(r.similarities)
        lines.append(f"{r.name[:28]:28} {statistics.fmean(r.similarities):8.4f} ± {std:6.4f}  {r.prompt}")
        if r.picked is not None:
            p = r.picked
            label = f"  picked #{p.index + 1} of {len(p.candidates)}"
            lines.append(f"{label:28} {statistics.fmean(p.similarities):8.4f} ± {statistics.pstdev(p.similarities):6.4f}"
                         f"  {p.prompt}")
    return "\n".join(lines)


def grid_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows to draw: each row, then its picked prompt's generations when another prompt was picked."""
    out = []
    for r in rows:
        out.append(r)
        if r.picked is not None and r.picked.prompt != r.prompt:
            out.append(Row(f"{r.name} picked #{r.picked.index + 1}", r.picked.prompt, r.picked.similarities,
                           r.picked.images, r.target))
    return out
