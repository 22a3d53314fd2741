"""Load a causal language model from a local folder (``transformers`` layout), or one of the bundled toy LMs.

``transformers`` is imported here only, when a model is loaded: ``pip install 'pez-hard-prompts[lm]'``. Weights are
read from ``.safetensors`` only (no pickles) and never downloaded: a folder written by ``save_pretrained``
(GPT-2 layout first; any ``AutoModelForCausalLM``) with its tokenizer files. ``CausalLM`` offers what the
vocabulary filters of ``pez_nodes.core.optim.vocabulary`` read, so blocklists and allowlists work on LM prompts.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core import BUNDLED_MODELS, VOCABULARY_FILE, resolve_device

MODELS = BUNDLED_MODELS
BUNDLED = {"toy_lm_small": MODELS / "toy_lm_small", "toy_lm_large": MODELS / "toy_lm_large"}
INSTALL = "pip install 'pez-hard-prompts[lm]' (or: pip install transformers)"
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model")  # fast, GPT-2 BPE, SentencePiece
FLUENCY_DEFAULTS = {"toy": "toy_lm_small"}  # a prompt model's own fluency LM, used when none is named


def default_fluency_lm(model_name: str) -> str | None:
    """The bundled fluency LM that shares ``model_name``'s tokenizer and world (the toy CLIP's: toy_lm_small)."""
    return FLUENCY_DEFAULTS.get(model_name)


@dataclass
class CausalLM:
    """A frozen causal LM and its tokenizer; ``vocabulary_ids``: the ids a prompt may use (None: all)."""

    model: object
    tokenizer: object
    name: str
    vocabulary_ids: torch.Tensor | None = None
    special_ids: frozenset = field(default_factory=frozenset)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    tokenize = encode

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids)).strip()

    @property
    def token_embedding(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight

    @property
    def device(self) -> torch.device:
        return self.token_embedding.device

    def token_texts(self) -> list[str]:
        """Each token's text, lower-case (what the vocabulary filters match)."""
        return [self.tokenizer.decode([i]).strip().lower() for i in range(len(self.tokenizer))]

    # --- what guided decoding reads (``pez_nodes.core``'s ``GuideLM``) ------------------------------------
    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        """How many tokens the LM reads (GPT-2: ``n_positions``); unbounded models report a large number."""
        config = self.model.config
        return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 1 << 20)

    def context_ids(self, instruction: str = "") -> list[int]:
        """What the LM reads before the prompt: the instruction through the chat template when the tokenizer
        has one (a base model cannot follow one: one clear error), else its start token (the end token when it
        has none, as GPT-2 starts)."""
        template = getattr(self.tokenizer, "chat_template", None)
        if instruction and not template:
            raise ValueError(f"language model {self.name!r} has no chat template (a base model), so it cannot follow "
                             f"the instruction {instruction[:60]!r}; give an instruction-tuned model (its folder with "
                             "the tokenizer's chat template), or leave instruction empty and seed the prompt with "
                             "start_text.")
        if instruction:  # as text, then ids: apply_chat_template's tokenized return type varies
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": instruction}],
                                                      add_generation_prompt=True, tokenize=False)
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.eos_id
        return [start] if start is not None else []

    @torch.no_grad()
    def next_log_probs(self, contexts) -> torch.Tensor:
        """Log-probabilities of the next token after each context ([B, V]; right-padded, one forward pass)."""
        width = max(len(c) for c in contexts)
        ids = torch.zeros(len(contexts), width, dtype=torch.long)
        mask = torch.zeros(len(contexts), width, dtype=torch.long)
        for i, c in enumerate(contexts):
            ids[i, : len(c)] = torch.tensor(list(c), dtype=torch.long)
            mask[i, : len(c)] = 1
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        last = torch.tensor([len(c) - 1 for c in contexts], device=logits.device)
        return logits[torch.arange(len(contexts), device=logits.device), last].float().log_softmax(-1)


def _folder(source: str) -> Path:
    path = BUNDLED.get(source) or Path(source).expanduser()
    if not (path / "config.json").is_file():
        raise ValueError(f"language model {source!r} is not a folder with config.json; give a local transformers folder "
                         f"(written by save_pretrained, with .safetensors weights and tokenizer files) or one of "
                         f"{', '.join(BUNDLED)}.")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(f"language model folder {str(path)!r} has no tokenizer ({', '.join(TOKENIZER_FILES)}); save "
                         "the model's tokenizer beside it (tokenizer.save_pretrained(folder)).")
    if not any(path.glob("*.safetensors")):
        raise ValueError(f"language model folder {str(path)!r} has no .safetensors weights; convert its weights "
                         "(model.save_pretrained(folder, safe_serialization=True)): pickles are not loaded.")
    return path


@contextmanager
def _quiet():
    """No "Loading weights" progress bars from transformers on the user's stderr while we load."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_lm(source: str, device: str = "auto", vocabulary: str = "full") -> CausalLM:
    """A causal LM (fp32, eval, frozen) from a folder or a bundled name (``toy_lm_small``, ``toy_lm_large``).

    ``vocabulary="declared"`` limits prompts to the words of the folder's ``pez_vocabulary.txt``.
    """
    if vocabulary not in ("full", "declared"):
        raise ValueError(f"vocabulary {vocabulary!r} is not 'full' or 'declared'.")
    path = _folder(source)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ValueError(f"loading a language model needs transformers: {INSTALL}.") from exc
    try:  # normal tensors even when the host runs nodes under inference_mode (ComfyUI): PEZ backpropagates
        with _quiet(), torch.inference_mode(False):
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"language model {source!r} could not be loaded from {str(path)!r} ({exc}); check that it is "
                         "a complete save_pretrained folder (config.json, *.safetensors, tokenizer files).") from exc
    with torch.inference_mode(False):
        model = model.float().to(resolve_device(device)).eval().requires_grad_(False)
    lm = CausalLM(model, tokenizer, source if source in BUNDLED else path.name,
                  special_ids=frozenset(int(i) for i in tokenizer.all_special_ids))
    if vocabulary == "declared":
        words_file = path / VOCABULARY_FILE
        if not words_file.is_file():
            raise ValueError(f"language model {source!r} declares no vocabulary (no {VOCABULARY_FILE}); use vocabulary 'full'.")
        ids = sorted({i for w in words_file.read_text(encoding="utf-8").split() for i in lm.encode(w)})
        lm.vocabulary_ids = torch.tensor(ids, dtype=torch.long)
    return lm
