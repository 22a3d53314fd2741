"""The pack as a webui extension, on real Forge and AUTOMATIC1111 started headless (CPU, no checkpoint,
nothing downloaded), gradio page on.

Set ``FORGE_DIR`` / ``A1111_DIR`` to a webui with its own venv (docs/testing.md says how to set one up)
(its first printed line); each is skipped, with the reason printed, when unset. The repository is linked into
the webui's ``extensions/`` for the run. The PEZ tab is driven in headless Chromium (as the ComfyUI frontend
tests; skipped with the reason when no browser is found).
"""

from __future__ import annotations

import base64
import contextlib
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
from pathlib import Path

import pytest

from harness.chromium import chromium_page, why_no_browser
from pez_nodes import toyworld as tw
from pez_nodes.core import TOY_DIR
from webui_server import NO_CHECKPOINT, ROOT, call, running_webui


@pytest.fixture(scope="module", params=["forge", "a1111"])
def webui(request, tmp_path_factory):
    """A webui serving its API with this repository as an extension, no checkpoint: (base URL, its log)."""
    where = os.environ.get(f"{request.param.upper()}_DIR")
    if not where:
        pytest.skip(f"{request.param.upper()}_DIR is not set: no {request.param} to host the extension "
                    f"(docs/testing.md says how to set one up)")
    folder = Path(where)
    tmp = tmp_path_factory.mktemp(request.param)
    log = tmp / "webui.log"
    models = folder / "models" / "open_clip" / f"pez_test_{os.getpid()}"  # a CLIP the tab and routes list
    shutil.copytree(TOY_DIR, models, dirs_exist_ok=True)
    try:
        with running_webui(request.param, folder, log, NO_CHECKPOINT[request.param] + _settings(tmp),
                           probe=True) as base:
            _BASE[0], _NAMES[base] = base, request.param
            yield base, log
    finally:
        shutil.rmtree(models, ignore_errors=True)


def _folder(name: str) -> Path:
    where = os.environ.get(f"{name.upper()}_DIR")
    if not where:
        pytest.skip(f"{name.upper()}_DIR is not set: no {name} to host the extension "
                    f"(docs/testing.md says how to set one up)")
    return Path(where)


@pytest.mark.parametrize("name", ["forge", "a1111"])
def test_with_api_auth_the_routes_want_the_webuis_credentials(name, tmp_path):
    """Started with ``--api --api-auth``: every PEZ route is a 401 without the credentials (or with wrong ones),
    as the webui's own ``/sdapi/v1/*``, and works with them — the headless client too (``--auth``)."""
    with running_webui(name, _folder(name), tmp_path / "webui.log", NO_CHECKPOINT[name] + ["--nowebui"],
                       auth="pez:s3cret") as base:
        body = {"text": "a red circle", "prompt_len": 3, "steps": 5}
        for path in ("/pez/v1/distill", "/pez/v1/invert", "/pez/v1/concat", "/pez/v1/unload", "/sdapi/v1/scripts"):
            assert call(base, path, body if path != "/sdapi/v1/scripts" else None)[0] == 401, path
            assert call(base, path, body if path != "/sdapi/v1/scripts" else None, auth="pez:wrong")[0] == 401, path
        status, out = call(base, "/pez/v1/distill", body, auth="pez:s3cret")
        assert status == 200 and out["steps"] == 5, out
        run = _client(base, "distill", "a red circle", "--set", "steps=5", "--set", "prompt_len=3")
        assert run.returncode == 2 and "--auth USER:PASS" in run.stderr, run.stderr
        run = _client(base, "distill", "a red circle", "--set", "steps=5", "--set", "prompt_len=3", "--auth", "pez:s3cret")
        assert run.returncode == 0 and run.stdout.strip(), run.stderr


@pytest.mark.parametrize("name", ["forge", "a1111"])
def test_without_api_there_are_no_routes_and_the_tab_still_works(name, tmp_path):
    """Started without ``--api`` the webui serves no API, and PEZ adds none; the PEZ tab (in-process) learns."""
    with running_webui(name, _folder(name), tmp_path / "webui.log", NO_CHECKPOINT[name], api=False) as base:
        for path in ("/pez/v1/distill", "/pez/v1/unload"):
            assert call(base, path, {"text": "a cat"})[0] in (404, 405), path
        if why_no_browser():
            pytest.skip(f"no browser for the PEZ tab: {why_no_browser()}")
        with chromium_page(base + "/", {"width": 1400, "height": 1000}) as page:
            _open_pez_tab(page)
            page.locator("#pez_tab_distill-button, button:has-text('Distill')").first.click()
            page.locator("#pez_text textarea").fill("a large red circle on green grass")
            page.locator("#pez_steps input").fill("20")
            page.locator("#pez_learn_distill").click()
            assert _wait_value(page, "#pez_prompt", bool)
            assert "20 steps" in page.locator("#pez_info textarea").input_value()


