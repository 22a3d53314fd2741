"""The pack as a webui extension, on real Forge and AUTOMATIC1111 started headless (CPU, no checkpoint,
nothing downloaded), gradio page on.

Set ``FORGE_DIR`` / ``A1111_DIR`` to a webui laid out by ``bash ../shared/webui/prepare.sh forge|a1111 DEST``
(its first printed line); each is skipped, with the reason printed, when unset. The repository is linked into
the webui's ``extensions/`` for the run. The PEZ tab is driven in headless Chromium (as the ComfyUI frontend
tests; skipped with the reason when no browser is found).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from pez_nodes import toyworld as tw
from pez_nodes.browser import chromium_page, why_no_browser
from pez_nodes.core import TOY_DIR
from webui_server import NO_CHECKPOINT, ROOT, call, running_webui


@pytest.fixture(scope="module", params=["forge", "a1111"])
def webui(request, tmp_path_factory):
    """A webui serving its API with this repository as an extension, no checkpoint: (base URL, its log)."""
    where = os.environ.get(f"{request.param.upper()}_DIR")
    if not where:
        pytest.skip(f"{request.param.upper()}_DIR is not set: no {request.param} to host the extension "
                    f"(bash ../shared/webui/prepare.sh {request.param} DEST lays one out)")
    folder = Path(where)
    log = tmp_path_factory.mktemp(request.param) / "webui.log"
    models = folder / "models" / "open_clip" / f"pez_test_{os.getpid()}"  # a CLIP the tab and routes list
    shutil.copytree(TOY_DIR, models, dirs_exist_ok=True)
    try:
        with running_webui(request.param, folder, log, NO_CHECKPOINT[request.param]) as base:
            yield base, log
    finally:
        shutil.rmtree(models, ignore_errors=True)


def _png(scene: tw.Scene) -> str:
    buffer = io.BytesIO()
    tw.render(scene, 64, 0).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_extension_loads_and_lists_its_txt2img_script(webui):
    base, log = webui
    status, scripts = call(base, "/sdapi/v1/scripts")
    assert status == 200 and "pez: prompt from image" in scripts["txt2img"], (scripts, log.read_text()[-2000:])


def test_the_routes_learn_prompts_on_the_toy_model(webui):
    base, _ = webui
    status, out = call(base, "/pez/v1/distill", {"text": "a large red circle on grass", "prompt_len": 4, "steps": 40})
    assert status == 200 and out["prompt"] and out["similarity"] > 0.5 and out["model"] == "toy", out
    assert out["device"] == "cpu", out  # "auto": the webui's device, the CPU for these webuis
    status, out = call(base, "/pez/v1/invert", {"images": [_png(tw.Scene("star", "blue", "small", "night"))],
                                                  "prompt_len": 6, "steps": 60, "seed": 1})
    assert status == 200 and out["prompt"] and out["steps"] == 60, out
    status, out = call(base, "/pez/v1/concat", {"texts": ["a red circle", "on grass"], "prompt_len": 4, "steps": 20})
    assert status == 200 and out["prompt"], out


def test_progress_moves_and_interrupt_stops_within_a_step(webui):
    base, _ = webui
    result = {}
    body = {"images": [_png(tw.Scene("ring", "white", "small", "sand"))], "steps": 100000, "patience": 0}
    worker = threading.Thread(target=lambda: result.update(out=call(base, "/pez/v1/invert", body)))
    worker.start()
    seen = None
    deadline = time.time() + 120
    while time.time() < deadline:
        _, progress = call(base, "/sdapi/v1/progress?skip_current_image=true")
        state = progress.get("state", {})
        if state.get("sampling_step", 0) > 5 and "PEZ" in (progress.get("textinfo") or ""):
            seen = state
            break
        time.sleep(0.2)
    assert seen, "the webui's progress never showed PEZ's steps"
    started = time.time()
    call(base, "/sdapi/v1/interrupt", {})
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
    ("/pez/v1/distill", {"text": "a cat", "model": "webui"}, "models/Stable-diffusion"),  # no checkpoint here
    ("/pez/v1/distill", {"text": "a cat", "device": "gpu"}, "use device \"auto\" (the webui's) or \"cpu\""),
])
def test_bad_input_is_a_400_with_one_line_and_the_webui_keeps_serving(webui, path, body, message):
    base, _ = webui
    status, out = call(base, path, body)
    assert status == 400 and message in out["error"] and "\n" not in out["error"], out
    assert call(base, "/sdapi/v1/scripts")[0] == 200


def test_a_clip_in_models_open_clip_is_listed_and_used(webui):
    base, _ = webui
    status, out = call(base, "/pez/v1/distill", {"text": "a red circle", "model": f"pez_test_{os.getpid()}/",
                                                   "prompt_len": 3, "steps": 10})
    assert status == 200 and out["prompt"], out


def test_install_py_runs_under_the_webuis_own_installer_and_changes_nothing(webui, request):
    """``launch_utils.run_extension_installer`` (what the webui runs for every extension at start): our
    install.py finds everything installed and leaves the webui's packages (torch, open_clip 2.20.0) as they are."""
    folder = Path(os.environ[f"{request.node.callspec.params['webui'].upper()}_DIR"])
    python = str(folder / "venv" / "bin" / "python")
    freeze = lambda: subprocess.run([python, "-m", "pip", "freeze"], capture_output=True, text=True).stdout  # noqa: E731
    before = freeze()
    run = subprocess.run([python, "-c", "import sys; sys.argv = ['launch.py']; from modules import launch_utils; "
                                        f"launch_utils.run_extension_installer({str(ROOT)!r})"],
                         cwd=folder, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "[pez] all requirements are installed" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    assert freeze() == before


def _client(base, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pez_nodes.webui.client", "--webui", base, *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_headless_client_learns_through_the_webui(webui, tmp_path):
    base, _ = webui
    picture = tmp_path / "star.png"
    tw.render(tw.Scene("star", "yellow", "large", "night"), 64, 0).save(picture)
    run = _client(base, "invert", str(picture), "--set", "steps=40", "--set", "prompt_len=4")
    assert run.returncode == 0 and run.stdout.strip(), run.stderr
    run = _client(base, "distill", "a large red circle on grass", "--set", "steps=20", "--json")
    assert run.returncode == 0 and json.loads(run.stdout)["steps"] == 20, run.stderr
    run = _client(base, "distill", "a cat", "--set", "prompt_len=500")
    assert run.returncode == 2 and "prompt_len=500 is out of range" in run.stderr and run.stdout == ""
    run = _client(base, "invert", str(tmp_path / "missing.png"))
    assert run.returncode == 2 and "does not exist" in run.stderr
    run = _client(base, "invert", str(picture), "--set", "steps=100000", "--set", "patience=0", "--timeout", "5")
    assert run.returncode == 1 and run.stdout.strip() and "interrupted" in run.stderr, run.stderr


def test_headless_client_without_a_webui_is_one_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = _client(f"http://127.0.0.1:{port}", "distill", "a cat", timeout=60)
    assert run.returncode == 2 and "no webui at" in run.stderr and len(run.stderr.strip().splitlines()) == 1


@pytest.fixture
def page(webui):
    if why_no_browser():
        pytest.skip(f"no browser for the PEZ tab: {why_no_browser()}")
    with chromium_page(webui[0] + "/", {"width": 1400, "height": 1000}) as tab:
        # the top tab buttons (Gradio 4 gives them role=tab, Gradio 3.41 plain buttons)
        tab.locator("#tabs button").filter(has_text=re.compile(r"^\s*PEZ\s*$")).first.click(timeout=120_000)
        yield tab


def _wait_value(page, selector: str, predicate, timeout_s: float = 120, seen: list | None = None) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = page.locator(f"{selector} textarea").input_value()
        if seen is not None and value and (not seen or seen[-1] != value):
            seen.append(value)
        if predicate(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"{selector} never showed what was awaited; last: {value!r}")


def test_pez_tab_learns_a_prompt_live_and_sends_it_to_txt2img(page):
    """The PEZ tab: an image uploaded, steps typed, Learn — the live best prompt moves, the prompt and its
    similarity appear, and "Send to txt2img" puts the prompt in txt2img's prompt box."""
    page.locator("#pez_images input[type=file]").set_input_files(str(ROOT / "workflows" / "pez_example.png"))
    page.locator("#pez_steps input").fill("60")
    page.locator("#pez_prompt_len input[type=number]").fill("6")
    page.locator("#pez_learn_invert").click()
    prompt = _wait_value(page, "#pez_prompt", bool)
    info = page.locator("#pez_info textarea").input_value()
    assert info.startswith("similarity ") and "60 steps" in info and "completed" in info, info
    assert " · toy on cpu" in info, info  # the Device dropdown's "auto": the webui's device, the CPU here
    assert len(prompt.split()) >= 1
    page.locator("#tab_pez #txt2img_tab").click()
    page.wait_for_timeout(1000)
    assert page.locator("#txt2img_prompt textarea").input_value() == prompt


def test_pez_tab_shows_the_live_prompt_and_the_webuis_progress_bar_and_interrupt_stops_it(page):
    """Distill with 100,000 steps: the live box moves, the webui's own progress bar shows PEZ's steps,
    Interrupt stops it within seconds with the best prompt so far, and the bar goes away."""
    page.locator("#pez_tab_distill-button, button:has-text('Distill')").first.click()
    page.locator("#pez_text textarea").fill("a large red circle on green grass")
    page.locator("#pez_steps input").fill("100000")
    page.locator("#pez_learn_distill").click()
    live: list = []
    _wait_value(page, "#pez_live", lambda v: v.startswith("PEZ ") and len(live) >= 3, seen=live)
    # the webui's own progress bar (javascript/pez.js → /internal/progress) shows PEZ's step and best prompt
    page.wait_for_function("() => { const bar = document.querySelector('#tab_pez .progressDiv .progress');"
                           " return bar && /PEZ \\d+\\/100000/.test(bar.textContent); }", timeout=60_000)
    started = time.time()
    page.locator("#pez_interrupt").click()
    info = _wait_value(page, "#pez_info", lambda v: v.startswith("similarity"), timeout_s=60)
    assert "interrupted" in info and time.time() - started < 30, info
    page.wait_for_function("() => !document.querySelector('#tab_pez .progressDiv')", timeout=30_000)  # bar gone
    assert page.locator("#pez_prompt textarea").input_value()  # the best prompt so far


def test_pez_tab_bad_input_is_one_line_in_the_result_box(page):
    page.locator("#pez_learn_invert").click()  # no image uploaded
    info = _wait_value(page, "#pez_info", lambda v: v.startswith("Error"), timeout_s=60)
    assert info == "Error: images is missing or empty; give a list of base64 images (or server paths)."
