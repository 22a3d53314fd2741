"""What a request from the network may ask of the webui's PEZ, without a webui (``pez_nodes/webui/request.py``,
``routes.py``, ``tab.py``): the real parsing, the real queue lock semantics and real runs on the toy CLIP.
The same rules are checked against real Forge and AUTOMATIC1111 in ``tests/test_webui_host.py``."""

from __future__ import annotations

import base64
import io
import shutil
import threading
import time

import pytest
import torch
from PIL import Image

from pez_nodes import toyworld as tw
from pez_nodes.webui import checkpoint_clip, limits, routes, tab
from pez_nodes.webui.request import allowed_models, image_bytes, parse


class State:
    """The fields of the webuis' ``shared.state`` that PEZ reads and writes (no webui here)."""

    def __init__(self):
        self.interrupted, self.job, self.textinfo, self.sampling_step, self.sampling_steps = False, "", "", 0, 0
        self.interrupts = 0

    def begin(self, job="(unknown)"):
        self.interrupted, self.job = False, job

    def end(self):
        self.job = ""

    def interrupt(self):
        self.interrupted, self.interrupts = True, self.interrupts + 1


@pytest.fixture
def host():
    """``routes.HOST`` as a webui configures it (its own state, queue lock and limits), put back afterwards."""
    saved = vars(routes.HOST).copy()
    state = State()
    routes.configure(state, None, None, threading.Lock(), limits.Limits)
    yield state
    vars(routes.HOST).update(saved)


def _png(side: int = 64) -> str:
    buffer = io.BytesIO()
    tw.render(tw.Scene("star", "blue", "small", "night"), side, 0).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_path_is_never_read_and_the_error_says_nothing_about_it(tmp_path):
    picture = tmp_path / "secret.png"
    tw.render(tw.Scene("star", "blue", "small", "night"), 64, 0).save(picture)
    for value in (str(picture), str(tmp_path), str(tmp_path / "nothing.png"), "abcd"):
        with pytest.raises(ValueError) as e:
            image_bytes(value, 0, limits.Limits())
        message = str(e.value)
        assert str(tmp_path) not in message and "exist" not in message and "directory" not in message, message


def test_line_wrapped_base64_data_urls_and_the_pixel_limit():
    png = _png()
    wrapped = "\n".join(png[i:i + 60] for i in range(0, len(png), 60))
    assert image_bytes(wrapped, 0, limits.Limits()) == base64.b64decode(png)
    assert image_bytes("data:image/png;base64," + png, 0, limits.Limits()) == base64.b64decode(png)
    buffer = io.BytesIO()
    Image.new("L", (3000, 2000), 0).save(buffer, format="PNG")
    with pytest.raises(ValueError, match=r"images\[2\] is 3000x2000 \(6 megapixels\), more than this webui takes \(5\)"):
        image_bytes(base64.b64encode(buffer.getvalue()).decode(), 2, limits.Limits(max_megapixels=5))


def test_only_listed_clips_unless_the_owner_allows_any(tmp_path):
    folder = tmp_path / "open_clip"
    (folder / "mine").mkdir(parents=True)
    (folder / "mine" / "open_clip_config.json").write_text("{}")
    strict, free = limits.Limits(), limits.Limits(allow_any_model=True)
    assert "mine/" in allowed_models(folder)
    assert parse("distill", {"text": "a", "model": "mine/"}, strict, folder).model["model"] == "mine/"
    for model in ("ViT-B-32", "hf-hub:org/repo", "/etc", "../open_clip/mine/", str(folder / "mine")):
        with pytest.raises(ValueError, match="is not one of the CLIPs this webui offers"):
            parse("distill", {"text": "a", "model": model}, strict, folder)
        assert parse("distill", {"text": "a", "model": model}, free, folder).model["model"] == model
    with pytest.raises(ValueError, match="pretrained is taken only"):
        parse("distill", {"text": "a", "model": "toy", "pretrained": "openai"}, strict, folder)
    with pytest.raises(ValueError, match="is not in this webui's models/clip_vision"):
        parse("invert", {"images": [_png()], "model": "webui", "clip_vision": "../x.safetensors"}, strict, folder,
              tmp_path / "clip_vision")


