"""Choosing a prompt by what it generates: ``pez_nodes.evaluate.pick``, the body of PEZ Prompt List / PEZ Pick by
Generation (``pez_nodes.comfy.pick_body``, no ComfyUI needed) and ``pez eval --pick-by-generation``.

The toy world's case where the CLIP-best prompt is not the generation-best (measured on a 2-core CPU, torch on one
thread; target: ``tw.render(Scene("star", "purple", "small", "grass"), size=128, seed=100 and 101)``):

=============================== ==================================== ==========================================
prompt                          toy CLIP text–image similarity       reference CLIP similarity of its toy
                                to the two targets (PEZ's score)     generations (seeds 0, 1, 2) to the targets
=============================== ==================================== ==========================================
A "small purple grass"          0.6209                               0.6809
B "a small purple star on grass" 0.5609                              0.8478
=============================== ==================================== ==========================================

The toy CLIP barely sees the small star — leaving the shape out scores 0.060 *higher* — but the generator, told no
shape, draws purple blobs, while B's generations are purple stars. Picked by generation, B wins by 0.167.
(Judged by the toy CLIP itself instead of the reference, A would win, 0.524 vs 0.472: the judge should be a CLIP
other than the one the prompts were learned with, as in the paper.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pez_nodes import toyworld as tw
from pez_nodes.comfy import pick_body
from pez_nodes.evaluate.pick import GenerationPick, pick_by_generated_images, pick_by_generation

SCENE = tw.Scene("star", "purple", "small", "grass")
TARGET_SEEDS = (100, 101)
GEN_SEEDS = [0, 1, 2]
A_CLIP_BEST = "small purple grass"
B_GENERATION_BEST = SCENE.caption
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def comfy_image(pictures) -> torch.Tensor:
    """PIL pictures as one ComfyUI IMAGE batch ([B, H, W, C], 0..1)."""
    return torch.from_numpy(np.stack([np.asarray(p.convert("RGB"), dtype="float32") / 255 for p in pictures]))


def test_pick_by_generation_keeps_the_candidate_whose_images_are_closest():
    targets = torch.tensor([[1.0, 0.0], [0.8, 0.6]])  # raw features: normalised inside
    generated = [torch.tensor([[0.0, 5.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([0.0, 1.0])]
    pick = pick_by_generation(["far", "near", "one image, 1-D"], targets, generated)
    assert isinstance(pick, GenerationPick) and (pick.index, pick.prompt) == (1, "near")
    assert pick.scores == pytest.approx((0.3, 0.9, 0.3)) and pick.score == pytest.approx(0.9)
    assert pick.per_image[0] == pytest.approx((0.3, 0.3))
    assert pick.ranking() == [1, 0, 2]  # ties keep the order given
    assert pick.table(["far", "near", "one image, 1-D"]).splitlines()[0] == "1. 0.9000  #2  near"
    tie = pick_by_generation(["first", "second"], targets, [targets, targets])
    assert tie.index == 0  # a tie goes to the earlier candidate (PEZ's candidates come CLIP-best first)


@pytest.mark.parametrize("prompts, targets, generated, message", [
    ([], torch.ones(1, 2), [], "no candidate prompts to choose from"),
    (["a", "b"], torch.ones(1, 2), [torch.ones(1, 2)], "got 2 prompts but 1 sets of generated images"),
    (["a"], torch.ones(1, 2), [torch.ones(1, 3)], "have 3-wide features, the targets 2-wide"),
    (["a"], torch.ones(0, 2), [torch.ones(1, 2)], "the target features have shape (0, 2)"),
    (["a"], torch.ones(1, 2), [[1.0, 2.0]], "are a list, not a tensor"),
])
def test_bad_features_are_one_clear_error(prompts, targets, generated, message):
    with pytest.raises(ValueError, match=None) as error:
        pick_by_generation(prompts, targets, generated)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def case():
    """The constructed case: targets, the reference judge, and each prompt's toy generations (seeds 0, 1, 2)."""
    pytest.importorskip("diffusers", reason="the toy generator needs diffusers: pip install -e '.[generate]'")
    from pez_nodes.evaluate.reference import load_reference_clip
    from pez_nodes.generate import load_generator

    generator = load_generator("toy")
    targets = [tw.render(SCENE, size=128, seed=s) for s in TARGET_SEEDS]
    generated = [generator.generate(p, GEN_SEEDS) for p in (A_CLIP_BEST, B_GENERATION_BEST)]
    return targets, load_reference_clip(), generated


