"""``PEZConfig``: every knob of one PEZ run, checked where it enters; the paper's optimiser defaults, with an
early stop (``patience``) the paper does not have — ``defaults.PAPER`` turns it off."""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, fields, replace

from .methods import METHODS
from .step import COMPILE_MODES


MAX_SYNC_EVERY = 64  # a callback (progress, cancel) at least every 64 steps


@dataclass
class PEZConfig:
    """Settings of one PEZ optimisation (Algorithm 1 of Wen et al., 2023).

    Args:
        prompt_len: learned tokens M (paper: 16). At most the encoder's window minus start/end (75 for CLIP).
        steps: optimisation steps (paper: 3000).
        lr: AdamW learning rate on the continuous prompt P (paper: 0.1).
        weight_decay: AdamW weight decay (paper: 0.1).
        restarts: independent prompts optimised together as one batch (the paper's ``prompt_bs``; its
            default is 1, ours 4: a batch of 4 costs little more than one and reaches the paper's 3000-step
            similarity in a fraction of its time — ``benchmarks/bench_quality.py``).
        targets_per_step: targets sampled for each step's loss (the paper's ``batch_size``); ``None`` uses
            all targets every step. The best prompt is always scored against all targets.
        seed: seeds the initial tokens and target sampling; the same seed gives the same prompt.
        patience: stop when the best similarity has not improved for this many steps (0: never). The default
            500 (``benchmarks/bench_patience.py``, toy CLIP, 8 tasks): runs take a median 42 % (8 tokens) / 23 %
            (16 tokens) of the 3000 steps and end a median ≤ 0.0002 (worst 0.008) below running all of them;
            1000 took 69 % / 51 % for a worst 0.0008, 300 took 18 % / 13 % for a worst 0.017.
        top_k: how many distinct best prompts the result lists in ``candidates``.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        precision: ``"auto"`` (bf16 autocast on a CUDA GPU that supports it, else fp32), ``"fp32"``,
            ``"bf16"`` or ``"fp16"`` (autocast on CUDA). Results are always re-scored in fp32.
        compile: run the text encoder through ``torch.compile`` (faster on GPU after a warm-up).
        compile_step: run each whole step of a gradient method — projection, encoder forward, loss, backward,
            AdamW update (``step.py``) — as one ``torch.compile(fullgraph=True)`` graph, on CUDA as a CUDA graph
            (``mode="reduce-overhead"``): ``"off"`` (default: eager), ``"on"``, or ``"auto"`` (on for CUDA, off on
            the CPU, where compiling costs more than it saves). If compiling fails the run goes on eagerly and
            the result's ``notes`` say so.
        sync_every: steps between the host's reads of the device — best-so-far, patience, the NaN check and the
            callback (progress, cancel) — which otherwise make the host wait for the GPU every step. ``None``:
            1 on the CPU, 16 on CUDA. Any value gives the same result (the steps in between are gone through in
            order afterwards); a patience stop is acted on up to ``sync_every − 1`` steps late, a cancel through
            the callback's ``should_stop`` within one step (``loop.Callback``). At most 64.
        template: optimise only inside a template such as ``"a photo of {} in the style of {}"``; the fixed
            words stay as written and are encoded with the learned tokens.
        slot_len: learned tokens per template slot (default: ``prompt_len``).
        blocklist: words that must never appear in the prompt (whole words, case-insensitive); a string
            is read as a comma-separated list.
        blocklist_substring: also block every token that merely contains a blocked word.
        allowlist: if given, the prompt uses only tokens that spell these words; a string is read as a
            list of words separated by commas or spaces.
        ascii_only: no emoji or non-Latin tokens.
        method: the optimiser (``methods.py``): ``"pez"`` (Algorithm 1, default), the paper's baselines
            ``"autoprompt_sgd"`` and ``"fluentprompt"``, ``"soft"`` (a soft prompt projected once at the end),
            ``"greedy_bank"`` (greedily append phrases of ``bank``; ``prompt_len`` is its token budget) or
            ``"guided"`` (a language model writes the prompt, CLIP chooses: ``guided.py``; ``prompt_len`` is its
            token budget).
        beta / beta_end: FluentPrompt's Langevin temperature, decaying geometrically from ``beta`` to
            ``beta_end`` over the steps (official defaults 1 → 1e-4; ``beta=0``: AutoPrompt-SGD).
        bank: the phrases ``greedy_bank`` may append (default: the model's declared vocabulary, e.g. the
            toy model's 20 words); a string is read as one phrase a line.
        fluency: λ of the fluency term (``fluency.py``): λ · a causal LM's next-token cross-entropy over the
            prompt is added to the loss, for prompts that read as language (FluentPrompt / the paper's Sec. 5
            use 0.003 with the LM itself; CLIP prompts need an LM on CLIP's tokenizer). 0: off.
        beams / candidates: ``guided``: beams kept, and continuations each beam proposes per step (VGD: 10 × 10).
        lm_weight: ``guided``: weight of the LM's mean log-probability against CLIP's similarity (0: CLIP alone
            picks among the LM's likely tokens; larger: more like the LM's language).
        start_text: ``guided``: words every prompt starts with (e.g. PEZ's hard prompt or a subject).
        instruction: ``guided``: what the LM reads before the prompt, not part of it (an instruction-tuned
            LM's request, through its chat template when it has one).
    """

    prompt_len: int = 16
    steps: int = 3000
    lr: float = 0.1
    weight_decay: float = 0.1
    restarts: int = 4
    targets_per_step: int | None = None
    seed: int = 0
    patience: int = 500
    top_k: int = 1
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    compile_step: str = "off"
    sync_every: int | None = None
    template: str | None = None
    slot_len: int | None = None
    blocklist: tuple[str, ...] = ()
    blocklist_substring: bool = False
    allowlist: tuple[str, ...] | None = None
    ascii_only: bool = False
    method: str = "pez"
    beta: float = 1.0
    beta_end: float = 1e-4
    bank: tuple[str, ...] | None = None
    fluency: float = 0.0
    beams: int = 10
    candidates: int = 10
    lm_weight: float = 0.05
    start_text: str | None = None
    instruction: str | None = None

    def validate(self, max_prompt_len: int = 75) -> "PEZConfig":
        """Raise one ``ValueError`` naming the first bad setting and its fix; return a normalised copy.

        Normalising accepts what Python users naturally pass: numpy integers and floats become ``int`` /
        ``float``, a ``str`` blocklist / allowlist becomes a tuple of words (never a tuple of letters).
        """
        self = self._normalised()
        _int_in("prompt_len", self.prompt_len, 1, max_prompt_len,
                f"the text encoder holds {max_prompt_len} tokens between its start and end token")
        _int_in("steps", self.steps, 1, None, "")
        _int_in("restarts", self.restarts, 1, None, "")
        _int_in("top_k", self.top_k, 1, None, "")
        _int_in("patience", self.patience, 0, None, "0 turns early stopping off")
        if self.targets_per_step is not None:
            _int_in("targets_per_step", self.targets_per_step, 1, None, "None uses every target each step")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                    or (name == "lr" and value == 0):
                raise ValueError(f"{name}={value!r} must be a finite number {'> 0' if name == 'lr' else '>= 0'}.")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision={self.precision!r} is unknown; use auto, fp32, bf16 or fp16.")
        if self.compile_step not in COMPILE_MODES:
            raise ValueError(f"compile_step={self.compile_step!r} is unknown; use off, on or auto.")
        if self.sync_every is not None:
            _int_in("sync_every", self.sync_every, 1, MAX_SYNC_EVERY, "None reads the device every step on the CPU, "
                    "every 16 on CUDA")
        if self.slot_len is not None:
            _int_in("slot_len", self.slot_len, 1, max_prompt_len, "tokens learned in each template slot")
            if self.template is None:
                raise ValueError(f"slot_len={self.slot_len} is set but there is no template; set template "
                                 "(e.g. 'a photo of {} in the style of {}') or use prompt_len.")
        if self.template is not None and (not isinstance(self.template, str) or "{}" not in self.template):
            raise ValueError(f"template {self.template!r} has no '{{}}' slot; write e.g. 'a photo of {{}} in the style of {{}}'.")
        for name in ("compile", "blocklist_substring", "ascii_only"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true or false.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed={self.seed!r} must be an integer.")
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is unknown; use one of {', '.join(METHODS)}.")
        for name in ("beta", "beta_end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}={value!r} must be a finite number >= 0 (FluentPrompt's temperature).")
        if self.beta > 0 and not 0 < self.beta_end <= self.beta:
            raise ValueError(f"beta_end={self.beta_end!r} must be > 0 and <= beta={self.beta!r} (it decays from beta).")
        if self.bank is not None and not self.bank:
            raise ValueError("bank is empty; give greedy_bank phrases (one a line) or leave it unset.")
        if isinstance(self.fluency, bool) or not isinstance(self.fluency, (int, float)) or not math.isfinite(self.fluency) \
                or self.fluency < 0:
            raise ValueError(f"fluency={self.fluency!r} must be a finite number >= 0 (the weight λ of the LM term; 0 is off).")
        if self.fluency and self.method == "greedy_bank":
            raise ValueError("fluency weights a gradient term and greedy_bank takes no gradient; use method pez, "
                             "autoprompt_sgd, fluentprompt or soft with fluency, or set fluency to 0.")
        if self.method in ("greedy_bank", "guided") and self.template is not None:
            raise ValueError(f"method {self.method} builds a free prompt and takes no template; remove the template.")
        _int_in("beams", self.beams, 1, 64, "beams kept by guided decoding")
        _int_in("candidates", self.candidates, 1, 256, "continuations per beam and step")
        if isinstance(self.lm_weight, bool) or not isinstance(self.lm_weight, (int, float)) \
                or not math.isfinite(self.lm_weight) or self.lm_weight < 0:
            raise ValueError(f"lm_weight={self.lm_weight!r} must be a finite number >= 0 (the LM's share of guided's score).")
        for name in ("start_text", "instruction"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}={value!r} must be a text or unset.")
        if self.fluency and self.method == "guided":
            raise ValueError("fluency weights a gradient term and guided decoding takes no gradient (its LM already "
                             "writes the prompt); set fluency to 0 or use lm_weight.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def _normalised(self) -> "PEZConfig":
        for name, what in (("blocklist", "words"), ("allowlist", "words"), ("bank", "phrases")):
            _check_texts(name, getattr(self, name), what)
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
                changes[f.name] = int(value)
            elif isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
                changes[f.name] = float(value)
        if isinstance(self.blocklist, str):
            changes["blocklist"] = _words(self.blocklist, r",")
        elif self.blocklist is not None and not isinstance(self.blocklist, tuple):
            changes["blocklist"] = tuple(self.blocklist)
        if isinstance(self.allowlist, str):
            changes["allowlist"] = _words(self.allowlist, r"[,\s]")
        elif self.allowlist is not None and not isinstance(self.allowlist, tuple):
            changes["allowlist"] = tuple(self.allowlist)
        if isinstance(self.bank, str):
            changes["bank"] = tuple(line.strip() for line in self.bank.splitlines() if line.strip())
        elif self.bank is not None and not isinstance(self.bank, tuple):
            changes["bank"] = tuple(str(p).strip() for p in self.bank if str(p).strip())
        return replace(self, **changes) if changes else self


def _check_texts(name: str, value, what: str) -> None:
    """A word / phrase list must be a string or a list of strings (never a number, a mapping or mixed types)."""
    if value is None or isinstance(value, str):
        return
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return
    raise ValueError(f"{name}={value!r} must be a string or a list of strings ({what}); "
                     f"e.g. {name}=\"{'one a line' if name == 'bank' else 'red, blue'}\".")


def _words(text: str, separator: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in re.split(separator, text) if w.strip())


def _int_in(name: str, value, low: int, high: int | None, why: str) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if not ok:
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name}={value!r} is out of range; use an integer {span}" + (f" ({why})." if why else "."))
