"""The `pez` command as a user runs it: README's demo, JSON output, one-line errors, Ctrl-C."""

import inspect
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pez_nodes import core
from pez_nodes import toyworld as tw
from pez_nodes.core import TOY_DIR, load_clip, with_negatives

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def pez(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pez_nodes.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


@pytest.mark.slow  # ~12 s: a whole demo; the quick subset (-m "not slow") keeps the shorter command tests
def test_demo_prints_prompt_as_json():
    out = pez("demo", "--json", "--threads", "1")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # exactly one JSON object on stdout
    assert {"prompt", "similarity", "steps", "seconds"} <= set(data)
    assert data["prompt"] and data["steps"] == 300 and 0 < data["similarity"] <= 1
    assert "/300" in out.stderr  # the progress bar went to stderr


@pytest.mark.slow  # ~17 s: three whole runs
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
        (["distill", "a cat"], "bundled model (toy)"),  # the default ViT-L-14/openai cannot be fetched offline
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


def _one_error_line(out) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pez: error: "), out.stderr
    assert out.returncode == 2 and out.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--threads", "-2"], "--threads -2"),
        (["--threads", "0"], "--threads 0"),
        (["--device", "meta"], "error: device 'meta' cannot run PEZ"),  # torch accepts it, PEZ cannot use it
        (["--device", "xla"], "use auto, cpu, cuda, cuda:N or mps"),
        (["--pretrained", "openai"], "drop --pretrained"),  # toy brings its own weights
        (["--activation", "relu"], "invalid choice"),  # argparse's own errors are one line too
        (["--allowlist", "{tmp}"], "is a directory"),
        (["--negative-image", "{tmp}"], "is a directory; give an image file"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path, args, needle):
    out = pez("distill", "a cat", "--model", "toy", "--steps", "2", *[a.format(tmp=tmp_path) for a in args])
    assert needle in _one_error_line(out)


def test_directory_as_image_and_pretrained_with_a_folder_are_refused(tmp_path):
    assert "is a directory; give an image file" in _one_error_line(pez("invert", str(tmp_path), "--model", "toy"))
    line = _one_error_line(pez("distill", "a cat", "--model", str(TOY_DIR), "--pretrained", "openai"))
    assert "drop --pretrained" in line


def test_unexpected_core_exceptions_are_one_line_with_their_type(monkeypatch, capsys):
    from pez_nodes import cli, core

    def half_weights_on_cpu(*args, **kwargs):  # as a forward pass over wrong-architecture weights fails
        raise NotImplementedError('"addmm_impl_cpu_" not implemented for \'Half\'\n(more detail on a second line)')

    monkeypatch.setattr(core, "optimize", half_weights_on_cpu)
    assert cli.main(["distill", "a cat", "--model", "toy", "--steps", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["pez: error: NotImplementedError: \"addmm_impl_cpu_\" not implemented for 'Half'"]


def test_cli_defaults_are_the_cores():
    from pez_nodes.cli.common import resolve_task_defaults
    from pez_nodes.cli.dispatch import build_parser
    from pez_nodes.comfy import node_bodies

    parser = build_parser()
    load = inspect.signature(load_clip).parameters
    for command in (["distill", "x"], ["invert", "x.png"], ["concat", "a", "b"], ["demo"]):
        args = vars(resolve_task_defaults(parser.parse_args(command)))
        d = core.task_config(command[0] if command[0] != "demo" else "invert")  # test_defaults.py: the tasks
        expected = {**{k: getattr(d, k) for k in ("prompt_len", "steps", "lr", "weight_decay", "restarts",
                                                  "targets_per_step", "seed", "patience", "device", "top_k",
                                                  "template", "slot_len", "ascii_only", "blocklist_substring")},
                    "activation": load["activation"].default, "vocabulary": load["vocabulary"].default,
                    "negative_weight": inspect.signature(with_negatives).parameters["share"].default}
        if command == ["demo"]:
            expected.update(steps=300, prompt_len=8)  # the demo's deliberate quick run
        assert {k: args[k] for k in expected} == expected, command
    assert node_bodies.NEGATIVE_WEIGHT == expected["negative_weight"]


def test_activation_and_vocabulary_reach_load_clip():
    out = pez("distill", "a red circle", "--model", "toy", "--steps", "10", "--prompt-len", "3",
              "--vocabulary", "declared", "--activation", "gelu", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    declared = set((TOY_DIR / "pez_vocabulary.txt").read_text().split())
    assert set(data["prompt"].split()) <= declared
    assert any("gelu" in n.lower() for n in data["notes"])


def _start(*args):
    """The CLI as a child that takes Ctrl-C (a child of a background job would inherit SIGINT ignored)."""
    return subprocess.Popen([sys.executable, "-m", "pez_nodes.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_ctrl_c_during_start_up_is_one_line_and_exit_130():
    child = _start("distill", "a cat", "--model", "toy", "--steps", "100000", "--patience", "0")
    time.sleep(0.3)  # Python is up; torch and open_clip are still importing
    maps, deadline = f"/proc/{child.pid}/maps", time.monotonic() + 10
    while os.path.exists(maps) and "torch" not in open(maps).read() and time.monotonic() < deadline:
        time.sleep(0.02)  # on a slow machine: wait until torch's import (inside main) has begun
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert err.strip().splitlines() == ["pez: interrupted"] and out == ""


def test_ctrl_c_mid_run_prints_the_best_prompt_and_exits_130():
    child = _start("distill", "a large red circle on grass", "--model", "toy", "--steps", "100000", "--patience", "0",
                   "--json")
    for line in child.stderr:  # the first progress line: the optimisation is running
        if "/100000" in line:
            break
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    data = json.loads(out)
    assert data["prompt"].strip() and data["stop_reason"] == "interrupted" and 1 <= data["steps"] < 100000
    assert err.strip().splitlines()[-1].startswith("pez: interrupted at step")
