"""Prompt controls: vocabulary filters, weighted / negative / mixed targets, templates, long texts, top-k."""

import re

import pytest

from pez_nodes import toyworld as tw
from pez_nodes.core import PEZConfig, Target, concat, distill, encode_text, optimize
from pez_nodes.core.optim.vocabulary import VocabularyFilter, allowed_token_ids

FAST = dict(steps=60, prompt_len=4)


@pytest.mark.parametrize("vocab", ["toy", "toy_declared"])
def test_blocked_words_never_appear_over_many_seeds(vocab, request):
    toy = request.getfixturevalue(vocab)
    blocked = ("red", "circle", "grass")
    for seed in range(12):
        r = distill(toy, "a large red circle on grass", PEZConfig(seed=seed, blocklist=blocked, top_k=5, **FAST))
        for cand in [r] + r.candidates:
            text = cand.text.lower()
            for word in blocked:
                assert not re.search(rf"(?<![a-z0-9]){word}(?![a-z0-9])", text), (seed, text)
        ids = allowed_token_ids(toy, VocabularyFilter.make(blocked))
        assert all(t in set(ids.tolist()) for t in r.token_ids if t not in toy.tokenize(""))


def test_substring_blocklist_removes_every_token_containing_it(toy):
    ids = set(allowed_token_ids(toy, VocabularyFilter.make(["red"], substring=True)).tolist())
    texts = toy.token_texts()
    assert not any("red" in texts[i] for i in ids)
    whole = set(allowed_token_ids(toy, VocabularyFilter.make(["red"])).tolist())
    assert any("red" in texts[i] for i in whole)  # whole-word mode keeps e.g. 'shred', 'redis'


def test_allowlist_projects_only_onto_listed_words(toy):
    words = ["red", "blue", "circle", "square", "grass", "sand", "large"]
    r = distill(toy, "a large red circle on grass", PEZConfig(allowlist=tuple(words), **FAST))
    assert set(r.text.split()) <= set(words)
    assert {"red", "circle"} <= set(r.text.split())


def test_ascii_only_gives_ascii(toy):
    ids = allowed_token_ids(toy, VocabularyFilter.make(ascii_only=True))
    texts = toy.token_texts()
    assert 20000 < len(ids) < 49406 and all(texts[i].isascii() for i in ids.tolist())
    for seed in range(4):
        r = distill(toy, "a small white ring on night", PEZConfig(seed=seed, ascii_only=True, **FAST))
        assert r.text.isascii(), r.text


def test_declared_vocabulary_limits_the_projection(toy_declared):
    words = set((toy_dir() / "pez_vocabulary.txt").read_text().split())
    r = distill(toy_declared, "a large blue square on brick", PEZConfig(top_k=4, **FAST))
    for cand in r.candidates:
        assert set(cand.text.split()) <= words


def toy_dir():
    from pez_nodes.core import TOY_DIR

    return TOY_DIR


def test_filters_that_leave_nothing_are_rejected(toy):
    with pytest.raises(ValueError, match="allowlist is empty"):
        distill(toy, "a cat", PEZConfig(allowlist=(), **FAST))
    with pytest.raises(ValueError, match="whole vocabulary"):
        distill(toy, "a cat", PEZConfig(allowlist=("zzzz",), blocklist=("zzzz", "zz", "z"), blocklist_substring=True, **FAST))


def test_template_keeps_fixed_words_and_encodes_them(toy):
    template = "a photo of {} on {}"
    r = distill(toy, "a small green triangle on sand", PEZConfig(template=template, slot_len=2, **FAST))
    m = re.fullmatch(r"a photo of (.+) on (.+)", r.text)
    assert m, r.text
    target = encode_text(toy, "a small green triangle on sand")
    assert abs(float(encode_text(toy, r.text) @ target) - r.similarity) < 1e-4


def test_template_without_slot_is_rejected(toy):
    with pytest.raises(ValueError, match="no '\\{\\}' slot"):
        distill(toy, "a cat", PEZConfig(template="a photo of a cat", **FAST))


def test_top_k_lists_distinct_best_prompts(toy):
    r = distill(toy, "a large blue square on brick", PEZConfig(top_k=5, restarts=3, **FAST))
    texts = [c.text for c in r.candidates]
    assert len(texts) == 5 == len(set(texts))
    sims = [c.similarity for c in r.candidates]
    assert sims == sorted(sims, reverse=True) and sims[0] == r.similarity and texts[0] == r.text


def test_concat_cuts_to_the_window_and_says_so(toy):
    long = ", ".join(["a large yellow star on night"] * 12)
    r = concat(toy, [long, "a small red circle on grass"], PEZConfig(**FAST))
    assert any("cut" in n for n in r.notes)
    assert len(toy.tokenize(r.text)) <= 75


def test_mixed_image_and_text_targets(toy):
    """An image and a text target together: the similarity is their weighted mean cosine, and the prompt
    matches both better than a prompt learned for the image alone matches the text."""
    from pez_nodes.core import image_features

    img = tw.render(tw.Scene("diamond", "purple", "large", "sand"), size=64, seed=0)
    text = "red circle"  # shares no attribute with the image
    both = optimize(toy, [Target(image=img), Target(text=text, weight=1.0)], PEZConfig(**FAST))
    alone = optimize(toy, [Target(image=img)], PEZConfig(**FAST))
    feat = encode_text(toy, both.text)
    cos_img = float(feat @ image_features(toy, [img])[0])
    cos_txt = float(feat @ encode_text(toy, text))
    assert both.target_cosines == pytest.approx([cos_img, cos_txt], abs=1e-4)
    assert both.similarity == pytest.approx((cos_img + cos_txt) / 2, abs=1e-4)
    # measured: 'large red purple purple' 0.69 vs the image-only 'purple background background large' 0.36
    assert cos_txt > float(encode_text(toy, alone.text) @ encode_text(toy, text)) + 0.1
    assert "red" in both.text.split()
