"""The paper's metric and ``pez eval``: generate from prompts, judge with the reference CLIP."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("diffusers", reason="diffusers is not installed: pip install -e '.[generate]'")

from pez_nodes import toyworld as tw  # noqa: E402
from pez_nodes.core import PEZConfig, invert  # noqa: E402
from pez_nodes.core.clip.images import preprocess  # noqa: E402
from pez_nodes.evaluate.metric import image_similarity, paired_similarity  # noqa: E402
from pez_nodes.evaluate.reference import load_reference_clip  # noqa: E402
from pez_nodes.evaluate.run import evaluate_inversion, match_prompts  # noqa: E402
from pez_nodes.generate import load_generator  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
# Measured (README, "The paper's loop"): over this test's 6 toy targets × 3 seeds, PEZ prompts' generations scored a
# mean reference similarity of 0.752, random prompts' of the same length 0.297; the margin is under half that gap.
PEZ_OVER_RANDOM = 0.2


def pez(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "pez_nodes.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=cwd)


@pytest.fixture(scope="module")
def reference():
    return load_reference_clip()


def test_the_metric_is_the_cosine_of_the_reference_clips_image_features(reference):
    a = tw.render(tw.Scene("circle", "red", "large", "grass"), size=64, seed=1)
    b = tw.render(tw.Scene("star", "blue", "small", "night"), size=48, seed=2)
    pixels = preprocess([a, b], reference.image_size, reference.image_mean, reference.image_std)
    with torch.no_grad():
        fa, fb = F.normalize(reference.model.encode_image(pixels), dim=-1)
    by_hand = float((fa * fb).sum())
    assert float(image_similarity(reference, [a], [b])[0, 0]) == pytest.approx(by_hand, abs=1e-6)
    assert paired_similarity(reference, [a, b], [a, b]).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert paired_similarity(reference, [a], [a, b]).shape == (2,)
    with pytest.raises(ValueError, match="same size"):
        paired_similarity(reference, [a, b], [a, b, a])


def test_pez_prompts_generate_closer_pictures_than_random_prompts(toy, reference):
    generator = load_generator("toy")
    rng = random.Random(5)
    vocab = [i for i in range(49406)]
    pez_scores, random_scores = [], []
    for i in range(6):
        scene = tw.random_scene(rng)
        target = tw.render(scene, size=128, seed=900 + i)
        prompt = invert(toy, [target], PEZConfig(prompt_len=8, steps=150, restarts=4, seed=i)).text
        noise = toy.decode(rng.sample(vocab, 8))
        pez_scores += image_similarity(reference, [target], generator.generate(prompt, [0, 1, 2]))[0].tolist()
        random_scores += image_similarity(reference, [target], generator.generate(noise, [0, 1, 2]))[0].tolist()
    assert np.mean(pez_scores) > np.mean(random_scores) + PEZ_OVER_RANDOM, (np.mean(pez_scores), np.mean(random_scores))


def test_pez_eval_writes_a_table_json_and_a_grid(tmp_path):
    targets = tmp_path / "targets"
    targets.mkdir()
    for i, scene in enumerate([tw.Scene("circle", "red", "large", "grass"), tw.Scene("star", "yellow", "small", "night")]):
        tw.render(scene, size=96, seed=i).save(targets / f"t{i}.png")
    out = pez("eval", str(targets), "--seeds", "2", "--steps", "30", "--out", str(tmp_path / "out"), "--quiet")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert [r["name"] for r in report["rows"]] == ["t0.png", "t1.png"]
    assert all(len(r["similarities"]) == 2 for r in report["rows"]) and report["summary"]["n"] == 4
    assert set(report["timing"]) == {"invert_s", "generate_s", "score_s", "total_s"}
    assert (tmp_path / "out" / "eval.png").is_file() and "±" in out.stdout
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"t0.png": "a large red circle on grass", "./t1.png": "a small yellow star on night"}))
    given = pez("eval", str(targets), "--prompts", str(prompts), "--seeds", "1", "--out", str(tmp_path / "o2"), "--json")
    assert given.returncode == 0, given.stderr
    assert [r["prompt"] for r in json.loads(given.stdout)["rows"]] == ["a large red circle on grass",
                                                                      "a small yellow star on night"]


def test_pez_eval_distills_at_ratios(tmp_path):
    out = pez("eval", "--distill", "a photo of a large red circle on a grass background", "--ratios", "0.5,0.2",
              "--seeds", "2", "--steps", "30", "--out", str(tmp_path), "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    assert rows[0]["name"].startswith("original") and [r["name"].split(" (")[0] for r in rows[1:]] == ["ratio 0.5", "ratio 0.2"]


def test_pez_eval_runs_on_a_stable_diffusion_folder(tmp_path):
    pytest.importorskip("transformers", reason="real Stable Diffusion needs transformers")
    from tiny_sd import write_tiny_sd

    sd = write_tiny_sd(tmp_path / "sd")
    targets = tmp_path / "targets"
    targets.mkdir()
    tw.render(tw.Scene("ring", "green", "large", "sand"), size=64, seed=0).save(targets / "a.png")
    out = pez("eval", str(targets), "--generator", str(sd), "--model", "toy", "--seeds", "1", "--gen-steps", "2",
              "--steps", "10", "--out", str(tmp_path / "out"), "--json", "--quiet")  # SD's own CLIP: ViT-L-14
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["generator"] == "sd"


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no images"),
    ("missing", "does not exist; give a folder of images"),
    ("unreadable", "could not be read as an image"),
    ("no_pipeline", "does not exist; give a diffusers folder"),
    ("guidance", "guidance=0.0 must be a number > 0"),
    ("steps", "steps=0: generation needs at least 1"),
    ("prompts_list", "--prompts 'PROMPTS' holds a JSON list; write an object of prompts keyed by image file name"),
    ("prompts_unmatched", "key 'OK.png' names no image in 'FOLDER'; key each prompt by one of the file names ok.png"),
])
def test_bad_eval_inputs_get_one_clear_error(tmp_path, case, message):
    folder = tmp_path / "targets"
    folder.mkdir()
    if case != "empty":
        tw.render(tw.Scene("circle", "red", "large", "grass"), size=64, seed=0).save(folder / "ok.png")
    if case == "unreadable":
        (folder / "bad.png").write_bytes(b"not a png")
    args = [str(tmp_path / "nowhere") if case == "missing" else str(folder), "--steps", "5", "--seeds", "1",
            "--out", str(tmp_path / "out")]
    args += {"no_pipeline": ["--generator", str(tmp_path / "no_sd")], "guidance": ["--guidance", "0"],
             "steps": ["--gen-steps", "0"]}.get(case, [])
    prompts = tmp_path / "prompts.json"
    if case.startswith("prompts"):  # --model names no model: the error comes before anything loads
        prompts.write_text(json.dumps(["a red circle"] if case == "prompts_list" else {"OK.png": "a red circle"}))
        args += ["--prompts", str(prompts), "--model", str(tmp_path / "no_model")]
    out = pez("eval", *args)
    assert out.returncode == 2, out.stderr
    message = message.replace("PROMPTS", str(prompts)).replace("FOLDER", str(folder))
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_given_prompts_are_matched_as_users_write_their_keys(tmp_path):
    names = ["a.png", "b.jpg"]
    for name in names:
        (tmp_path / name).touch()
    keys = {"a.png": "one", "./b.jpg": "two"}
    assert match_prompts(keys, names) == {"a.png": "one", "b.jpg": "two"}
    assert match_prompts({".\\a.png": "one", str(tmp_path / "b.jpg"): "two"}, names, folder=tmp_path) == \
        {"a.png": "one", "b.jpg": "two"}
    for prompts, message in [({"c.png": "x"}, "key 'c.png' names no image; key each prompt by one of the file names "
                                              "a.png, b.jpg"),
                             ({"a.png": "x", "./a.png": "y"}, "keys 'a.png' and './a.png' both name a.png"),
                             ({"a.png": ["x"]}, "the prompt for 'a.png' is ['x']; write each prompt as a non-empty string"),
                             ("a.png", "holds a JSON string; write an object")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            match_prompts(prompts, names)
    # the library refuses an unmatched key before it inverts or generates anything (no model is even needed)
    with pytest.raises(ValueError, match="key 'c.png' names no image"):
        evaluate_inversion(None, None, None, [("a.png", None)], [0], PEZConfig(), {"c.png": "x"})


def test_demo_shows_the_whole_loop(tmp_path):
    out = pez("demo", "--steps", "60", "--threads", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "generated from the prompt: similarity to the drawn picture" in out.stdout
    assert (tmp_path / "pez_demo.png").is_file()
