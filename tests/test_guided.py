"""Guided decoding (``method="guided"``): a causal LM writes the prompt, the toy CLIP chooses — real decoding with
the bundled toy LMs on the toy world; thresholds measured and written beside each test."""

from __future__ import annotations

import math
import random

import pytest

pytest.importorskip("transformers", reason="guided decoding's LM needs transformers: pip install -e '.[lm]'")

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.core import PEZConfig, Target, distill, encode_text, image_features, invert, optimize  # noqa: E402
from pez_nodes.lm.load import load_lm  # noqa: E402

GUIDED = dict(method="guided", prompt_len=16)
GEN_MARGIN = 0.03  # generation similarity: guided's mean may trail PEZ's by this much (measured: it leads, below)  # VGD's 10 beams × 10 candidates, lm_weight 0.05


def perplexity(lm, text: str) -> float:
    """``lm``'s perplexity of ``text`` read after its start token (the judge of readability)."""
    ids, context = lm.encode(text), lm.context_ids("")
    log_p = sum(float(lm.next_log_probs([context + ids[:i]])[0, t]) for i, t in enumerate(ids))
    return math.exp(-log_p / max(1, len(ids)))


def _scenes(n: int, seed: int):
    rng = random.Random(seed)
    return [(s, tw.render(s, size=128, seed=500 + i)) for i, s in enumerate(tw.random_scene(rng) for _ in range(n))]


def test_guided_prompts_read_far_better_than_pezs_and_find_the_scene(toy, toy_lm_small, toy_lm_large):
    """5 toy-world images, guided by toy_lm_small, judged by toy_lm_large (a different LM), against PEZ
    (8 tokens, 300 steps, 4 restarts) on the same images.

    Measured: guided perplexity under the judge 2.8–3.0, PEZ's 6.9e5–5.0e6; guided similarity 0.619–0.671
    (mean 0.648), PEZ 0.601–0.659 (mean 0.638); guided recalls 20 of 20 attribute words (PEZ 16); the toy
    generator's pictures from the prompts (3 seeds, reference CLIP): guided 0.743, PEZ 0.649 (per picture
    within 0.02 of PEZ's or above). Thresholds: every guided prompt's judged perplexity ≤ 1/100 of PEZ's (the
    issue's aim), mean similarity at least PEZ's − 0.03, recall ≥ 0.9, mean generation similarity at least
    PEZ's − GEN_MARGIN.
    """
    from pez_nodes.evaluate.metric import image_similarity
    from pez_nodes.evaluate.reference import load_reference_clip
    from pez_nodes.generate import load_generator

    generator, judge = load_generator("toy"), load_reference_clip()

    def generated(image, text: str) -> float:  # the paper's metric: the reference CLIP on 3 generations
        return float(image_similarity(judge, [image], generator.generate(text, [0, 1, 2]))[0].mean())

    sims, pez_sims, gens, pez_gens, hits, total = [], [], [], [], 0, 0
    for i, (scene, image) in enumerate(_scenes(5, seed=0)):
        guided = invert(toy, [image], PEZConfig(**GUIDED), guide_lm=toy_lm_small)
        pez = invert(toy, [image], PEZConfig(prompt_len=8, steps=300, seed=i))
        judged, judged_pez = perplexity(toy_lm_large, guided.text), perplexity(toy_lm_large, pez.text)
        gens.append(generated(image, guided.text))
        pez_gens.append(generated(image, pez.text))
        print(f"{scene.caption!r}: guided {guided.text!r} {guided.similarity:.3f} ppl {judged:.1f} gen {gens[-1]:.3f} | "
              f"pez {pez.text!r} {pez.similarity:.3f} ppl {judged_pez:.3g} gen {pez_gens[-1]:.3f}")
        assert judged <= judged_pez / 100
        assert guided.method == "guided" and guided.perplexity is not None and guided.perplexity < 20
        sims.append(guided.similarity)
        pez_sims.append(pez.similarity)
        hits += sum(w in guided.text.split() for w in scene.words)
        total += len(scene.words)
    assert sum(sims) / len(sims) >= sum(pez_sims) / len(pez_sims) - 0.03
    assert hits / total >= 0.9
    print(f"generation similarity: guided {sum(gens) / 5:.3f}, pez {sum(pez_gens) / 5:.3f}")
    assert sum(gens) / len(gens) >= sum(pez_gens) / len(pez_gens) - GEN_MARGIN


def test_guided_similarity_is_the_pasted_texts(toy, toy_lm_small):
    """Round-trip exact: each candidate's similarity is that of its text as a user's encoder reads it."""
    scene, image = _scenes(1, seed=3)[0]
    result = invert(toy, [image], PEZConfig(**GUIDED, top_k=3), guide_lm=toy_lm_small)
    feature = image_features(toy, [image])[0]
    assert len(result.candidates) == 3 and result.candidates[0].text == result.text
    for cand in result.candidates:
        assert abs(float(encode_text(toy, cand.text) @ feature) - cand.similarity) < 1e-5, cand
        assert cand.token_ids == toy.tokenize(cand.text)