def test_the_clip_best_prompt_is_not_the_generation_best_and_the_pick_takes_the_latter(toy, case):
    """A scores higher than B under the CLIP PEZ optimises against; B's generations are closer (module docstring)."""
    from pez_nodes.core import encode_text, image_features

    targets, reference, generated = case
    with torch.no_grad():
        features = image_features(toy, targets)
        clip_a, clip_b = (float((features @ encode_text(toy, p)).mean()) for p in (A_CLIP_BEST, B_GENERATION_BEST))
    assert clip_a > clip_b + 0.03, (clip_a, clip_b)  # measured 0.6209 vs 0.5609
    pick = pick_by_generated_images(reference, [A_CLIP_BEST, B_GENERATION_BEST], targets, generated)
    assert pick.prompt == B_GENERATION_BEST and pick.index == 1
    assert pick.scores[1] > pick.scores[0] + 0.08, pick.scores  # measured 0.8478 vs 0.6809
    assert pick.scores == pytest.approx((0.6809, 0.8478), abs=0.02)


def test_the_node_body_picks_the_same_from_comfyui_images(case):
    """PEZ Pick by Generation's body on ComfyUI IMAGE batches (one per prompt) and a target batch."""
    targets, reference, generated = case
    result = pick_body.pick([A_CLIP_BEST, B_GENERATION_BEST], [comfy_image(g) for g in generated],
                            [comfy_image(targets)], pez_clip=reference)
    assert result.prompt == B_GENERATION_BEST and result.scores[1] > result.scores[0] + 0.08
    shown = pick_body.ranking_text(result, [A_CLIP_BEST, B_GENERATION_BEST])
    assert shown.startswith(f"best (#2 of 2): {B_GENERATION_BEST}\nsimilarity ")
    assert shown.splitlines()[-1].endswith(f"#1  {A_CLIP_BEST}")


def test_prompt_list_keeps_the_non_empty_prompts_once_in_order():
    assert pick_body.prompt_list(["a red circle", ["  a blue ring ", ""], None], "\n a red circle\nsand\n\n") == [
        "a red circle", "a blue ring", "sand"]
    with pytest.raises(ValueError, match="PEZ Prompt List has no prompts: connect text_a / text_b, or write one"):
        pick_body.prompt_list(["", None], " \n ")


@pytest.mark.parametrize("inputs, message", [
    ({"prompts": []}, "prompts is empty: connect the candidate prompts"),
    ({"images": []}, "images is empty: connect the images generated from each prompt"),
    ({"prompts": ["a", "b", "c"]}, "prompts has 3 prompts but images has 2 image batches: generate one batch per "
                                   "prompt, in order"),
    ({"images": [torch.zeros(4, 8, 8, 3)]}, "prompts has 2 prompts but images has 1 image batch (of 4 images)"),
    ({"targets": []}, "target is empty: connect the target image(s)"),
    ({"pez_clip": None}, "connect exactly one judge: a PEZ CLIP (pez_clip) or a CLIP Vision model (clip_vision)"),
    ({"prompts": ["a", 3]}, "prompts holds int, not text"),
])
def test_bad_node_inputs_are_one_line_naming_the_input(toy, inputs, message):
    given = {"prompts": ["a", "b"], "images": [torch.zeros(1, 8, 8, 3)] * 2, "targets": [torch.zeros(1, 8, 8, 3)],
             "pez_clip": toy, **inputs}
    with pytest.raises(ValueError) as error:
        pick_body.pick(given.pop("prompts"), given.pop("images"), given.pop("targets"), **given)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_a_clip_vision_judge_scores_with_clip_vision_encodes_features(tmp_path):
    """The node's other judge: a ComfyUI CLIP Vision model (a small random one), its images encoded as
    CLIPVisionEncode encodes them (crop "none": squashed)."""
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        pytest.skip("COMFYUI_DIR is not set: no ComfyUI CLIP Vision model to judge with")
    import torch.nn.functional as F

    sys.path.append(comfy_dir)
    try:
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
        import comfy.clip_vision
    finally:
        sys.path.remove(comfy_dir)
    config = json.loads((Path(comfy_dir) / "comfy" / "clip_vision_config_vitl.json").read_text())
    config.update(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2,
                  projection_dim=32, image_size=64, patch_size=16)
    (tmp_path / "vision.json").write_text(json.dumps(config))
    vision = comfy.clip_vision.ClipVisionModel(str(tmp_path / "vision.json"))
    generator = torch.Generator().manual_seed(0)
    vision.load_sd({k: torch.randn(v.shape, generator=generator) * 0.1 + (1.0 if k.endswith("norm.weight") else 0.0)
                    for k, v in vision.get_sd().items()})
    scenes = [tw.Scene("circle", "red", "large", "grass"), tw.Scene("ring", "blue", "small", "night")]
    batches = [comfy_image([tw.render(s, size=64, seed=k) for k in (0, 1)]) for s in scenes]
    target = comfy_image([tw.render(scenes[1], size=64, seed=5)])
    result = pick_body.pick(["red circle", "blue ring"], batches, [target], clip_vision=vision, crop="none")

    def embeds(images):
        with torch.inference_mode():
            return F.normalize(vision.encode_image(images, crop=False)["image_embeds"].float().clone(), dim=-1)

    expected = [float((embeds(b) @ embeds(target).T).mean()) for b in batches]
    assert result.scores == pytest.approx(expected, abs=1e-4)
    assert result.index == int(np.argmax(expected))


