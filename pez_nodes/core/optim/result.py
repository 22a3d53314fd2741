"""``PEZResult``: what one run gives back — the prompt a user copies, and how good it is."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Candidate:
    """A prompt and the similarity of *its re-tokenized text* to the targets."""

    text: str
    similarity: float
    token_ids: list[int] = field(default_factory=list)


@dataclass
class PEZResult:
    """The outcome of :func:`pez_nodes.core.optimize_prompt`.

    Attributes:
        text: the best prompt; pasting it anywhere gives exactly ``similarity``.
        token_ids: ``tokenize(text)``, the ids that were scored.
        similarity: weighted mean cosine of ``text``'s feature with the targets.
        steps: optimisation steps run (fewer than asked when stopped early).
        seconds: wall time of the optimisation.
        stop_reason: ``"completed"``, ``"callback"`` (asked to stop) or ``"patience"`` (plateau).
        best_per_restart: the best prompt of each restart.
        candidates: the ``top_k`` best distinct prompts, best first.
        history: ``(step, best similarity so far, mean similarity of this step's prompts)``, ~100 rows.
        model: the model's name.
        notes: things the user should know (a text was cut to fit the window, ...).
        target_cosines: cosine of ``text``'s feature with each target, in the order given (``similarity``
            is their weighted mean, ``Σ w·cos / Σ|w|``).
        method: the optimiser that found it (``PEZConfig.method``).
        soft_similarity: for ``method="soft"``: the similarity of the final continuous prompt itself (best
            restart), before its one projection (the gap to ``similarity`` is what soft prompts lose as text).
        soft_prompt: for ``method="soft"``: that continuous prompt ([M, D] input embeddings; not in ``to_dict``).
        perplexity: with ``PEZConfig.fluency``: the fluency LM's perplexity of ``text`` (``exp F``, lower reads
            more like its language); ``None`` without.
    """

    text: str
    token_ids: list[int]
    similarity: float
    steps: int
    seconds: float
    stop_reason: str = "completed"
    best_per_restart: list[Candidate] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    history: list[tuple[int, float, float]] = field(default_factory=list)
    model: str = ""
    notes: list[str] = field(default_factory=list)
    target_cosines: list[float] = field(default_factory=list)
    method: str = "pez"
    soft_similarity: float | None = None
    soft_prompt: object = field(default=None, repr=False)
    perplexity: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self, dict_factory=lambda items: {k: v for k, v in items if k != "soft_prompt"})
        d["prompt"] = d.pop("text")
        return d