@pytest.mark.parametrize("body, message", [
    ({"text": "a", "steps": 3001}, r"steps is 3001, more than this webui allows \(3000\)"),
    ({"text": "a", "restarts": 17}, r"restarts is 17, more than this webui allows \(16\)"),
    ({"text": "a", "compile": True}, "compile is not taken from a request"),
    ({"text": "a", "compile_step": "on"}, "compile_step is not taken from a request"),
    ({"text": "a", "blocklist": 5}, "blocklist=5 must be a string or a list of strings"),
    ({"text": "a", "bank": 7}, "bank=7 must be a string or a list of strings"),
    ({"text": "a", "allowlist": {"a": 1}}, "allowlist=.* must be a string or a list of strings"),
    ({"text": "a", "lr": True}, "lr=True must be a finite number"),
    ({"text": "a", "model": 5}, "model must be a string"),
    ({"text": "a", "template": "x {} " * 5000}, "template is longer than this webui allows"),
    ({"text": "a", "model": "webui"}, "not running inside a webui"),
    # method guided: its LM only from the list (never a path), its fields bounded, the core's refusals as they are
    ({"text": "a", "method": "guided", "lm": "/tmp/x"},
     r"^lm '/tmp/x' is not one of the language models this webui offers \('toy_lm_small', 'toy_lm_large'\); "
     r"choose one of them, or put a transformers folder .* in the webui's models/LLM and refresh\.$"),
    ({"text": "a", "method": "guided", "lm": "../LLM/x/"}, r"lm '\.\./LLM/x/' is not one of the language models"),
    ({"text": "a", "method": "guided", "lm": "gpt2"}, r"lm 'gpt2' is not one of the language models"),
    ({"text": "a", "lm": "/etc"}, "lm '/etc' is not one of the language models"),  # checked whatever the method
    ({"text": "a", "method": "guided", "lm": 5}, "lm must be a string"),
    ({"text": "a", "method": "guided", "beams": 33}, r"beams is 33, more than this webui allows \(32\)"),
    ({"text": "a", "method": "guided", "beams": 0}, "beams=0 is out of range"),
    ({"text": "a", "method": "guided", "candidates": 65}, r"candidates is 65, more than this webui allows \(64\)"),
    ({"text": "a", "method": "guided", "lm_weight": 10.5}, r"lm_weight=10.5 is more than this webui allows \(10\)"),
    ({"text": "a", "method": "guided", "lm_weight": float("inf")}, "lm_weight=inf must be a finite number >= 0"),
    ({"text": "a", "method": "guided", "lm_weight": -1}, "lm_weight=-1 must be a finite number >= 0"),
    ({"text": "a", "method": "guided", "instruction": "x" * 501}, r"instruction has 501 characters, more than this "
                                                                     r"webui takes \(500\)"),
    ({"text": "a", "method": "guided", "start_text": "x" * 501}, "start_text has 501 characters"),
    ({"text": "a", "method": "guided", "fluency": 0.1}, "guided decoding takes no gradient"),
    ({"text": "a", "method": "guided", "template": "a photo of {}"},
     "method guided builds a free prompt and takes no template"),
])
def test_bad_fields_are_one_line(host, body, message):
    with pytest.raises(ValueError, match=message) as e:
        routes.run("distill", body)
    assert "\n" not in str(e.value)