def _settings(tmp: Path, **options) -> list[str]:
    """A settings file of the webui's own (``--ui-settings-file``), as the owner's Settings page writes it: the
    long-run tests need more than the default 3000 steps a request may ask for."""
    path = tmp / "config.json"
    path.write_text(json.dumps({"pez_max_steps": 100000, **options}))
    return ["--ui-settings-file", str(path)]


def _png(scene: tw.Scene) -> str:
    buffer = io.BytesIO()
    tw.render(scene, 64, 0).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_extension_loads_and_lists_its_txt2img_script(webui):
    """Listed for txt2img, its sliders starting at the invert defaults (as ``pez invert`` and PEZ Invert)."""
    from pez_nodes.core import task_defaults

    base, log = webui
    status, scripts = call(base, "/sdapi/v1/scripts")
    assert status == 200 and "pez: prompt from image" in scripts["txt2img"], (scripts, log.read_text()[-2000:])
    status, info = call(base, "/sdapi/v1/script-info")
    (mine,) = [s for s in info if s["name"] == "pez: prompt from image" and not s["is_img2img"]]
    values = {arg["label"].split(" (")[0]: arg["value"] for arg in mine["args"]}
    want = task_defaults("invert")
    assert (values["Prompt tokens"], values["PEZ steps"]) == (want["prompt_len"], want["steps"]), mine["args"]


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
    ("/pez/v1/distill", {"text": "a cat", "model": "not-a-clip"}, "is not one of the CLIPs this webui offers"),
    ("/pez/v1/distill", {"text": "a cat", "model": "webui"}, "models/Stable-diffusion"),  # no checkpoint here
    ("/pez/v1/distill", {"text": "a cat", "device": "gpu"}, "device 'gpu' cannot run PEZ; use auto, cpu"),
    # what a security review sent (issue 23): every one a 400 with one line, none a traceback or accepted
    ("/pez/v1/distill", {"text": "a cat", "blocklist": 5}, "blocklist=5 must be a string or a list of strings"),
    ("/pez/v1/distill", {"text": "a cat", "bank": 7}, "bank=7 must be a string or a list of strings"),
    ("/pez/v1/concat", {"texts": ["a", 5]}, "texts[1] is not a text"),
    ("/pez/v1/distill", {"text": "a cat", "allowlist": {"a": 1}}, "allowlist={'a': 1} must be a string"),
    ("/pez/v1/distill", {"text": "a cat", "lr": True}, "lr=True must be a finite number"),
    ("/pez/v1/distill", {"text": "a cat", "steps": 100001}, "steps is 100001, more than this webui allows (100000)"),
    ("/pez/v1/distill", {"text": "a cat", "restarts": 100000}, "restarts is 100000, more than this webui allows (16)"),
    ("/pez/v1/distill", {"text": "a cat", "top_k": 1000}, "top_k is 1000, more than this webui allows (16)"),
    ("/pez/v1/distill", {"text": "a cat", "compile": True}, "compile is not taken from a request"),
    ("/pez/v1/distill", {"text": "a cat", "model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"},
     "is not one of the CLIPs this webui offers"),
    ("/pez/v1/distill", {"text": "a cat", "model": "hf-hub:timm/ViT-B-16-SigLIP"}, "the webui's owner may allow"),
    ("/pez/v1/distill", {"text": "a cat", "model": "/etc"}, "is not one of the CLIPs"),
    ("/pez/v1/distill", {"text": "a cat", "pretrained": "/tmp/x.pt"}, "pretrained is taken only for a CLIP named"),
    ("/pez/v1/invert", {"images": ["x"], "model": "webui", "clip_vision": "../../../etc/x.safetensors"},
     "is not in this webui's models/clip_vision"),
    ("/pez/v1/invert", {"images": ["x"], "model": "webui", "clip_vision": "/etc/x.safetensors"},
     "is not in this webui's models/clip_vision"),
    ("/pez/v1/invert", {"images": ["x"] * 17}, "the number of images is 17, more than this webui allows (16)"),
    ("/pez/v1/distill", {"text": "a" * 20001}, "text has 20001 characters"),
    ("/pez/v1/distill", ["a", "list"], "the request body must be a JSON object"),
])
def test_bad_input_is_a_400_with_one_line_and_the_webui_keeps_serving(webui, path, body, message):
    base, _ = webui
    status, out = call(base, path, body)
    assert status == 400 and message in out["error"] and "\n" not in out["error"], out
    assert call(base, "/sdapi/v1/scripts")[0] == 200


