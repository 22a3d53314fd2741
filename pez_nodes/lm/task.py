"""A classification task for a causal language model (the paper's Sec. 5): examples, template, verbalizer.

The paper's template is ``<prompt> {text} It was {mask}`` (AG News: ``It was about {mask}``): the learned
prompt comes first, then the example's text, and the LM's next-token prediction at ``{mask}`` — the end of
the sequence — is read over the verbalizer's words, one per class (``negative`` / ``positive``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

DEFAULT_TEMPLATE = "{text} It was {mask}"


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass(frozen=True)
class Task:
    """Examples, a template with ``{text}`` and a final ``{mask}``, and one single-token word per label."""

    template: str
    verbalizer: dict[str, str]

    def __post_init__(self):
        if "{text}" not in self.template or not self.template.rstrip().endswith("{mask}"):
            raise ValueError(f"template {self.template!r} needs {{text}} and must end with {{mask}} (a causal LM "
                             "predicts the word after the prompt); e.g. '{text} It was {mask}'.")
        if len(self.verbalizer) < 2:
            raise ValueError(f"verbalizer {self.verbalizer} needs a word for each of two or more labels; write "
                             "label=word,label=word.")

    def check_labels(self, examples: Sequence[Example], what: str) -> None:
        if not examples:
            raise ValueError(f"{what} has no examples; give (text, label) rows.")
        missing = sorted({e.label for e in examples} - set(self.verbalizer))
        if missing:
            raise ValueError(f"{what} has labels {missing} without a verbalizer word; add label=word for each.")

    def context(self, text: str) -> str:
        """What follows the learned prompt for one example: the template up to ``{mask}``, ``{text}`` filled."""
        return self.template.rstrip()[: -len("{mask}")].rstrip().replace("{text}", text)


def parse_verbalizer(spec: str) -> dict[str, str]:
    """``"negative=bad,positive=good"`` → ``{"negative": "bad", "positive": "good"}``."""
    pairs = [p.split("=", 1) for p in spec.split(",") if p.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise ValueError(f"verbalizer {spec!r} must be label=word pairs separated by commas, e.g. negative=bad,positive=good.")
    return {k.strip(): v.strip() for k, v in pairs}


def read_examples(path: Path | str) -> list[Example]:
    """(text, label) rows from a ``.csv`` (columns ``text``, ``label``) or ``.jsonl`` file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist; give a .csv or .jsonl file of (text, label) rows.")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        raise ValueError(f"data file {path.name!r} is neither .csv nor .jsonl.")
    bad = [i for i, r in enumerate(rows) if not isinstance(r, dict) or not str(r.get("text", "")).strip()
           or str(r.get("label", "")).strip() == ""]
    if bad:
        raise ValueError(f"data file {path.name!r}: row {bad[0] + 1} lacks a text or a label; every row needs both.")
    return [Example(str(r["text"]).strip(), str(r["label"]).strip()) for r in rows]