def test_guided_is_accepted_with_a_listed_lm_and_needs_one_for_another_clip(tmp_path):
    folder, lm_folder = tmp_path / "open_clip", tmp_path / "LLM"
    (folder / "mine").mkdir(parents=True)
    (folder / "mine" / "open_clip_config.json").write_text("{}")
    (lm_folder / "writer").mkdir(parents=True)
    (lm_folder / "writer" / "config.json").write_text("{}")
    strict = limits.Limits()
    guided = {"text": "a", "method": "guided", "beams": 32, "candidates": 64, "lm_weight": 10, "instruction": "x" * 500}
    request = parse("distill", guided, strict, folder, None, lm_folder)
    assert (request.lm, request.config.method, request.config.beams) == ("toy_lm_small", "guided", 32)  # toy: its LM
    for name in ("toy_lm_large", "writer/"):
        assert parse("distill", {**guided, "lm": name, "model": "mine/"}, strict, folder, None, lm_folder).lm == name
    assert parse("distill", {"text": "a", "lm": "toy_lm_large"}, strict).lm is None  # used by guided only
    with pytest.raises(ValueError, match=r"^method guided needs a language model for this CLIP: set lm to one of "
                                         r"'toy_lm_small', 'toy_lm_large', 'writer/' \(") as e:
        parse("distill", {"text": "a", "method": "guided", "model": "mine/"}, strict, folder, None, lm_folder)
    assert "\n" not in str(e.value)
    for name in (str(lm_folder / "writer"), "writer", "writer/../writer/", str(tmp_path)):
        with pytest.raises(ValueError, match=r"is not one of the language models this webui offers \('toy_lm_small', "
                                             r"'toy_lm_large', 'writer/'\)"):
            parse("distill", {**guided, "lm": name}, limits.Limits(allow_any_model=True), folder, None, lm_folder)


class InterruptedAt(State):
    """A webui state whose Interrupt is pressed when the progress reaches ``step``."""

    def __init__(self, step):
        super().__init__()
        self.at = step

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "sampling_step" and value == getattr(self, "at", None):
            self.interrupt()


def test_a_guided_run_writes_the_prompt_with_its_lm_and_reports_its_similarity(host, toy, tmp_path):
    """A guided distill through the route: the toy CLIP's own toy_lm_small by default, the round-trip
    similarity, one progress step per decoded token, the LM cached beside the CLIP and freed with it; a folder
    of models/LLM is used by its listed name; the webui's Interrupt stops it within a token."""
    from pez_nodes.core.optim.text_encoder import encode_text
    from pez_nodes.lm.load import BUNDLED

    pytest.importorskip("transformers", reason="guided decoding's LM needs transformers: pip install -e '.[lm]'")
    routes.unload()
    state = host
    text = "a small blue circle on sand"
    body = {"text": text, "method": "guided", "prompt_len": 8, "beams": 3, "candidates": 4}
    out = routes.run("distill", body)
    assert (out["method"], out["lm"], out["model"]) == ("guided", "toy_lm_small", "toy"), out
    want = float(encode_text(toy, out["text"]) @ encode_text(toy, text))
    assert abs(out["similarity"] - want) < 1e-5 and {"circle", "sand"} <= set(out["text"].split()), (out, want)
    assert state.sampling_step == out["steps"] >= 1 and state.textinfo.startswith(f"PEZ {out['steps']}/")
    assert routes.unload() == {"unloaded": ["toy", "toy_lm_small"]} and not routes._lms

    routes.HOST.lm_folder = tmp_path / "LLM"
    shutil.copytree(BUNDLED["toy_lm_small"], tmp_path / "LLM" / "mine")
    again = routes.run("distill", {**body, "lm": "mine/"})
    assert (again["lm"], again["text"], again["similarity"]) == ("mine", out["text"], out["similarity"])  # same weights

    stopped = InterruptedAt(2)
    routes.HOST.state = stopped
    cut = routes.run("distill", {**body, "lm": "mine/"})
    assert cut["stop_reason"] == "interrupted" and cut["steps"] == 2 and cut["text"], cut
    assert routes.unload() == {"unloaded": ["toy", "mine"]}


def test_fluency_runs_with_the_toy_clips_own_lm(host, toy):
    """fluency > 0 in the webui: the toy CLIP's toy_lm_small scores the prompt (the result reports its perplexity)."""
    pytest.importorskip("transformers", reason="the fluency LM needs transformers: pip install -e '.[lm]'")
    routes.unload()
    out = routes.run("distill", {"text": "a small blue circle on sand", "prompt_len": 4, "steps": 3, "fluency": 0.05})
    assert out["text"] and out["stop_reason"] != "interrupted", out
    assert routes.unload() == {"unloaded": ["toy", "toy_lm_small"]}