@pytest.mark.parametrize("path", ["/etc/hostname", "/etc/", "/no/such/file.png", "models/open_clip", "README.md"])
def test_an_image_given_as_a_path_is_refused_without_a_word_about_the_file_system(webui, path):
    """Images are base64 only: whatever the path (a readable file, a folder, nothing), the same one line, which
    neither echoes the payload nor says whether it exists (before: the server read it, and told)."""
    base, _ = webui
    status, out = call(base, "/pez/v1/invert", {"images": [path]})
    assert status == 400 and "\n" not in out["error"], out
    assert path not in out["error"] and not any(w in out["error"] for w in ("exist", "directory", "No such")), out
    assert out["error"].startswith(("images[0] is not base64", "images[0] is base64 but not an image")), out


def test_line_wrapped_base64_and_data_urls_are_images(webui):
    base, _ = webui
    png = _png(tw.Scene("star", "blue", "small", "night"))
    wrapped = "\n".join(png[i:i + 76] for i in range(0, len(png), 76))  # as base64(1) and MIME write it
    status, out = call(base, "/pez/v1/invert", {"images": [wrapped, "data:image/png;base64," + png],
                                                  "prompt_len": 3, "steps": 5})
    assert status == 200 and out["steps"] == 5, out


def test_huge_images_and_bodies_are_refused_before_decoding_and_the_owner_setting_is_not_the_apis(webui, request):
    """A 60-megapixel PNG (a few hundred kB on the wire) is refused from its header; a body over the limit is
    refused while it is read; on AUTOMATIC1111 ``/sdapi/v1/options`` cannot lift PEZ's limits or allow other
    models (``restrict_api``, as the webui's own security settings; Forge's options route ignores
    ``restrict_api`` for every setting, its own included — the README says so)."""
    from PIL import Image

    base, _ = webui
    buffer = io.BytesIO()
    Image.new("L", (10000, 6000), 128).save(buffer, format="PNG")
    status, out = call(base, "/pez/v1/invert", {"images": [base64.b64encode(buffer.getvalue()).decode()]})
    assert status == 400 and "10000x6000 (60 megapixels), more than this webui takes (40)" in out["error"], out
    status, out = call(base, "/pez/v1/distill", raw=b'{"text": "' + b"a" * (65 * 2**20) + b'"}')
    assert status == 400 and "more than this webui takes (64 MB)" in out["error"], out
    status, out = call(base, "/pez/v1/distill", raw=b"{not json")
    assert status == 400 and "not JSON" in out["error"], out
    if request.node.callspec.params["webui"] == "forge":
        return
    call(base, "/sdapi/v1/options", {"pez_allow_any_model": True, "pez_max_restarts": 100000})
    status, out = call(base, "/pez/v1/distill", {"text": "a cat", "model": "ViT-B-32"})
    assert status == 400 and "not one of the CLIPs" in out["error"], out
    status, out = call(base, "/pez/v1/distill", {"text": "a cat", "restarts": 17})
    assert status == 400 and "more than this webui allows (16)" in out["error"], out


