"""Captioning a dataset: per-image prompts in one batch (``invert_each``) and ``pez batch`` (journal, resume, sidecars)."""

from __future__ import annotations

import json
import os
import random

import pytest

from pez_nodes import toyworld as tw
from pez_nodes.batch.jobs import seed_for
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
    return main(["batch", *map(str, argv), "--steps", "20", "--prompt-len", "4", "--threads", "1", "--quiet"])


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
    assert main(["batch", str(folder), "--steps", "20", "--prompt-len", "4", "--threads", "1", "--quiet",
                 "--json"]) == 0
    again = _lines(out)
    assert [r["path"] for r in again[: len(kept)]] == [r["path"] for r in kept]
    assert sorted(r["path"] for r in again) == sorted(r["path"] for r in rows)  # each image once, nothing lost
    redone = {r["path"]: r["prompt"] for r in again[len(kept):]}
    assert redone == {r["path"]: r["prompt"] for r in rows if r["path"] in redone}  # same seeds, same prompts


@pytest.mark.parametrize("case, message", [
    ("empty", "has no files"),
    ("no images", "has 1 files but no images"),
    ("missing", "neither a folder nor a .txt list"),
    ("other run", "holds prompts from another run (lr 0.1 there, 0.2 here)"),
    ("not a journal", "is not JSON"),
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
    elif case == "unwritable out":
        (other / "a file").write_text("")  # a folder path through a file: unwritable even for root
        args = [folder, "--out", other / "a file" / "p.jsonl"]
    before = (folder / "prompts.jsonl").read_bytes() if (folder / "prompts.jsonl").exists() else None
    assert _run(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    after = (folder / "prompts.jsonl").read_bytes() if (folder / "prompts.jsonl").exists() else None
    assert after == before  # nothing already written is lost or changed
