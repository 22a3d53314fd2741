"""An open_clip CLIP model seen as a :class:`~pez_nodes.core.optim.text_encoder.TextEncoder` plus an image encoder.

The text path re-runs open_clip's own modules (token table, positional embedding, transformer,
final LayerNorm, projection) on a sequence of *embeddings* rather than token ids, so the projected
prompt P′ of Algorithm 1 can carry a gradient. Unlike open_clip's ``encode_text`` (and the paper's
code), it does not pad to 77 tokens: the causal mask makes every position after the end token
irrelevant, so only ``[SOT, prompt..., EOT]`` is computed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
import torch.nn as nn

SUPPORTED = (
    "causal CLIP text towers: open_clip `CLIP` models and `CustomTextCLIP` whose text tower is a causal "
    "`TextTransformer` (OpenAI CLIP, LAION/DataComp ViT-B/L/H/g/bigG, EVA, MobileCLIP ...)"
)


def text_tower(model: nn.Module) -> nn.Module:
    """The module that holds the text tower's parts, or a ``ValueError`` naming what is supported."""
    import open_clip
    from open_clip.transformer import TextTransformer

    kind = type(model).__name__
    if isinstance(model, (open_clip.CLIP, TextTransformer)):
        tower = model
    elif isinstance(model, open_clip.CustomTextCLIP) and isinstance(model.text, TextTransformer):
        tower = model.text
    else:
        inner = type(getattr(model, "text", None)).__name__
        raise ValueError(f"model type {kind} (text tower {inner}) is not supported by PEZ; supported: {SUPPORTED}.")
    if getattr(tower, "attn_mask", None) is None:
        raise ValueError(
            f"model {kind} has a bidirectional text tower (e.g. SigLIP); PEZ needs a causal mask. Supported: {SUPPORTED}."
        )
    if getattr(tower, "cls_emb", None) is not None:
        raise ValueError(f"model {kind} appends a CLS token to text (CoCa-style); not supported. Supported: {SUPPORTED}.")
    pool = getattr(tower, "text_pool_type", getattr(tower, "pool_type", "argmax"))
    if pool not in ("argmax", "last", "eos"):
        raise ValueError(f"model {kind} pools text with {pool!r}; PEZ needs end-token pooling. Supported: {SUPPORTED}.")
    return tower


def _special_id(tokenizer, attribute: str, token: str) -> int | None:
    """A special token's id: the tokenizer's attribute (open_clip 3.x), else its encoder entry (2.20)."""
    found = getattr(tokenizer, attribute, None)
    if found is None:
        found = getattr(tokenizer, "encoder", {}).get(token)
    return found