def test_pez_waits_for_the_webuis_queue_and_an_interrupt_reaches_only_its_own_job(webui):
    """The webui busy with a job of its own (the probe holds the webui's queue lock as a generation does): a
    PEZ request waits and leaves the job's state alone; the Interrupt sent for that job stops it, not the PEZ
    run that follows; then a job queued behind a long PEZ run waits for it, and PEZ's Interrupt stays PEZ's."""
    base, _ = webui
    with _in_thread(lambda: call(base, "/pez-probe/v1/busy", {"seconds": 30})) as busy:
        _wait_job(base, "probe-busy")
        with _in_thread(lambda: call(base, "/pez/v1/distill", {"text": "a red circle", "prompt_len": 3,
                                                                "steps": 30})) as pez:
            time.sleep(3)
            assert pez.is_alive() and busy.is_alive()  # PEZ waits behind the webui's job ...
            assert _progress(base)["state"]["job"] == "probe-busy"  # ... without touching its state
            call(base, "/sdapi/v1/interrupt", {})  # meant for the busy job
    assert busy.out == (200, {"interrupted": True, "jobs_seen": ["probe-busy"]}), busy.out
    status, result = pez.out
    assert status == 200 and result["stop_reason"] != "interrupted" and result["steps"] == 30, result

    with _in_thread(lambda: call(base, "/pez/v1/distill", {"text": "a red circle", "steps": 100000,
                                                            "patience": 0})) as pez:
        _wait_job(base, "pez")
        with _in_thread(lambda: call(base, "/pez-probe/v1/busy", {"seconds": 0.5})) as busy:
            time.sleep(3)
            assert busy.is_alive() and _progress(base)["state"]["job"] == "pez"  # the job waits behind PEZ
            call(base, "/sdapi/v1/interrupt", {})  # meant for PEZ
    assert pez.out[0] == 200 and pez.out[1]["stop_reason"] == "interrupted", pez.out
    assert busy.out == (200, {"interrupted": False, "jobs_seen": ["probe-busy"]}), busy.out


class _Call(threading.Thread):
    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.out = work, None

    def run(self):
        self.out = self.work()


@contextlib.contextmanager
def _in_thread(work):
    """``work()`` in a thread, joined on the way out; if the test fails meanwhile, the webui's current job is
    interrupted first, so a long run never outlives its test (and blocks the next ones)."""
    worker = _Call(work)
    worker.start()
    try:
        yield worker
    except BaseException:
        for _ in range(20):  # the job may still be queued: interrupt until the call returns
            if not worker.is_alive():
                break
            if _BASE[0]:
                call(_BASE[0], "/sdapi/v1/interrupt", {})
            worker.join(1)
        raise
    finally:
        worker.join(120)


_BASE: list = [None]  # the running webui's base URL, for _in_thread's clean-up
_NAMES: dict = {}  # base URL → forge / a1111


def _webui_name(base: str) -> str:
    return _NAMES[base]


def _progress(base) -> dict:
    return call(base, "/sdapi/v1/progress?skip_current_image=true")[1]


