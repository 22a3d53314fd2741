"""Algorithm 1's loop: reproducible, stoppable, round-trip exact, and strict about bad input."""

import math

import pytest
import torch

from pez_nodes import toyworld as tw
from pez_nodes.core import PEZConfig, concat, distill, encode_text, invert

FAST = dict(steps=40, prompt_len=4)


@pytest.fixture(scope="module")
def picture():
    return tw.render(tw.Scene("circle", "red", "large", "grass"), size=64, seed=1)


def _similarity_of_text(model, text, targets):
    f = encode_text(model, text)
    return float(torch.stack([f @ t for t in targets]).mean())


def test_same_seed_same_prompt_and_other_seed_differs(toy, picture):
    a = invert(toy, [picture], PEZConfig(seed=3, **FAST))
    b = invert(toy, [picture], PEZConfig(seed=3, **FAST))
    c = invert(toy, [picture], PEZConfig(seed=4, **FAST))
    assert a.text == b.text and a.similarity == b.similarity and a.token_ids == b.token_ids
    assert [h[1] for h in a.history] == [h[1] for h in b.history]
    assert c.history != a.history


def test_result_similarity_is_that_of_the_retokenized_text(toy, picture):
    from pez_nodes.core import image_features

    target = image_features(toy, [picture])
    for seed in range(3):
        r = invert(toy, [picture], PEZConfig(seed=seed, restarts=2, top_k=3, **FAST))
        assert r.token_ids == toy.tokenize(r.text)
        assert abs(_similarity_of_text(toy, r.text, target) - r.similarity) <= 1e-4
        for c in r.candidates + r.best_per_restart:
            assert abs(_similarity_of_text(toy, c.text, target) - c.similarity) <= 1e-4
        assert r.similarity == max(c.similarity for c in r.candidates)


def test_stop_from_callback_returns_best_so_far(toy, picture):
    seen = []

    def cb(step, total, text, sim):
        seen.append((step, total, text, sim))
        return step == 7

    r = invert(toy, [picture], PEZConfig(steps=500, prompt_len=4), callback=cb)
    assert r.steps == 7 and r.stop_reason == "callback"
    assert [s[0] for s in seen] == list(range(1, 8)) and seen[-1][1] == 500
    assert (r.text, r.similarity) == (seen[-1][2], seen[-1][3])
    assert r.similarity == max(s[3] for s in seen)


def test_patience_stops_on_plateau(toy, picture):
    r = invert(toy, [picture], PEZConfig(steps=3000, prompt_len=2, patience=15))
    assert r.stop_reason == "patience" and r.steps < 3000


def test_best_is_kept_over_restarts(toy, picture):
    r = invert(toy, [picture], PEZConfig(restarts=3, **FAST))
    assert len(r.best_per_restart) == 3
    assert r.similarity >= max(c.similarity for c in r.best_per_restart)


def test_targets_per_step_samples_but_scores_all(toy):
    pics = [tw.render(tw.Scene("square", c, "small", "sand"), size=48, seed=i) for i, c in enumerate(tw.COLORS)]
    r = invert(toy, pics, PEZConfig(targets_per_step=2, **FAST))
    from pez_nodes.core import image_features

    assert abs(_similarity_of_text(toy, r.text, image_features(toy, pics)) - r.similarity) <= 1e-4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt_len=0), "prompt_len=0"),
        (dict(prompt_len=76), "prompt_len=76"),
        (dict(steps=0), "steps=0"),
        (dict(restarts=0), "restarts=0"),
        (dict(lr=float("nan")), "lr=nan"),
        (dict(patience=-1), "patience=-1"),
    ],
)
def test_bad_config_is_rejected_with_its_name(toy, picture, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        invert(toy, [picture], PEZConfig(**{**FAST, **kwargs}))


def test_bad_inputs_are_rejected(toy):
    with pytest.raises(ValueError, match="no images"):
        invert(toy, [], PEZConfig(**FAST))
    with pytest.raises(ValueError, match="empty"):
        distill(toy, "  ", PEZConfig(**FAST))
    with pytest.raises(ValueError, match="two or more"):
        concat(toy, ["only one"], PEZConfig(**FAST))
    with pytest.raises(ValueError, match="NaN"):
        invert(toy, [torch.full((16, 16, 3), float("nan"))], PEZConfig(**FAST))
    with pytest.raises(ValueError, match="does not exist"):
        invert(toy, ["/nonexistent/picture.png"], PEZConfig(**FAST))


def test_non_finite_target_features_are_rejected(toy):
    from pez_nodes.core import PromptLayout
    from pez_nodes.core.optim.objective import ClipObjective

    with pytest.raises(ValueError, match="NaN"):
        ClipObjective(toy, PromptLayout.plain(4), torch.full((1, 64), math.nan), torch.ones(1))