def test_a_broken_lm_folder_is_named_by_its_choice_not_the_servers_path(host, tmp_path):
    pytest.importorskip("transformers", reason="guided decoding's LM needs transformers: pip install -e '.[lm]'")
    routes.HOST.lm_folder = tmp_path / "LLM"
    (tmp_path / "LLM" / "broken").mkdir(parents=True)
    (tmp_path / "LLM" / "broken" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="'broken/' has no tokenizer") as info:
        routes.run("distill", {"text": "a cat", "method": "guided", "lm": "broken/", "prompt_len": 4})
    assert str(tmp_path) not in str(info.value)


def test_images_are_decoded_inside_the_run_at_the_models_size(host, monkeypatch):
    """A queued request holds its compressed bytes; the run decodes them shrunk for the model (1600 px → short
    side 2x to 4x the toy's input), never at full size."""
    seen = []
    real = routes.decode_image
    monkeypatch.setattr(routes, "decode_image", lambda raw, label, side: seen.append(real(raw, label, side)) or seen[-1])
    out = routes.run("invert", {"images": [_png(1600)], "prompt_len": 2, "steps": 2})
    size = routes.load_model({"model": "toy"}).image_size
    assert out["steps"] == 2 and 2 * size <= min(seen[0].size) <= 4 * size, seen[0].size


def test_a_run_waits_for_the_webuis_queue_and_the_tabs_interrupt_reaches_only_its_own_run(host):
    """The queue lock held (a generation running): the tab's run waits; its Interrupt drops it without
    interrupting the generation; a run that started is interrupted by it; after it ends, it reaches nothing."""
    state = host
    routes.HOST.queue_lock.acquire()  # the webui is busy
    try:
        updates = []
        worker = threading.Thread(target=lambda: updates.extend(tab.learn("distill", {"text": "a red circle",
                                                                                     "steps": 50}, state, 0.05)))
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and tab.JOBS["last"].started.is_set() is False
        tab.interrupt(state)
        assert state.interrupts == 0  # the generation holding the queue was left alone
    finally:
        routes.HOST.queue_lock.release()
    worker.join(30)
    assert "waiting for the webui…" in [u[2] for u in updates]
    assert "interrupted" in updates[-1][2] and updates[-1][1] == "", updates[-1]

    updates.clear()
    worker = threading.Thread(target=lambda: updates.extend(tab.learn("distill", {"text": "a red circle",
                                                                                 "steps": 3000, "patience": 0},
                                                                     state, 0.05)))
    worker.start()
    deadline = time.time() + 30
    while time.time() < deadline and state.sampling_step < 3:
        time.sleep(0.05)
    tab.interrupt(state)
    worker.join(30)
    assert state.interrupts == 1 and "interrupted" in updates[-1][2] and updates[-1][1], updates[-1]
    tab.interrupt(state)  # the run has ended: a later job must not be interrupted
    assert state.interrupts == 1


def test_unload_releases_the_model_and_refuses_while_a_run_holds_it(host):
    routes.run("distill", {"text": "a cat", "prompt_len": 2, "steps": 2})
    assert routes._models and tab.free_model() == "freed toy"
    assert not routes._models and tab.free_model() == "no PEZ model was loaded"
    with routes.model_lock():
        with pytest.raises(RuntimeError, match="a PEZ run is using the model"):
            routes.unload()
        assert tab.free_model().startswith("Error: a PEZ run is using the model")


def test_the_checkpoint_cache_key_follows_the_weights_not_the_object():
    """AUTOMATIC1111 loads a same-architecture checkpoint into the same model object: the key must change."""
    model = torch.nn.Module()  # stands in for open_clip's text half: what identity reads is its token table
    model.token_embedding = torch.nn.Embedding(100, 32)

    class SdModel:  # AUTOMATIC1111's SD 2.x layout: cond_stage_model.wrapped.model, an open_clip text half
        def __init__(self):
            self.cond_stage_model = type("Wrapper", (), {"wrapped": type("Inner", (), {"model": model})()})()
            self.sd_checkpoint_info = type("Info", (), {"filename": "a.safetensors", "sha256": None})()

    sd = SdModel()
    first = checkpoint_clip.identity(sd)
    with torch.no_grad():
        model.token_embedding.weight.add_(1.0)  # checkpoint B's weights, same object
    assert checkpoint_clip.identity(sd) != first
    sd.sd_checkpoint_info.filename = "b.safetensors"
    assert checkpoint_clip.identity(sd)[1] == "b.safetensors"