def _wait_job(base, job: str, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if _progress(base).get("state", {}).get("job") == job:
            return
        time.sleep(0.1)
    raise AssertionError(f"the webui never ran job {job!r}: {_progress(base)}")


def test_unload_frees_the_model_and_is_a_409_while_a_run_holds_it(webui):
    base, _ = webui
    assert call(base, "/pez/v1/distill", {"text": "a cat", "prompt_len": 2, "steps": 2})[0] == 200
    assert call(base, "/pez/v1/unload", {}) == (200, {"unloaded": ["toy"]})
    assert call(base, "/pez/v1/unload", {}) == (200, {"unloaded": []})
    with _in_thread(lambda: call(base, "/pez/v1/distill", {"text": "a red circle", "steps": 100000,
                                                            "patience": 0})) as pez:
        _wait_job(base, "pez")
        status, answer = call(base, "/pez/v1/unload", {})
        assert status == 409 and "a PEZ run is using the model" in answer["error"], answer
        call(base, "/sdapi/v1/interrupt", {})
    assert pez.out[0] == 200 and pez.out[1]["stop_reason"] == "interrupted", pez.out
    assert call(base, "/pez/v1/unload", {}) == (200, {"unloaded": ["toy"]})


def test_the_webuis_unload_checkpoint_also_releases_pezs_models(webui):
    """``/sdapi/v1/unload-checkpoint`` (the webui's "Unload checkpoint"): PEZ's cached CLIP goes with the webui's
    models (Forge: its memory manager's free_memory; AUTOMATIC1111: sd_models.unload_model_weights)."""
    base, log = webui
    started = log.read_text(errors="replace")
    assert "PEZ: its cached models are released when the webui frees memory (" in started, started[-3000:]
    assert "no hook found" not in started
    assert call(base, "/pez/v1/distill", {"text": "a cat", "prompt_len": 2, "steps": 2})[0] == 200
    assert call(base, "/sdapi/v1/unload-checkpoint", {})[0] == 200
    assert call(base, "/pez/v1/unload", {}) == (200, {"unloaded": []})  # already gone
    assert call(base, "/pez/v1/distill", {"text": "a cat", "prompt_len": 2, "steps": 2})[0] == 200  # loads again
    assert call(base, "/pez/v1/unload", {}) == (200, {"unloaded": ["toy"]})


def _write_big_clip(folder: Path) -> None:
    """A full-size ViT-B-32 (random weights, fp32 in memory: ~600 MB) as an open_clip folder."""
    import open_clip
    from safetensors.torch import save_file

    model = open_clip.create_model("ViT-B-32")
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    config = {"model_cfg": open_clip.get_model_config("ViT-B-32"),
              "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))


def test_unload_gives_the_memory_back(webui):
    """A full-size ViT-B-32 from models/open_clip loaded by a route, then ``/pez/v1/unload``: the webui's
    resident memory falls by most of the model (freed tensors and a trimmed heap; measured: see README)."""
    base, _ = webui
    name = f"pez_test_{os.getpid()}_big"
    folder = Path(os.environ[f"{_webui_name(base).upper()}_DIR"]) / "models" / "open_clip" / name
    try:
        _write_big_clip(folder)
        call(base, "/pez/v1/unload", {})
        before = call(base, "/pez-probe/v1/rss")[1]["rss_mb"]
        status, out = call(base, "/pez/v1/distill", {"text": "a cat", "model": f"{name}/", "prompt_len": 2,
                                                      "steps": 1, "restarts": 1}, timeout=600)
        assert status == 200, out
        loaded = call(base, "/pez-probe/v1/rss")[1]["rss_mb"]
        assert call(base, "/pez/v1/unload", {}) == (200, {"unloaded": [out["model"]]})
        after = call(base, "/pez-probe/v1/rss")[1]["rss_mb"]
        print(f"webui RSS: {before:.0f} MB → {loaded:.0f} MB with ViT-B-32 → {after:.0f} MB after unload")
        assert loaded - before > 400 and loaded - after > 400, (before, loaded, after)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_clip_in_models_open_clip_is_listed_and_used(webui):
    base, _ = webui
    status, out = call(base, "/pez/v1/distill", {"text": "a red circle", "model": f"pez_test_{os.getpid()}/",
                                                   "prompt_len": 3, "steps": 10})
    assert status == 200 and out["prompt"], out


def test_guided_decoding_through_the_route_with_the_toy_lm_and_a_listed_folder(webui):
    """``method="guided"`` on the toy CLIP: toy_lm_small writes the prompt (no ``lm`` named), the similarity is
    the round-trip one (the prompt's text re-encoded here); a folder of the webui's models/LLM is used by its
    listed name; an LM given as a path (even that folder's) is a 400 naming the choices; unload frees the LM."""
    from pez_nodes.core import load_clip
    from pez_nodes.core.optim.text_encoder import encode_text
    from pez_nodes.lm.load import BUNDLED
    from pez_nodes.webui.model_choices import quoted

    base, _ = webui
    text = "a small blue circle on sand"
    body = {"text": text, "method": "guided", "prompt_len": 8, "beams": 3, "candidates": 4}
    llm = Path(os.environ[f"{_webui_name(base).upper()}_DIR"]) / "models" / "LLM"
    made = not llm.exists()
    name = f"pez_test_{os.getpid()}_lm"
    try:
        status, out = call(base, "/pez/v1/distill", body)
        assert status == 200 and (out["method"], out["lm"], out["model"]) == ("guided", "toy_lm_small", "toy"), out
        toy = load_clip("toy")
        want = float(encode_text(toy, out["text"]) @ encode_text(toy, text))
        assert abs(out["similarity"] - want) < 1e-4 and out["steps"] >= 1 and out["prompt"], (out, want)
        shutil.copytree(BUNDLED["toy_lm_small"], llm / name)
        status, mine = call(base, "/pez/v1/distill", {**body, "lm": f"{name}/"})
        assert status == 200 and mine["lm"] == name and mine["text"] == out["text"], mine  # the same weights
        for lm in (str(llm / name), str(BUNDLED["toy_lm_small"]), f"../LLM/{name}/", "gpt2"):
            status, refused = call(base, "/pez/v1/distill", {**body, "lm": lm})
            assert status == 400 and "\n" not in refused["error"], refused
            assert refused["error"].startswith(f"lm {quoted(lm)} is not one of the language models this webui offers "
                                               f"('toy_lm_small', 'toy_lm_large', "), refused
            assert f"'{name}/'" in refused["error"], refused
        image = _png(tw.Scene("star", "blue", "small", "night"))
        status, refused = call(base, "/pez/v1/invert", {**body, "images": [image], "fluency": 0.1})
        assert status == 400 and "guided decoding takes no gradient" in refused["error"], refused
        assert call(base, "/pez/v1/unload", {}) == (200, {"unloaded": ["toy", name]})
    finally:
        shutil.rmtree(llm / name, ignore_errors=True)
        if made:
            shutil.rmtree(llm, ignore_errors=True)
        call(base, "/pez/v1/unload", {})


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
        _open_pez_tab(tab)
        yield tab


def _open_pez_tab(page) -> None:
    # the top tab buttons (Gradio 4 gives them role=tab, Gradio 3.41 plain buttons)
    page.locator("#tabs button").filter(has_text=re.compile(r"^\s*PEZ\s*$")).first.click(timeout=120_000)


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


def test_pez_tab_prompt_length_follows_the_task_default(page):
    """One prompt-length slider for the three tasks: it shows the task's default when its tab is chosen (Invert
    16, Distill 8, Concat 16 — as ``pez`` and the nodes), and a Distill learns that many tokens."""
    from pez_nodes.core import TASK_PROMPT_LEN, load_clip

    slider = page.locator("#pez_prompt_len input[type=number]")
    assert int(slider.input_value()) == TASK_PROMPT_LEN["invert"]
    for kind in ("distill", "concat", "invert", "distill"):
        page.locator(f"#pez_tab_{kind}-button, button:has-text('{kind.title()}')").first.click()
        page.wait_for_function(f"() => document.querySelector('#pez_prompt_len input[type=number]').value == "
                               f"'{TASK_PROMPT_LEN[kind]}'", timeout=30_000)
    page.locator("#pez_text textarea").fill("a large red circle on green grass in the morning light")
    page.locator("#pez_steps input").fill("5")
    page.locator("#pez_learn_distill").click()
    info = _wait_value(page, "#pez_info", lambda v: v.startswith(("similarity", "Error")), timeout_s=120)
    assert info.startswith("similarity"), info
    prompt = page.locator("#pez_prompt textarea").input_value()
    assert len(load_clip("toy").tokenize(prompt)) == TASK_PROMPT_LEN["distill"], prompt


def test_pez_tab_bad_input_is_one_line_in_the_result_box(page):
    page.locator("#pez_learn_invert").click()  # no image uploaded
    info = _wait_value(page, "#pez_info", lambda v: v.startswith("Error"), timeout_s=60)
    assert info == "Error: images is missing or empty; give a list of base64 images (PNG, JPEG or WebP bytes)."


def test_pez_tab_offers_guided_with_its_language_model(page):
    """Method guided chosen under "More settings": the LM dropdown and guided's settings appear (hidden for the
    other methods), and Learn writes the prompt with toy_lm_small."""
    page.locator("#pez_tab_distill-button, button:has-text('Distill')").first.click()
    page.locator("#pez_text textarea").fill("a small blue circle on sand")
    page.locator("#pez_prompt_len input[type=number]").fill("8")
    page.get_by_text("More settings").click()
    assert not page.locator("#pez_lm").is_visible()
    page.locator("#pez_method input").click()
    page.locator("#pez_method input").fill("guided")
    page.keyboard.press("Enter")
    page.locator("#pez_lm").wait_for(state="visible", timeout=30_000)
    assert page.locator("#pez_lm input").input_value() == "toy_lm_small"
    page.locator("#pez_beams input").fill("3")
    page.locator("#pez_candidates input").fill("4")
    page.locator("#pez_learn_distill").click()
    info = _wait_value(page, "#pez_info", lambda v: v.startswith(("similarity", "Error")), timeout_s=120)
    assert info.startswith("similarity") and "completed" in info, info
    prompt = page.locator("#pez_prompt textarea").input_value()
    assert {"circle", "sand"} <= set(re.findall(r"[a-z]+", prompt)), prompt  # the LM may end it "sand."
