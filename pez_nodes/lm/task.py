"""A classification task for a causal language model (the paper's Sec. 5): examples, template, verbalizer.

The paper's template is ``<prompt> {text} It was {mask}`` (AG News: ``It was about {mask}``): the learned
prompt comes first, then the example's text, and the LM's next-token prediction at ``{mask}`` — the end of
the sequence — is read over the verbalizer's words, one per class (``negative`` / ``positive``).
"""

from __future__ import annotations

import csv
import io
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
        masks = self.template.count("{mask}")
        if "{text}" not in self.template or not self.template.rstrip().endswith("{mask}"):
            raise ValueError(f"template {self.template!r} needs {{text}} and must end with {{mask}} (a causal LM "
                             "predicts the word after the prompt); e.g. '{text} It was {mask}'.")
        if masks > 1:
            raise ValueError(f"template {self.template!r} has {masks} {{mask}}s; a causal LM predicts one word, so "
                             "write one {mask}, at the end, e.g. '{text} It was {mask}'.")
        if len(self.verbalizer) < 2:
            raise ValueError(f"verbalizer {self.verbalizer} needs a word for each of two or more labels; write "
                             "label=word,label=word.")
        shared = _shared_words(self.verbalizer)
        if shared:
            word, labels = shared
            raise ValueError(f"verbalizer word {word!r} is given to labels {labels}; the LM could not tell them "
                             "apart, so give each label its own word.")

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
    labels = [k.strip() for k, _ in pairs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"verbalizer {spec!r} names label {twice[0]!r} more than once; give each label one word.")
    return {k.strip(): v.strip() for k, v in pairs}


def _shared_words(verbalizer: dict[str, str]) -> tuple[str, list[str]] | None:
    """The first word given to two or more labels, and those labels (``None`` when every word is its own)."""
    by_word: dict[str, list[str]] = {}
    for label, word in verbalizer.items():
        by_word.setdefault(word.strip(), []).append(label)
    return next(((word, labels) for word, labels in by_word.items() if len(labels) > 1), None)


def read_examples(path: Path | str) -> list[Example]:
    """(text, label) rows from a ``.csv`` (a header row with ``text`` and ``label``) or ``.jsonl`` file.

    Either may start with a byte-order mark (spreadsheets save CSV "UTF-8" with one). An error names the file
    and the line as an editor numbers it (1-based, the CSV's header and blank lines counted).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist; give a .csv or .jsonl file of (text, label) rows.")
    if path.suffix.lower() not in (".csv", ".jsonl"):
        raise ValueError(f"data file {str(path)!r} is neither .csv nor .jsonl; save it as one of them.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"data file {str(path)!r} is not UTF-8 text (byte {e.start}); save it as UTF-8 "
                         "(a spreadsheet's \"CSV UTF-8\").") from None
    rows = _jsonl_rows(path, text) if path.suffix.lower() == ".jsonl" else _csv_rows(path, text)
    for line, row in rows:
        if not isinstance(row, dict) or not _field(row, "text") or not _field(row, "label"):
            raise ValueError(f"data file {str(path)!r}, line {line}: the row lacks a text or a label; every row "
                             "needs both.")
    return [Example(_field(r, "text"), _field(r, "label")) for _, r in rows]


def _field(row: dict, name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value).strip()


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, object]]:
    rows = []
    for line, content in enumerate(text.split("\n"), start=1):  # JSON Lines' separator (not U+2028, legal in strings)
        if not content.strip():
            continue
        try:
            rows.append((line, json.loads(content)))
        except json.JSONDecodeError as e:
            raise ValueError(f"data file {str(path)!r}, line {line}: not JSON ({e.msg} at column {e.colno}); write one "
                             '{"text": ..., "label": ...} object a line.') from None
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, dict]] = []
    columns, line = None, 1
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                if columns is None:
                    columns = [f.strip() for f in fields]
                else:
                    rows.append((line, dict(zip(columns, fields))))
            line = reader.line_num + 1  # where the next row starts (a quoted field may span lines)
    except csv.Error as e:
        raise ValueError(f"data file {str(path)!r}, line {line}: not CSV ({e}); check its quotes.") from None
    if columns is not None and ("text" not in columns or "label" not in columns):
        raise ValueError(f"data file {str(path)!r} has the columns {columns} in its header row; it needs the columns "
                         "text and label.")
    return rows
