"""One token sequence for several text encoders (SDXL's CLIP-L + bigG), on small models built here.

Tower "a" is the bundled toy CLIP's trained text tower (64 wide), read back from the Hugging Face layout
a host stores; tower "b" is a random 96-wide tower, as different from "a" as CLIP-L is from bigG.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_layout import hf_text_state, random_text_tower
from pez_nodes import toyworld as tw
from pez_nodes.core import JointClip, PEZConfig, Tower, distill, encode_text, image_features, invert, text_backbone_from_hf
from pez_nodes.core.optim.objective import ClipObjective
from pez_nodes.core.optim.layout import PromptLayout
from pez_nodes.core.optim.projection import projector_for
from pez_nodes.core.optim.vocabulary import allowed_token_ids

FAST = PEZConfig(steps=40, prompt_len=4, restarts=2, seed=0)


@pytest.fixture(scope="module")
def towers(toy):
    a = text_backbone_from_hf(hf_text_state(toy.model), 4, "gelu", "a")
    b = text_backbone_from_hf(hf_text_state(random_text_tower(96, 2, 4, 48, seed=7)), 4, "gelu", "b")
    return a, b


def _toy_images(toy):
    return lambda images: image_features(toy, images)


def test_the_joint_projection_sums_each_tables_cosine(towers):
    a, b = towers
    joint = JointClip([Tower("a", a), Tower("b", b)], "a+b")
    projector = projector_for(joint, allowed_token_ids(joint))
    prompt = torch.randn(3, 5, 64 + 96, generator=torch.Generator().manual_seed(0))
    ids = projector.nearest_ids(prompt)
    allowed = allowed_token_ids(joint)
    cos_a = F.normalize(prompt[..., :64], dim=-1) @ F.normalize(a.token_embedding[allowed], dim=-1).T
    cos_b = F.normalize(prompt[..., 64:], dim=-1) @ F.normalize(b.token_embedding[allowed], dim=-1).T
    assert torch.equal(ids, allowed[(cos_a + cos_b).argmax(-1)])
    assert not torch.equal(ids, allowed[cos_a.argmax(-1)])  # b's table really votes
    torch.testing.assert_close(projector.embed(ids), torch.cat([a.token_embedding[ids], b.token_embedding[ids]], -1))
    assert ids.max() < a.token_embedding.shape[0] and not set(ids.flatten().tolist()) & set(joint.special_ids)


def test_the_gradient_reaches_both_towers_prompts(towers):
    a, b = towers
    joint = JointClip([Tower("a", a), Tower("b", b, weight=0.5)], "a+b")
    targets = torch.stack([encode_text(joint, "a red circle")])
    objective = ClipObjective(joint, PromptLayout.plain(4), targets, torch.ones(1))
    projector = projector_for(joint, allowed_token_ids(joint))
    prompt = projector.embed(projector.random_ids((2, 4), torch.Generator().manual_seed(1))).clone().requires_grad_(True)
    projected = projector.embed(projector.nearest_ids(prompt)) + (prompt - prompt.detach())
    loss, _ = objective(projected)
    loss.sum().backward()
    assert prompt.grad[..., :64].abs().sum() > 0 and prompt.grad[..., 64:].abs().sum() > 0


def test_reported_similarity_is_the_weighted_mean_of_each_towers_cosine_of_the_re_encoded_text(towers):
    a, b = towers
    text = "a red circle beside a blue square"
    joint = JointClip([Tower("a", a, weight=1.0), Tower("b", b, weight=3.0)], "a+b")
    result = distill(joint, text, FAST)
    cos_a = float(encode_text(a, result.text) @ encode_text(a, text))
    cos_b = float(encode_text(b, result.text) @ encode_text(b, text))
    assert result.similarity == pytest.approx((1.0 * cos_a + 3.0 * cos_b) / 4.0, abs=1e-5)
    assert a.tokenize(result.text) == b.tokenize(result.text) == result.token_ids  # one sequence, valid for both


def test_a_tower_of_weight_zero_neither_scores_nor_votes(towers):
    """With b's weight 0 the run is exactly the run on a alone: same prompt, same similarity."""
    a, b = towers
    alone = distill(JointClip([Tower("a", a)], "a"), "a green triangle", FAST)
    joint = distill(JointClip([Tower("a", a), Tower("b", b, weight=0.0)], "a+b"), "a green triangle", FAST)
    assert (joint.text, joint.token_ids) == (alone.text, alone.token_ids)
    assert joint.similarity == pytest.approx(alone.similarity, abs=1e-6)


def test_images_are_scored_by_the_towers_that_have_an_image_encoder(toy, towers):
    a, b = towers
    picture = tw.render(tw.all_scenes()[0], seed=0)
    joint = JointClip([Tower("a", a, images=_toy_images(toy)), Tower("b", b)], "a+b")
    result = invert(joint, [picture], FAST)
    assert any("b has no matching image encoder: a alone scores" in n for n in result.notes)
    expected = float(encode_text(a, result.text) @ image_features(toy, [picture])[0])
    assert result.similarity == pytest.approx(expected, abs=1e-5)
    assert distill(joint, "a red circle", PEZConfig(steps=2, prompt_len=2)).notes == []  # texts: both towers


def test_without_any_image_encoder_images_get_one_error_with_the_hint(towers):
    a, b = towers
    joint = JointClip([Tower("a", a), Tower("b", b)], "sdxl", image_hint="Connect a CLIP Vision model.")
    with pytest.raises(ValueError, match=r"sdxl has no image encoder for its text encoder \(a, b\).*Connect a CLIP Vision"):
        invert(joint, [tw.render(tw.all_scenes()[0], seed=0)], FAST)


def test_towers_that_cannot_share_a_prompt_are_refused(towers):
    a, _ = towers
    other = text_backbone_from_hf(hf_text_state(random_text_tower(32, 1, 2, 16, seed=3)), 2, "gelu", "c")
    other.model.token_embedding.weight = torch.nn.Parameter(other.token_embedding[:1000], requires_grad=False)
    with pytest.raises(ValueError, match="do not share a vocabulary"):
        JointClip([Tower("a", a), Tower("c", other)], "x")
    with pytest.raises(ValueError, match="weight 0"):
        JointClip([Tower("a", a, weight=0.0)], "x")
    with pytest.raises(ValueError, match="weight of a"):
        JointClip([Tower("a", a, weight=float("nan"))], "x")