class ClipBackbone:
    """A frozen open_clip model: text features from embeddings, image features from pixels.

    Args:
        model: an open_clip ``CLIP`` / ``CustomTextCLIP`` with a causal text tower, or a bare text tower
            (``TextTransformer``, e.g. from :func:`~pez_nodes.core.clip.hf_text_tower.text_tower_from_hf`).
        tokenizer: open_clip's ``SimpleTokenizer`` for the model.
        name: how the user named the model (shown in results and errors).
        image_mean / image_std / image_size: the model's preprocessing (None for a bare text tower).
        vocabulary_words: if given, the words the model knows; PEZ then projects only onto their tokens
            (the bundled toy CLIP declares its 20 attribute words: it never saw any other token).
        notes: what the loader decided for the user and why (e.g. the activation), shown with results.
        declared_words: the words of the model folder's vocabulary file, if it has one (``greedy_bank``'s
            default bank); kept even when ``vocabulary_words`` is None (``vocabulary="full"``).
    """

    def __init__(self, model: nn.Module, tokenizer, name: str, image_mean=None, image_std=None, image_size: int | None = None,
                 vocabulary_words: Sequence[str] | None = None, notes: Sequence[str] | None = None,
                 declared_words: Sequence[str] | None = None):
        self.tower = text_tower(model)
        if not hasattr(tokenizer, "encode") or _special_id(tokenizer, "sot_token_id", "<start_of_text>") is None:
            raise ValueError(f"model {name} uses tokenizer {type(tokenizer).__name__}; PEZ supports CLIP's BPE tokenizer.")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.has_images = hasattr(model, "encode_image")
        if self.has_images:
            self.image_mean = tuple(float(v) for v in image_mean)
            self.image_std = tuple(float(v) for v in image_std)
            self.image_size = int(image_size)
        self.notes: list[str] = list(notes or [])
        self.declared_words: tuple[str, ...] | None = tuple(declared_words) if declared_words is not None else None
        self.sot_id = int(_special_id(tokenizer, "sot_token_id", "<start_of_text>"))
        self.eot_id = int(_special_id(tokenizer, "eot_token_id", "<end_of_text>"))
        self.special_ids = frozenset(int(i) for i in getattr(tokenizer, "all_special_ids", (self.sot_id, self.eot_id)))
        self.context_length = int(self.tower.positional_embedding.shape[0])
        self._cast_dtype = self.tower.transformer.get_cast_dtype()
        self.vocabulary_ids = None
        if vocabulary_words is not None:
            ids = sorted({i for w in vocabulary_words for i in self.tokenize(w)})
            self.vocabulary_ids = torch.tensor(ids, dtype=torch.long)

    # --- TextEncoder -------------------------------------------------------------------------
    @property
    def token_embedding(self) -> torch.Tensor:
        return self.tower.token_embedding.weight

    @property
    def device(self) -> torch.device:
        return self.token_embedding.device

    @property
    def activation(self) -> str:
        """The text tower's MLP activation as built: ``"quickgelu"`` (OpenAI's CLIPs), ``"gelu"`` or ``"other"``."""
        from open_clip.transformer import QuickGELU

        for module in self.tower.transformer.modules():
            if isinstance(module, QuickGELU):
                return "quickgelu"
            if isinstance(module, nn.GELU):
                return "gelu"
        return "other"

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids]).strip()

    def token_texts(self) -> list[str]:
        return bpe_token_texts(self.tokenizer)

    def _transform(self, embeds: torch.Tensor) -> torch.Tensor:
        """open_clip's text transformer over input embeddings ([B, L, D], L ≤ 77; positions and causal mask added)."""
        t = self.tower
        length = embeds.shape[1]
        x = embeds.to(self._cast_dtype) + t.positional_embedding[:length].to(self._cast_dtype)
        sequence_first = not hasattr(t.transformer, "batch_first")  # open_clip 2.20's transformer takes [L, B, D]
        x = x.transpose(0, 1) if sequence_first else x
        x = t.transformer(x, attn_mask=t.attn_mask[:length, :length])
        return x.transpose(0, 1) if sequence_first else x

    def encode_embeddings(self, embeds: torch.Tensor, eot_index: torch.Tensor | None = None) -> torch.Tensor:
        """Text features of ``[SOT, ..., EOT]`` embeddings ([B, L, D] → [B, F]), open_clip's math on L ≤ 77 tokens."""
        t = self.tower
        x = self._transform(embeds)
        if eot_index is None:
            pooled = x[:, -1]
        else:
            pooled = x[torch.arange(x.shape[0], device=x.device), eot_index]
        pooled = t.ln_final(pooled)
        proj = t.text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj

    @torch.no_grad()
    def encode_sequence(self, ids: torch.Tensor | None = None, embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Per-token hidden states after the final LayerNorm ([B, L] ids, or input embeddings [B, L, D] such as a
        soft prompt's → [B, L, W]): what Stable Diffusion 1.x conditions its UNet on (the text tower's "last layer")."""
        if embeds is None:
            embeds = self.tower.token_embedding(ids.to(self.device))
        return self.tower.ln_final(self._transform(embeds.to(self.device)))

    # --- images ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalised image features of preprocessed pixels ([N, 3, S, S] → [N, F])."""
        if not self.has_images:
            raise ValueError(f"model {self.name} is a text encoder only; it cannot encode images.")
        return self.model.encode_image(pixels.to(self.device, dtype=self.token_embedding.dtype)).float()

    def to(self, device: torch.device | str) -> "ClipBackbone":
        self.model.to(device)
        return self

    def __repr__(self) -> str:
        return f"ClipBackbone({self.name!r}, context={self.context_length}, vocab={self.token_embedding.shape[0]})"


@lru_cache(maxsize=8)
def bpe_token_texts(tokenizer) -> list[str]:
    """Each token's text of CLIP's BPE ``tokenizer``, lower-case, without the end-of-word marker."""
    decoder, byte_decoder = tokenizer.decoder, tokenizer.byte_decoder
    out = []
    for i in range(len(decoder)):
        piece = decoder[i]
        raw = bytearray(byte_decoder.get(c, 63) for c in piece.replace("</w>", ""))
        out.append(raw.decode("utf-8", errors="replace").lower())
    return out