class _Generator:
    """A stand-in generator that records what it was asked for and draws the scene the prompt's toy words name
    (the first word of each kind; unnamed ones: a large blue circle on night)."""

    name, guidance, steps = "stub", 2.0, 25

    def __init__(self):
        self.calls = []

    def generate(self, prompt, seeds, guidance=None, steps=None):
        self.calls.append((prompt, list(seeds)))
        words = prompt.split()

        def named(options, default):
            return next((w for w in words if w in options), default)

        scene = tw.Scene(named(tw.SHAPES, "circle"), named(tw.COLORS, "blue"), named(tw.SIZES, "large"),
                         named(tw.BACKGROUNDS, "night"))
        return [tw.render(scene, 64, seed=s) for s in seeds]


def test_eval_chooses_on_other_seeds_than_it_scores_with(toy):
    """``evaluate_inversion(pick=N)``: every candidate is generated on the choice seeds, the top-1 and the picked
    prompt on the row's seeds; the row reports both."""
    from pez_nodes.core import PEZConfig
    from pez_nodes.evaluate.run import evaluate_inversion

    generator = _Generator()
    rows, _ = evaluate_inversion(toy, generator, toy, [("t.png", tw.render(SCENE, 64, seed=100))], [0, 1],
                                 PEZConfig(prompt_len=4, steps=20, seed=0), pick=3)
    picked = rows[0].picked
    assert picked is not None and 1 <= len(picked.candidates) <= 3 and picked.candidates[0][0] == rows[0].prompt
    assert [p for p, s in generator.calls if s == [2, 3]] == [p for p, _, _ in picked.candidates]
    scored = [rows[0].prompt] + ([picked.prompt] if picked.prompt != rows[0].prompt else [])
    assert [p for p, s in generator.calls if s == [0, 1]] == scored
    assert {tuple(s) for _, s in generator.calls} == {(0, 1), (2, 3)}
    best = max(range(len(picked.candidates)), key=lambda i: picked.candidates[i][2])
    assert picked.prompt == picked.candidates[best][0] and len(picked.similarities) == 2
    assert rows[0].as_dict()["picked"]["rank"] == best + 1


def pez(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pez_nodes.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_pez_eval_reports_the_prompt_picked_by_generation_next_to_the_top_1(tmp_path):
    pytest.importorskip("diffusers", reason="the toy generator needs diffusers: pip install -e '.[generate]'")
    targets = tmp_path / "targets"
    targets.mkdir()
    tw.render(SCENE, size=128, seed=100).save(targets / "star.png")
    out = pez("eval", str(targets), "--pick-by-generation", "3", "--seeds", "2", "--steps", "60",
              "--out", str(tmp_path / "out"), "--quiet")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    row, picked = report["rows"][0], report["rows"][0]["picked"]
    assert report["pick_by_generation"] == 3 and set(report["summary_picked"]) == {"mean", "std", "n"}
    assert picked["candidates"][0]["prompt"] == row["prompt"] and 1 <= picked["of"] <= 3
    choices = [c["choice_similarity"] for c in picked["candidates"]]
    assert picked["prompt"] == picked["candidates"][choices.index(max(choices))]["prompt"]
    assert len(picked["similarities"]) == 2 and "picked #" in out.stdout and "picked by generation" in out.stdout
    assert (tmp_path / "out" / "eval.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--pick-by-generation", "1"], "--pick-by-generation 1: give 2 or more candidates to choose among"),
    (["--pick-by-generation", "-2"], "--pick-by-generation -2: give 2 or more candidates"),
    (["--distill", "a red circle", "--pick-by-generation", "3"], "--pick-by-generation chooses among the prompts PEZ "
                                                                  "learns for target images; --distill has none"),
])
def test_bad_pick_flags_are_one_clear_error_before_anything_loads(tmp_path, args, message):
    folder = tmp_path / "targets"
    folder.mkdir()
    tw.render(SCENE, size=64, seed=0).save(folder / "ok.png")
    out = pez("eval", *([] if "--distill" in args else [str(folder)]), *args, "--model", str(tmp_path / "no_model"),
              "--out", str(tmp_path / "out"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
