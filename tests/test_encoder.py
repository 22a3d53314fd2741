"""The fast text path equals open_clip's own ``encode_text``; unsupported towers are refused clearly."""

import open_clip
import pytest
import torch

from pez_nodes.core import ClipBackbone, encode_token_ids
from pez_nodes.core.optim.text_encoder import encode_text

PROMPTS = ["a small red circle on grass", "night", "a photo of a large white star on brick with extra words"]


def _reference(model, tokenizer, texts):
    with torch.no_grad():
        return model.encode_text(tokenizer(texts)).float()


def test_toy_features_equal_open_clip_encode_text(toy):
    ids = [toy.tokenize(t) for t in PROMPTS]
    ours = encode_token_ids(toy, ids)
    ref = _reference(toy.model, toy.tokenizer, PROMPTS)
    assert (ours - ref).abs().max().item() <= 1e-5


def _tiny_cfg(**text):
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2, **text},
    }


def test_custom_text_clip_with_causal_tower_matches():
    torch.manual_seed(0)
    model = open_clip.CustomTextCLIP(**_tiny_cfg()).eval()
    tok = open_clip.SimpleTokenizer()
    backbone = ClipBackbone(model, tok, "tiny-custom", (0.5,) * 3, (0.5,) * 3, 32)
    ours = encode_token_ids(backbone, [tok.encode(t) for t in PROMPTS])
    assert (ours - _reference(model, tok, PROMPTS)).abs().max().item() <= 1e-5


def test_bidirectional_text_tower_is_refused():
    model = open_clip.CustomTextCLIP(**_tiny_cfg(no_causal_mask=True, pool_type="last"))
    with pytest.raises(ValueError, match="causal"):
        ClipBackbone(model, open_clip.SimpleTokenizer(), "siglip-like", (0.5,) * 3, (0.5,) * 3, 32)


def test_long_text_is_averaged_over_windows_not_truncated(toy):
    short = "a small red circle on grass"
    long = ", ".join([short] * 12) + ", a large blue square on sand"
    assert len(toy.tokenize(long)) > 75
    f_long = encode_text(toy, long)
    truncated = encode_token_ids(toy, [toy.tokenize(long)[:75]])[0]
    tail_only = encode_text(toy, "a large blue square on sand")
    cos = torch.nn.functional.cosine_similarity
    # the tail beyond the window moves the feature toward its meaning: truncation would ignore it
    assert cos(f_long, tail_only, dim=0) > cos(truncated, tail_only, dim=0)


def test_empty_text_is_rejected(toy):
    with pytest.raises(ValueError, match="non-empty"):
        encode_text(toy, "   ")
