"""``pez batch --ray`` on a real local Ray cluster (2 CPUs): same lines as a local run, and an actor killed mid-run
loses nothing and duplicates nothing. Skipped (reason printed) without ``ray``: pip install 'ray[data]'."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[ray]'")

from pez_nodes import toyworld as tw  # noqa: E402

RAY = Path(sys.executable).with_name("ray")
N_IMAGES = 8


@pytest.fixture(scope="module")
def env():
    """What the job's processes see: this checkout on PYTHONPATH (Ray's workers too), one thread each."""
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1",
            "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture
def folder(tmp_path):
    rng = random.Random(1)
    for i in range(N_IMAGES):
        tw.render(tw.random_scene(rng), 48, i).save(tmp_path / f"img{i}.png")
    return tmp_path


def _batch(source, address, env, *extra, cwd=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pez_nodes.cli", "batch", str(source), "--ray", address, "--workers", "2",
           "--batch-size", "1", "--model", "toy", "--prompt-len", "4", "--threads", "1", "--quiet", "--json", *extra]
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_ray_run_matches_a_local_run_and_survives_a_killed_actor(env, folder, tmp_path):
    """``--ray auto`` starts a local cluster (this machine's 2 CPUs); one actor is SIGKILLed after the first
    line is written. Ray Data restarts it and re-runs its batch; every image still ends with exactly one line."""
    run = _batch(folder, "auto", env, "--steps", "150", "--sidecar")
    journal = folder / "prompts.jsonl"
    killed = _kill_one_actor_once_work_is_done(journal, run)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-3000:]
    assert killed, "no actor was alive to kill"
    rows = _lines(journal)
    assert sorted(Path(r["path"]).name for r in rows) == sorted(f"img{i}.png" for i in range(N_IMAGES))  # once each
    counts = json.loads(next((line for line in out.splitlines() if line.startswith('{"images"')), "{}") or "{}")
    assert counts["written"] == N_IMAGES and counts["errors"] == 0, (counts, out[-2000:])
    local = tmp_path / "local.jsonl"
    done = subprocess.run([sys.executable, "-m", "pez_nodes.cli", "batch", str(folder), "--out", str(local),
                           "--batch-size", "3", "--steps", "150", "--model", "toy", "--prompt-len", "4", "--threads", "1", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {r["path"]: r["prompt"] for r in rows} == {r["path"]: r["prompt"] for r in _lines(local)}
    assert all((folder / f"img{i}.txt").is_file() for i in range(N_IMAGES))


def test_ctrl_c_stops_after_the_batch_in_flight_with_the_lines_a_local_run_gives(env, folder, tmp_path):
    """Ctrl-C (SIGINT to the driver) stops a Ray run once the batch in flight is recorded: exit 130, no traceback,
    finished lines kept; a local re-run does the rest. The run starts in another folder with a relative --model;
    the list starts with a symlink and (on Linux) a file name that is not UTF-8, and names an image twice. Every
    line is the line a local run gives, one per listed image."""
    from pez_nodes.core.clip.loading import TOY_DIR

    shutil.copytree(TOY_DIR, tmp_path / "mine")
    (folder / "link.png").symlink_to(folder / "img0.png")
    first = [os.fsencode(folder / "link.png")]
    if sys.platform.startswith("linux"):
        first.append(os.path.join(os.fsencode(folder), b"\xff.png"))
        shutil.copyfile(folder / "img3.png", first[-1])
    listed = first + [os.fsencode(folder / f"img{i}.png") for i in (*range(N_IMAGES), 1)]
    (tmp_path / "list.txt").write_bytes(b"".join(p + b"\n" for p in listed))
    journal = tmp_path / "prompts.jsonl"
    settings = ["--steps", "100", "--model", "mine", "--prompt-len", "4", "--threads", "1", "--quiet"]
    run = _batch("list.txt", "auto", env, *settings, cwd=tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None and len(_lines(journal)) < len(first):
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)  # the first listed images are done (2 actors took them first)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 130 and "Traceback" not in err and "stopping after this batch" in err, err[-3000:]
    by_ray = _lines(journal)
    assert len(first) <= len(by_ray) < N_IMAGES and len({r["path"] for r in by_ray}) == len(by_ray)
    assert {os.fsencode(r["path"]) for r in by_ray} >= set(first)  # the link itself, the odd name as its bytes
    for out_file in ("prompts.jsonl", "local.jsonl"):  # resume locally; and a run that is local from the start
        cmd = [sys.executable, "-m", "pez_nodes.cli", "batch", "list.txt", "--out", out_file, *settings]
        done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    rows = _lines(journal)
    assert rows[: len(by_ray)] == by_ray and len(rows) == len({r["path"] for r in rows}) == len(set(listed))
    assert {r["path"]: r["prompt"] for r in rows} == {r["path"]: r["prompt"] for r in _lines(tmp_path / "local.jsonl")}


def _actor_pids() -> list[int]:
    """Processes of the job's actors: Ray titles them ``ray::MapWorker(MapBatches(_Inverter))``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and "_Inverter" in title:
            pids.append(int(entry.name))
    return pids


def _kill_one_actor_once_work_is_done(journal: Path, run: subprocess.Popen) -> bool:
    """SIGKILL one of the job's actor processes after the first line is written, while work remains."""
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None:
        pids = _actor_pids()
        if pids and 1 <= len(_lines(journal)) <= N_IMAGES - 3:
            os.kill(pids[0], signal.SIGKILL)
            return True
        time.sleep(0.1)
    return False


def test_without_ray_the_flag_says_how_to_install_it(folder, capsys):
    code = subprocess.run([sys.executable, "-c", (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ray': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from pez_nodes.cli import main\n"
        f"sys.exit(main(['batch', {str(folder)!r}, '--ray', 'auto', '--model', 'toy', '--steps', '2', '--quiet']))\n")],
        capture_output=True, text=True, timeout=300)
    assert code.returncode == 2 and "pip install 'pez-hard-prompts[ray]'" in code.stderr, code.stderr
