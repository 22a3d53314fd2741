"""Captioning a dataset: per-image prompts in one batch (``invert_each``) and ``pez batch`` (journal, resume, sidecars)."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest

from pez_nodes import toyworld as tw
from pez_nodes.batch.jobs import Job, seed_for
from pez_nodes.batch.local import read_images
from pez_nodes.batch.ray_data import _Inverter, gpus_per_actor, load_args, pack
from pez_nodes.cli import main
from pez_nodes.core import PEZConfig, invert, invert_each, load_clip

SCENES = [tw.Scene("circle", "red", "large", "grass"), tw.Scene("star", "blue", "small", "night"),
          tw.Scene("ring", "white", "small", "sand")]


@pytest.fixture(scope="module")
def clip():
    return load_clip("toy")


@pytest.fixture(scope="module")
def images():
    return [tw.render(s, 64, i) for i, s in enumerate(SCENES)]


@pytest.mark.parametrize("patience", [0, 15])
def test_a_batch_gives_each_image_what_running_it_alone_gives(clip, images, patience):
    """Same seed per image: the same text, similarity, steps and stop reason as solo runs (with patience, the
    images stop at different steps and a stopped image's prompt stays frozen while the others go on)."""
    config = PEZConfig(prompt_len=6, steps=80, seed=3, patience=patience)
    seeds = [3, 11, 5]
    solo = [invert(clip, [im], PEZConfig(**{**config.to_dict(), "seed": s})) for im, s in zip(images, seeds)]
    batch = invert_each(clip, images, config, seeds=seeds)
    for a, b in zip(solo, batch):
        assert (a.text, a.steps, a.stop_reason) == (b.text, b.steps, b.stop_reason)
        assert a.similarity == pytest.approx(b.similarity, abs=1e-5)
    if patience:
        assert len({r.steps for r in batch}) > 1  # they did stop at different steps


def test_invert_each_refuses_what_it_cannot_batch(clip, images):
    with pytest.raises(ValueError, match="no images"):
        invert_each(clip, [], PEZConfig(steps=2))
    with pytest.raises(ValueError, match="one by one"):
        invert_each(clip, images, PEZConfig(steps=2, template="a photo of {}"))
    with pytest.raises(ValueError, match="2 seeds were given for 3 problems"):
        invert_each(clip, images, PEZConfig(steps=2), seeds=[1, 2])


@pytest.fixture
def folder(tmp_path):
    rng = random.Random(0)
    for i in range(5):
        tw.render(tw.random_scene(rng), 48, i).save(tmp_path / f"img{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "img0.txt").write_text("my own caption\n")
    return tmp_path


def _run(*argv) -> int:
    return main(["batch", *map(str, argv), "--model", "toy", "--steps", "20", "--prompt-len", "4", "--threads", "1", "--quiet"])


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batch_writes_one_line_per_image_and_sidecars_that_never_overwrite(folder):
    assert _run(folder, "--sidecar", "--batch-size", "2") == 0
    rows = _lines(folder / "prompts.jsonl")
    assert sorted(os.path.basename(r["path"]) for r in rows) == ["broken.png"] + [f"img{i}.png" for i in range(5)]
    bad = next(r for r in rows if r["path"].endswith("broken.png"))
    assert "could not be read as an image" in bad["error"] and "prompt" not in bad
    good = [r for r in rows if "prompt" in r]
    assert all(r["model"] == "toy" and r["settings"]["steps"] == 20 and r["seed"] == seed_for(r["path"], 0)
               for r in good)
    assert (folder / "img0.txt").read_text() == "my own caption\n"  # an existing caption is kept
    assert next(r for r in good if r["path"].endswith("img0.png"))["sidecar"] == "kept existing"
    for i in range(1, 5):
        row = next(r for r in good if r["path"].endswith(f"img{i}.png"))
        assert (folder / f"img{i}.txt").read_text() == row["prompt"] + "\n"
    assert _run(folder, "--sidecar", "--overwrite", "--out", folder / "again.jsonl") == 0
    assert (folder / "img0.txt").read_text() != "my own caption\n"


def test_results_do_not_depend_on_order_or_batch_size(folder, tmp_path_factory):
    listing = tmp_path_factory.mktemp("list") / "list.txt"
    listing.write_text("\n".join(str(folder / f"img{i}.png") for i in (4, 2, 0, 3, 1)) + "\n")
    assert _run(folder, "--batch-size", "4") == 0
    assert _run(listing, "--batch-size", "1") == 0
    by_folder = {r["path"]: r["prompt"] for r in _lines(folder / "prompts.jsonl") if "prompt" in r}
    by_list = {r["path"]: r["prompt"] for r in _lines(listing.parent / "prompts.jsonl")}
    assert by_list == by_folder


def test_a_rerun_resumes_and_repairs_a_partial_last_line(folder):
    out = folder / "prompts.jsonl"
    assert _run(folder, "--batch-size", "3") == 0
    rows = _lines(out)
    kept = [r for r in rows if not r["path"].endswith(("img3.png", "img4.png"))]
    out.write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"path": "/half/a line')  # killed mid-write
    assert main(["batch", str(folder), "--model", "toy", "--steps", "20", "--prompt-len", "4", "--threads", "1", "--quiet",
                 "--json"]) == 0
    again = _lines(out)
    assert [r["path"] for r in again[: len(kept)]] == [r["path"] for r in kept]
    prompts = sorted(r["path"] for r in again if "prompt" in r)
    assert prompts == sorted(r["path"] for r in rows if "prompt" in r)  # each prompt once, nothing lost
    assert [r["path"] for r in again[len(kept):] if "error" in r] == [str(folder / "broken.png")]  # tried again
    redone = {r["path"]: r["prompt"] for r in again[len(kept):] if "prompt" in r}
    assert redone == {r["path"]: r["prompt"] for r in rows if r["path"] in redone}  # same seeds, same prompts


@pytest.mark.parametrize("case, message", [
    ("empty", "has no files"),
    ("no images", "has 1 files but no images"),
    ("missing", "neither a folder nor a .txt list"),
    ("other run", "holds prompts from another run (lr 0.1 there, 0.2 here)"),
    ("not a journal", "is not JSON"),
    ("a JSON list line", "line 2 is JSON but not an image's line"),
    ("a JSON number line", "line 1 is JSON but not an image's line"),
    ("unwritable out", "cannot be written"),
])
def test_bad_input_is_one_clear_error_and_loses_nothing(folder, tmp_path_factory, capsys, case, message):
    other = tmp_path_factory.mktemp("other")
    args = [folder]
    if case == "empty":
        args = [other]
    elif case == "no images":
        (other / "notes.md").write_text("hi")
        args = [other]
    elif case == "missing":
        args = [other / "nope"]
    elif case == "other run":
        assert _run(folder) == 0
        capsys.readouterr()
        args = [folder, "--lr", "0.2"]
    elif case == "not a journal":
        (folder / "prompts.jsonl").write_text("hello\n")
    elif case == "a JSON list line":  # valid JSON, hand-edited, but no journal line
        (folder / "prompts.jsonl").write_text('{"path": "/x.png", "error": "unreadable"}\n[1, 2]\n')
    elif case == "a JSON number line":
        (folder / "prompts.jsonl").write_text("123\n")
    elif case == "unwritable out":
        (other / "a file").write_text("")  # a folder path through a file: unwritable even for root
        args = [folder, "--out", other / "a file" / "p.jsonl"]
    before = (folder / "prompts.jsonl").read_bytes() if (folder / "prompts.jsonl").exists() else None
    assert _run(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    after = (folder / "prompts.jsonl").read_bytes() if (folder / "prompts.jsonl").exists() else None
    assert after == before  # nothing already written is lost or changed


@pytest.mark.parametrize("case", ["same name, two formats", "an image named like its list"])
def test_captions_that_would_land_on_another_file_are_refused_before_any_work(folder, tmp_path_factory, capsys, case):
    """``a.png`` and ``a.jpg`` would share ``a.txt``; ``list.png`` in ``list.txt`` would be captioned over the list."""
    if case == "same name, two formats":
        tw.render(SCENES[0], 48, 0).save(folder / "img1.jpg")
        source, clash = folder, ["img1.png", "img1.jpg", "img1.txt"]
    else:
        other = tmp_path_factory.mktemp("listed")
        tw.render(SCENES[0], 48, 0).save(other / "list.png")
        source = other / "list.txt"
        source.write_text(f"list.png\n{folder / 'img2.png'}\n")
        clash = ["list.png", "the list", "list.txt"]
    where = source if source.is_dir() else source.parent
    before = {p: p.read_bytes() for p in where.iterdir()}
    assert _run(source, "--sidecar", "--overwrite") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(name in err[0] for name in clash) and "rename" in err[0], err
    assert {p: p.read_bytes() for p in where.iterdir()} == before  # no caption, no journal, the list intact


def test_symlinks_keep_the_listed_path_and_get_their_own_caption(tmp_path, monkeypatch):
    """Two links to one picture are two images captioned beside themselves; a path listed twice is one image."""
    (tmp_path / "real").mkdir()
    (tmp_path / "data").mkdir()
    tw.render(SCENES[1], 48, 0).save(tmp_path / "real" / "t.png")
    for name in ("a.png", "b.png"):
        (tmp_path / "data" / name).symlink_to(Path("..") / "real" / "t.png")
    monkeypatch.chdir(tmp_path)
    assert _run("data", "--sidecar") == 0  # a relative folder: the lines still hold absolute paths
    rows = _lines(tmp_path / "data" / "prompts.jsonl")
    data = Path(os.getcwd()) / "data"
    assert [r["path"] for r in rows] == [str(data / "a.png"), str(data / "b.png")]
    assert all((data / f"{n}.txt").is_file() for n in "ab") and not (tmp_path / "real" / "t.txt").exists()
    (tmp_path / "list.txt").write_text("data/a.png\ndata/a.png\n./data/../data/b.png\n")
    assert _run("list.txt") == 0
    assert [(r["path"], r["prompt"]) for r in _lines(tmp_path / "prompts.jsonl")] == [(r["path"], r["prompt"])
                                                                                       for r in rows]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux lets a file name be any bytes")
def test_a_file_name_that_is_not_utf8_is_processed_like_the_others(folder, capsys):
    """``b'\\xff.png'`` gets its prompt and caption; the journal stays UTF-8 and a re-run finds the line again."""
    name = b"\xff.png"
    with open(os.path.join(os.fsencode(folder), name), "wb") as f:
        tw.render(SCENES[2], 48, 0).save(f, format="PNG")
    assert main(["batch", str(folder), "--sidecar", "--model", "toy", "--steps", "20", "--prompt-len", "4", "--threads", "1"]) == 0
    assert "6 prompts written, 1 errors" in capsys.readouterr().out  # broken.png is the error
    rows = [json.loads(line) for line in (folder / "prompts.jsonl").read_bytes().decode("utf-8").splitlines()]
    odd = next(r for r in rows if os.fsencode(Path(r["path"]).name) == name)
    assert odd["prompt"] and odd["seed"] == seed_for(odd["path"], 0)
    assert os.path.isfile(os.path.join(os.fsencode(folder), b"\xff.txt"))
    listing = folder / "list.txt"
    listing.write_bytes(b"\xff.png\nimg1.png\n")
    assert _run(listing, "--out", folder / "again.jsonl") == 0
    capsys.readouterr()
    names = {Path(odd["path"]).name, "img1.png"}
    assert {r["path"]: r["prompt"] for r in _lines(folder / "again.jsonl")} == {
        r["path"]: r["prompt"] for r in rows if Path(r["path"]).name in names}
    assert main(["batch", str(folder), "--model", "toy", "--steps", "20", "--prompt-len", "4", "--threads", "1", "--quiet",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 6  # every prompt line found again (broken.png retried)


def test_a_rerun_retries_images_that_failed(folder, capsys):
    """An error line is not "done": after the file is fixed, the next run gives it its prompt and says so."""
    assert _run(folder) == 0
    capsys.readouterr()
    tw.render(SCENES[0], 48, 0).save(folder / "broken.png")  # the user fixes the file
    assert main(["batch", str(folder), "--model", "toy", "--steps", "20", "--prompt-len", "4", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "1/1 images (1 of them retried after an earlier error)" in captured.err
    assert "1 prompts written, 0 errors, 5 already done, 1 retried after an earlier error" in captured.out
    fixed = [r for r in _lines(folder / "prompts.jsonl") if r["path"].endswith("broken.png")]
    assert "error" in fixed[0] and fixed[1]["prompt"] and len(fixed) == 2
    assert _run(folder) == 0 and len(_lines(folder / "prompts.jsonl")) == 7  # now done for good


def test_batch_images_are_decoded_at_the_models_size(clip, tmp_path):
    """A 1600x1200 photo is held at 2x-4x the model's input (the toy's 32 px), as the core reads files."""
    tw.render(SCENES[0], 64, 0).resize((1600, 1200)).save(tmp_path / "big.png")
    images, ready, errors = read_images(clip, [Job(str(tmp_path / "big.png"), 0)])
    assert len(ready) == 1 and not errors
    assert 2 * clip.image_size <= min(images[0].size) <= 4 * clip.image_size


def test_ray_actors_get_absolute_model_paths_and_resolve_the_device_themselves(tmp_path, monkeypatch):
    """What the driver sends each actor works from any folder: a relative model folder becomes absolute, a
    relative weights file too, and the device stays as asked ("auto") for the actor's own machine to resolve."""
    from pez_nodes.cli.dispatch import build_parser
    from pez_nodes.core.clip.loading import TOY_DIR, resolve_device

    shutil.copytree(TOY_DIR, tmp_path / "models" / "mine")
    tw.render(SCENES[0], 48, 0).save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["batch", ".", "--model", "models/mine", "--device", "auto"])
    load = load_args(args)
    assert load["source"] == str(Path.cwd() / "models" / "mine") and load["device"] == "auto"
    weights = load_args(argparse.Namespace(**{**vars(args), "model": "ViT-B-32", "pretrained": "w/m.safetensors"}))
    assert weights["pretrained"] == str(Path.cwd() / "w" / "m.safetensors")
    monkeypatch.chdir(tmp_path / "models")  # an actor's folder is not the driver's
    actor = _Inverter(load, {"steps": 5, "prompt_len": 2}, "models/mine", threads=1)
    assert actor.model.device == resolve_device("auto")  # resolved here, by the actor
    row = json.loads(actor({"path": [pack(str(tmp_path / "a.png"))], "seed": [1]})["row"][0])
    assert row["path"] == str(tmp_path / "a.png") and row["prompt"]
    assert [gpus_per_actor(d, g) for d, g in [("auto", 0), ("auto", 2), ("cpu", 2), ("cuda", 1)]] == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="has no GPU"):
        gpus_per_actor("cuda", 0)
    with pytest.raises(ValueError, match="each worker is given its own"):
        load_args(argparse.Namespace(**{**vars(args), "device": "cuda:1"}))


@pytest.mark.parametrize("ray", [[], ["--ray", "auto"]])
def test_a_device_pez_cannot_run_on_is_refused_before_any_work(folder, capsys, ray):
    """With ``--ray`` only the name's spelling is checked on the driver (each worker resolves the device on its
    own machine), so the same one-line error comes before a journal is written or a cluster starts."""
    assert _run(folder, "--device", "meta", *ray) == 2
    assert capsys.readouterr().err.splitlines() == ["pez: error: device 'meta' cannot run PEZ; use auto, cpu, cuda, "
                                                    "cuda:N or mps."]
    assert not (folder / "prompts.jsonl").exists()
