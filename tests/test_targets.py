"""Signed target weights: negatives always push away, and the reported similarity stays in [-1, 1]."""

import pytest
import torch

from pez_nodes.core import PEZConfig, Target, optimize, with_negatives

FAST = dict(steps=60, prompt_len=4, restarts=2)


@pytest.mark.parametrize("negative_weight", [-0.5, -3.0])
def test_negatives_push_away_whatever_their_total(toy, negative_weight):
    """With the negative's weight above the positive's (sum < 0), the old ``Σw·cos / Σw`` flipped the whole
    objective: the prompt moved toward the negative and reported similarity > 1."""
    targets = [Target(text="a large red circle on grass"), Target(text="a small blue star on night", weight=negative_weight)]
    r = optimize(toy, targets, PEZConfig(seed=1, **FAST))
    pos, neg = r.target_cosines
    assert pos > neg + 0.2, (r.text, r.target_cosines)
    assert -1 <= r.similarity <= 1
    assert r.similarity == pytest.approx((pos + negative_weight * neg) / (1 + abs(negative_weight)), abs=1e-5)


def test_reported_cosines_are_the_texts_cosines(toy):
    from pez_nodes.core import encode_text

    texts = ["a small green square on sand", "a large white ring on brick"]
    r = optimize(toy, [Target(text=texts[0]), Target(text=texts[1], weight=0.5)], PEZConfig(**FAST))
    feat = encode_text(toy, r.text)
    expect = [float(feat @ encode_text(toy, t)) for t in texts]
    assert r.target_cosines == pytest.approx(expect, abs=1e-4)
    assert r.similarity == pytest.approx((expect[0] + 0.5 * expect[1]) / 1.5, abs=1e-4)


def test_only_negative_targets_are_refused(toy):
    with pytest.raises(ValueError, match="no positive weight"):
        optimize(toy, [Target(text="red", weight=-1), Target(text="blue", weight=-2)], PEZConfig(**FAST))


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), "1", True])
def test_bad_weights_are_refused(weight):
    with pytest.raises(ValueError, match="weight"):
        Target(text="red", weight=weight)


def test_numpy_weights_are_numbers():
    import numpy as np

    assert Target(text="red", weight=np.float32(-0.5)).weight == -0.5
    assert with_negatives([Target(text="a")], ["b"], share=np.float32(0.5))[1].weight == -0.5


def test_with_negatives_scales_by_share_and_refuses_negative_share():
    out = with_negatives([Target(text="a"), Target(text="b", weight=3)], ["c", "d"], share=1.5)
    assert [t.weight for t in out] == [1.0, 3.0, -3.0, -3.0]
    with pytest.raises(ValueError, match="negative weight"):
        with_negatives([Target(text="a")], ["c"], share=-0.1)


def test_zero_sum_weights_are_defined_now(toy):
    """A positive and an equal negative (Σw = 0) used to be refused; Σ|w| keeps it defined."""
    r = optimize(toy, [Target(text="red circle"), Target(text="blue square", weight=-1)], PEZConfig(**FAST))
    assert torch.isfinite(torch.tensor(r.similarity)) and r.target_cosines[0] > r.target_cosines[1]