def test_guided_obeys_the_blocklist_the_allowlist_and_the_negatives(toy, toy_lm_small):
    scene = tw.Scene("triangle", "red", "large", "grass")
    image = tw.render(scene, size=128, seed=1)
    plain = invert(toy, [image], PEZConfig(**GUIDED), guide_lm=toy_lm_small)
    assert "red" in plain.text.split()
    blocked = invert(toy, [image], PEZConfig(**GUIDED, blocklist=("red",)), guide_lm=toy_lm_small)
    assert "red" not in blocked.text.lower()
    pushed = optimize(toy, [Target(image=image), Target(text="red", weight=-1.0)], PEZConfig(**GUIDED), guide_lm=toy_lm_small)
    assert "red" not in pushed.text.split()
    words = ("a", "large", "red", "triangle", "on", "grass", "blue", "circle")
    allowed = invert(toy, [image], PEZConfig(**GUIDED, allowlist=words), guide_lm=toy_lm_small)
    assert allowed.text and set(allowed.text.split()) <= set(words), allowed.text


def test_guided_distills_and_stops_from_the_callback_with_the_best_so_far(toy, toy_lm_small):
    result = distill(toy, "a small blue circle on sand", PEZConfig(**GUIDED), guide_lm=toy_lm_small)
    assert {"small", "blue", "circle", "sand"} <= set(result.text.split()) and result.similarity > 0.9
    seen = []
    stopped = distill(toy, "a small blue circle on sand", PEZConfig(**GUIDED),
                      callback=lambda step, total, text, sim: seen.append(text) or step == 2, guide_lm=toy_lm_small)
    assert stopped.stop_reason == "callback" and stopped.steps == 2 and stopped.text


def test_guided_needs_an_lm_and_refuses_what_it_cannot_do(toy):
    with pytest.raises(ValueError, match="method guided needs a language model"):
        distill(toy, "a red circle", PEZConfig(method="guided"))
    with pytest.raises(ValueError, match="takes no template"):
        PEZConfig(method="guided", template="a photo of {}").validate()
    with pytest.raises(ValueError, match="guided decoding takes no gradient"):
        PEZConfig(method="guided", fluency=0.1).validate()
    with pytest.raises(ValueError, match="beams=0 is out of range"):
        PEZConfig(method="guided", beams=0).validate()


def test_an_lm_with_its_own_tokenizer_guides_the_clip_prompt(toy, tmp_path):
    """A tiny random GPT-2 with its own byte-level BPE and a chat template: text crosses tokenizers as text, so
    the prompt is scored as the CLIP tokenizer reads it."""
    _tiny_gpt2(tmp_path / "gpt2", chat_template=("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}"
                                                 "{% if add_generation_prompt %}assistant:{% endif %}"))
    lm = load_lm(str(tmp_path / "gpt2"))
    assert lm.encode("a red circle") != toy.tokenize("a red circle")  # another tokenizer indeed
    assert lm.decode(lm.context_ids("draw it")) == "user: draw it assistant:"  # the instruction, chat-templated
    for instruction in (None, "draw it"):
        result = distill(toy, "a large red circle on grass", PEZConfig(**GUIDED, instruction=instruction), guide_lm=lm)
        assert result.text and result.similarity == pytest.approx(
            float(encode_text(toy, result.text) @ encode_text(toy, "a large red circle on grass")), abs=1e-4)


def test_the_comfyui_nodes_guide_with_the_connected_lm_or_the_toy_clips_own(toy, toy_lm_small):
    """PEZ Distill / Invert's bodies (no ComfyUI needed): ``guide_lm`` connected, or toy_lm_small for the toy CLIP."""
    from pez_nodes.comfy import node_bodies

    config = node_bodies.make_config(prompt_len=16, method="guided", device=toy.device)
    alone = node_bodies.distill(toy, "a small blue circle on sand", config)
    connected = node_bodies.distill(toy, "a small blue circle on sand", config, guide_lm=toy_lm_small)
    assert alone.method == connected.method == "guided" and alone.text == connected.text
    assert {"blue", "circle"} <= set(alone.text.split())


def _tiny_gpt2(folder, with_tokenizer: bool = True, chat_template: str | None = None):
    """A tiny random GPT-2 on its own byte-level BPE (trained here on toy captions), saved as a user's folder."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([s.caption for s in tw.all_scenes()], vocab_size=400, min_frequency=1,
                            special_tokens=["<|endoftext|>"])
    end = "<|endoftext|>"
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=end, bos_token=end, unk_token=end)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                                       bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id))
    tokenizer.chat_template = chat_template
    model.save_pretrained(folder, safe_serialization=True)
    if with_tokenizer:
        tokenizer.save_pretrained(folder)
    return folder


def test_bad_lm_folders_get_one_clear_line_each(toy, tmp_path, toy_lm_small):
    """A folder that is no model, one without a tokenizer, one with only pickled weights, and an instruction
    for a base model (no chat template): each one ValueError naming the folder or model and the fix."""
    with pytest.raises(ValueError, match="is not a folder with config.json") as info:
        load_lm(str(tmp_path / "nowhere"))
    assert "\n" not in str(info.value)
    bare = _tiny_gpt2(tmp_path / "no_tokenizer", with_tokenizer=False)
    with pytest.raises(ValueError, match=r"has no tokenizer .*tokenizer.save_pretrained"):
        load_lm(str(bare))
    pickled = _tiny_gpt2(tmp_path / "pickled")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(ValueError, match="has no .safetensors weights"):
        load_lm(str(pickled))
    with pytest.raises(ValueError, match=r"'toy_lm_small' has no chat template \(a base model\).*start_text"):
        distill(toy, "a red circle", PEZConfig(**GUIDED, instruction="Describe it:"), guide_lm=toy_lm_small)
