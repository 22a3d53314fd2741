"""Round-trip exactness: the similarity reported is that of what a user's text encoder gets."""

import pytest
import torch
import torch.nn.functional as F

from pez_nodes.core import PEZConfig, PromptLayout, concat, optimize_prompt, projector_for
from pez_nodes.core.optim.text_encoder import encode_text, encode_token_ids
from pez_nodes.core.optim.objective import ClipObjective


def test_long_text_is_scored_as_truncated_not_window_averaged(toy):
    target = encode_text(toy, "a large yellow star on night")[None]
    objective = ClipObjective(toy, PromptLayout.plain(4), target, torch.ones(1))
    text = " ".join(["red circle grass small"] * 25)  # 100 tokens
    ids = toy.tokenize(text)
    assert len(ids) == 100
    truncated = F.normalize(encode_token_ids(toy, [ids[:75]])[0], dim=-1)
    assert objective.score_text(text) == pytest.approx(float(truncated @ target[0]), abs=1e-6)
    averaged = float(encode_text(toy, text) @ target[0])
    assert abs(averaged - float(truncated @ target[0])) > 1e-4  # the old, window-averaged score differs
    assert objective.user_tokens(text) == ids[:75]


def test_result_over_the_window_says_so(toy):
    long = ", ".join(["a large yellow star on night"] * 14)
    r = concat(toy, [long, "a small red circle on grass"], PEZConfig(steps=5, prompt_len=4, restarts=1))
    assert len(r.token_ids) <= 75
    if len(toy.tokenize(r.text)) > 75:
        assert any("re-tokenizes" in n for n in r.notes)


class Recording(ClipObjective):
    def __call__(self, prompt, sample=None):
        self.seen.append(prompt.detach().clone())
        return super().__call__(prompt, sample)


def test_projected_prompt_is_exactly_vocabulary_rows(toy):
    """P′ = E[ids] + (P − P.detach()) is E[ids] to the bit; P + (E[ids] − P).detach() was off by ~6e-8."""
    target = encode_text(toy, "a small purple diamond on brick")[None]
    objective = Recording(toy, PromptLayout.plain(6), target, torch.ones(1))
    objective.seen = []
    projector = projector_for(toy)
    optimize_prompt(objective, projector, PEZConfig(steps=30, prompt_len=6, restarts=2, device="cpu"))
    table = toy.token_embedding.float()
    for prompt in objective.seen:
        ids = projector.nearest_ids(prompt)
        assert torch.equal(prompt, table[ids])


def test_concat_join_obeys_the_vocabulary_controls(toy):
    texts = ["a large red circle on grass", "a small blue square on sand"]
    words = ("large", "red", "circle", "grass", "small", "blue", "square", "sand")
    r = concat(toy, texts, PEZConfig(steps=30, prompt_len=6, allowlist=words, top_k=3))
    assert set(r.text.replace(",", " ").split()) <= set(words), r.text
    assert any("not offered" in n for n in r.notes)
    r = concat(toy, ["a red circle é", "a blue square"], PEZConfig(steps=30, prompt_len=6, ascii_only=True))
    assert r.text.isascii() and "é" not in r.text
    r = concat(toy, texts, PEZConfig(steps=30, prompt_len=6, template="a photo of {}", slot_len=4))
    assert r.text.startswith("a photo of "), r.text
    r = concat(toy, texts, PEZConfig(steps=30, prompt_len=6, blocklist=("red",)))
    assert "red" not in r.text.split()


def test_concat_join_is_still_offered_without_controls(toy):
    texts = ["a large red circle on grass", "a small blue square on sand"]
    r = concat(toy, texts, PEZConfig(steps=3, prompt_len=2, restarts=1))
    assert r.text == ", ".join(texts)  # 2 learned tokens in 3 steps cannot beat the join itself
