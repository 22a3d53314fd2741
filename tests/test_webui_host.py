"""The pack as a webui extension, on real Forge and AUTOMATIC1111 started headless (CPU, no checkpoint,
nothing downloaded).

Set ``FORGE_DIR`` / ``A1111_DIR`` to a webui laid out by ``bash ../shared/webui/prepare.sh forge|a1111 DEST``
(its first printed line); each is skipped, with the reason printed, when unset. The repository is linked into
the webui's ``extensions/`` for the run.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pez_nodes import toyworld as tw

ROOT = Path(__file__).resolve().parents[1]
FLAGS = {  # ../shared/webui/prepare.sh's headless CPU start, API only
    "forge": ["--always-cpu"],
    "a1111": ["--skip-torch-cuda-test", "--skip-load-model-at-start", "--use-cpu", "all", "--no-half",
              "--precision", "full"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base: str, path: str, body: dict | None = None, timeout: float = 300) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module", params=["forge", "a1111"])
def webui(request, tmp_path_factory):
    """A webui serving its API with this repository as an extension: (base URL, its log)."""
    where = os.environ.get(f"{request.param.upper()}_DIR")
    if not where:
        pytest.skip(f"{request.param.upper()}_DIR is not set: no {request.param} to host the extension "
                    f"(bash ../shared/webui/prepare.sh {request.param} DEST lays one out)")
    folder = Path(where)
    link = folder / "extensions" / "pez-under-test"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(ROOT, target_is_directory=True)
    port = _free_port()
    log = tmp_path_factory.mktemp(request.param) / "webui.log"
    cmd = [str(folder / "venv" / "bin" / "python"), "launch.py", "--skip-prepare-environment", *FLAGS[request.param],
           "--nowebui", "--api", "--skip-version-check", "--no-download-sd-model", "--server-name", "127.0.0.1",
           "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if _call(base, "/sdapi/v1/scripts", timeout=5)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(1)
        else:
            pytest.fail(f"{request.param} did not serve its API within 180 s:\n" + log.read_text()[-3000:])
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        link.unlink()


def _png(scene: tw.Scene) -> str:
    buffer = io.BytesIO()
    tw.render(scene, 64, 0).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_extension_loads_and_lists_its_txt2img_script(webui):
    base, log = webui
    status, scripts = _call(base, "/sdapi/v1/scripts")
    assert status == 200 and "pez: prompt from image" in scripts["txt2img"], (scripts, log.read_text()[-2000:])


def test_the_routes_learn_prompts_on_the_toy_model(webui):
    base, _ = webui
    status, out = _call(base, "/pez/v1/distill", {"text": "a large red circle on grass", "prompt_len": 4, "steps": 40})
    assert status == 200 and out["prompt"] and out["similarity"] > 0.5 and out["model"] == "toy", out
    status, out = _call(base, "/pez/v1/invert", {"images": [_png(tw.Scene("star", "blue", "small", "night"))],
                                                  "prompt_len": 6, "steps": 60, "seed": 1})
    assert status == 200 and out["prompt"] and out["steps"] == 60, out
    status, out = _call(base, "/pez/v1/concat", {"texts": ["a red circle", "on grass"], "prompt_len": 4, "steps": 20})
    assert status == 200 and out["prompt"], out


def test_progress_moves_and_interrupt_stops_within_a_step(webui):
    base, _ = webui
    result = {}
    body = {"images": [_png(tw.Scene("ring", "white", "small", "sand"))], "steps": 100000, "patience": 0}
    worker = threading.Thread(target=lambda: result.update(out=_call(base, "/pez/v1/invert", body)))
    worker.start()
    seen = None
    deadline = time.time() + 120
    while time.time() < deadline:
        _, progress = _call(base, "/sdapi/v1/progress?skip_current_image=true")
        state = progress.get("state", {})
        if state.get("sampling_step", 0) > 5 and "PEZ" in (progress.get("textinfo") or ""):
            seen = state
            break
        time.sleep(0.2)
    assert seen, "the webui's progress never showed PEZ's steps"
    started = time.time()
    _call(base, "/sdapi/v1/interrupt", {})
    worker.join(timeout=60)
    status, out = result["out"]
    assert status == 200 and out["stop_reason"] == "interrupted" and out["steps"] < 100000, out
    assert time.time() - started < 30


@pytest.mark.parametrize("path, body, message", [
    ("/pez/v1/invert", {"images": []}, "images is missing or empty"),
    ("/pez/v1/invert", {"images": ["aGVsbG8="]}, "base64 but not an image"),
    ("/pez/v1/distill", {"text": "  "}, "text is missing or empty"),
    ("/pez/v1/distill", {"text": "a cat", "prompt_len": 500}, "prompt_len=500 is out of range"),
    ("/pez/v1/distill", {"text": "a cat", "colour": "red"}, "unknown field(s) ['colour']"),
    ("/pez/v1/concat", {"texts": ["only one"]}, "two or more"),
    ("/pez/v1/distill", {"text": "a cat", "model": "not-a-clip"}, "not-a-clip"),
])
def test_bad_input_is_a_400_with_one_line_and_the_webui_keeps_serving(webui, path, body, message):
    base, _ = webui
    status, out = _call(base, path, body)
    assert status == 400 and message in out["error"] and "\n" not in out["error"], out
    assert _call(base, "/sdapi/v1/scripts")[0] == 200
