"""The `pez` command as a user runs it: README's demo, JSON output, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from pez_nodes import toyworld as tw

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def pez(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pez_nodes.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_demo_prints_prompt_as_json():
    out = pez("demo", "--json", "--threads", "1")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # exactly one JSON object on stdout
    assert {"prompt", "similarity", "steps", "seconds"} <= set(data)
    assert data["prompt"] and data["steps"] == 300 and 0 < data["similarity"] <= 1
    assert "/300" in out.stderr  # the progress bar went to stderr


def test_invert_distill_concat_with_toy_model(tmp_path):
    img = tmp_path / "pic.png"
    tw.render(tw.Scene("star", "yellow", "large", "night"), size=96, seed=0).save(img)
    common = ["--model", "toy", "--steps", "20", "--prompt-len", "4", "--json", "--quiet"]
    for args in (["invert", str(img)], ["distill", "a large yellow star on night"], ["concat", "red circle", "on sand"]):
        out = pez(*args, *common)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["steps"] == 20 and len(data["token_ids"]) >= 1
        assert out.stderr == ""


@pytest.mark.parametrize(
    "args, needle",
    [
        (["distill", "a cat"], "--model toy"),  # the default ViT-L-14/openai cannot be fetched offline
        (["distill", "a cat", "--model", "ViT-Q-99", "--pretrained", "x"], "not an open_clip model name"),
        (["distill", "", "--model", "toy"], "empty"),
        (["distill", "a cat", "--model", "toy", "--prompt-len", "0"], "prompt_len=0"),
        (["distill", "a cat", "--model", "toy", "--steps", "0"], "steps=0"),
        (["invert", "/no/such.png", "--model", "toy"], "does not exist"),
    ],
)
def test_errors_print_one_line_and_exit_non_zero(args, needle):
    out = pez(*args, "--quiet")
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert needle in lines[0]
    assert out.stdout == ""


def test_control_flags_reach_the_core(tmp_path):
    allow = tmp_path / "words.txt"
    allow.write_text("red\nblue\ncircle\nsquare\ngrass\nsand\nphoto\n")
    out = pez("distill", "a large red circle on grass", "--model", "toy", "--steps", "30", "--prompt-len", "2",
              "--allowlist", str(allow), "--blocklist", "blue,square", "--negative-text", "sand",
              "--negative-weight", "0.3", "--template", "a photo of {} on {}", "--slot-len", "1",
              "--top-k", "3", "--ascii-only", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["prompt"].startswith("a photo of ") and " on " in data["prompt"]
    learned = data["prompt"].replace("a photo of ", "").replace(" on ", " ").split()
    assert set(learned) <= {"red", "circle", "grass", "sand", "photo"}
    sims = [c["similarity"] for c in data["candidates"]]
    assert 1 <= len(sims) <= 3 and sims == sorted(sims, reverse=True) and data["candidates"][0]["prompt"] == data["prompt"]


def test_empty_allowlist_file_is_one_line_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    out = pez("distill", "a cat", "--model", "toy", "--allowlist", str(empty), "--quiet")
    assert out.returncode == 2 and "allowlist is empty" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_negatives_with_default_weight_never_sum_to_zero(tmp_path):
    pos, neg = tmp_path / "pos.png", tmp_path / "neg.png"
    tw.render(tw.Scene("circle", "red", "large", "grass"), size=64, seed=0).save(pos)
    tw.render(tw.Scene("circle", "blue", "large", "grass"), size=64, seed=0).save(neg)
    out = pez("invert", str(pos), "--negative-image", str(neg), "--negative-text", "blue", "--model", "toy",
              "--steps", "20", "--prompt-len", "3", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["prompt"]
