"""The node pack inside a real ComfyUI server, driven over its HTTP + websocket API.

Needs ``COMFYUI_DIR`` (a ComfyUI checkout whose Python can import torch; see README "Testing with
ComfyUI"); skipped with the reason printed when it is unset. ``COMFYUI_PYTHON`` picks the interpreter
(default: ``$COMFYUI_DIR/venv/bin/python`` if present, else this one; see ``tests/harness/comfyui_server.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.workflow_kinds import offline_api
from pez_nodes.clients import comfyui as client
from pez_nodes.core import TOY_DIR

ROOT = Path(__file__).resolve().parents[1]
COMFY = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFY, reason="COMFYUI_DIR is not set: no real ComfyUI to host the nodes")
NODE_IDS = ("PEZLoadCLIP", "PEZCLIPFromWorkflow", "PEZInvert", "PEZDistill", "PEZPromptConcat", "PEZOptions",
            "PEZImageSimilarity", "PEZLoadLM", "PEZPromptList", "PEZPickByGeneration")
EXAMPLES = [ROOT / "workflows" / "pez_example.png", ROOT / "workflows" / "pez_example_2.png"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from harness.comfyui_server import comfy_python, running_comfyui

    comfy = Path(COMFY)
    subprocess.run([comfy_python(comfy), str(ROOT / "install.py")], check=True, timeout=900)  # also proves install.py
    models = comfy / "models" / "open_clip"  # a local-dir folder and a bare file (+ sidecar config) to list
    models.mkdir(parents=True, exist_ok=True)
    folder, bare = models / f"pez_test_{os.getpid()}", models / f"pez_test_{os.getpid()}.safetensors"
    shutil.copytree(TOY_DIR, folder)
    shutil.copy(TOY_DIR / "open_clip_model.safetensors", bare)
    shutil.copy(TOY_DIR / "open_clip_config.json", bare.with_suffix(".json"))
    try:
        with running_comfyui(comfy, tmp_path_factory.mktemp("comfy") / "server.log") as proc:
            base = client.Comfy(proc.address, timeout=300)
            base.log, base.module, base.process = proc.log, proc.link.name, proc
            base.model_choices = (f"{folder.name}/", bare.name)
            yield base
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        bare.unlink(missing_ok=True)
        bare.with_suffix(".json").unlink(missing_ok=True)


def _get(srv, path):
    with urllib.request.urlopen(srv.base + path, timeout=30) as r:
        return json.loads(r.read())


def _run(srv, workflow: dict, images=()) -> tuple[str, str, dict, list]:
    """Queue ``workflow``; return (prompt_id, status, history entry, websocket messages seen)."""
    workflow = json.loads(json.dumps(workflow))
    loaders = sorted((k for k, v in workflow.items() if v["class_type"] == "LoadImage"), key=int)
    for node_id, path in zip(loaders, images):
        workflow[node_id]["inputs"]["image"] = srv.upload_image(path)
    ws = srv.websocket()
    seen = []
    try:
        prompt_id = srv.queue(workflow)
        while True:
            opcode, payload = ws.receive()
            if opcode != 1:
                seen.append(("binary", payload[:4]))
                continue
            msg = json.loads(payload)
            seen.append((msg["type"], msg.get("data", {})))
            data = msg.get("data", {})
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if msg["type"] in ("execution_error", "execution_interrupted"):
                status = msg["type"]
                break
            if msg["type"] == "executing" and data.get("node") is None:
                status = "success"
                break
    finally:
        ws.close()
    return prompt_id, status, srv.history(prompt_id), seen


def test_object_info_lists_every_node_with_inputs_and_tooltips(server):
    info = _get(server, "/object_info")
    for node_id in NODE_IDS:
        assert node_id in info, f"{node_id} missing; see {server.log}"
        spec = info[node_id]
        inputs = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        assert inputs and all(opts[1].get("tooltip") for opts in inputs.values() if len(opts) > 1), node_id
    model = info["PEZLoadCLIP"]["input"]["required"]["model"]
    options = model[1]["options"] if len(model) > 1 and "options" in model[1] else model[0]
    assert options[0] == "toy (bundled, offline)"
    assert info["PEZInvert"]["output"] == ["STRING", "FLOAT"]
    assert info["PEZInvert"]["input"]["required"]["seed"][1]["control_after_generate"] is True
    assert info["PEZOptions"]["output"] == ["PEZ_OPTIONS"] and "lr" in info["PEZOptions"]["input"]["optional"]
    for node_id in ("PEZInvert", "PEZDistill", "PEZPromptConcat"):
        optional = info[node_id]["input"]["optional"]
        assert optional["options"][0] == "PEZ_OPTIONS" and not {"lr", "restarts", "fluency"} & set(optional)


def test_loader_lists_and_loads_models_from_the_open_clip_folder(server):
    options = _get(server, "/object_info/PEZLoadCLIP")["PEZLoadCLIP"]["input"]["required"]["model"]
    options = options[1]["options"] if len(options) > 1 and "options" in options[1] else options[0]
    wf = json.loads((ROOT / "workflows" / "api" / "pez_distill_toy.json").read_text())
    wf["2"]["inputs"].update(steps=20)
    for choice in server.model_choices:
        assert choice in options
        wf["1"]["inputs"].update(model=choice, vocabulary="full")  # the shipped workflow: the toy's declared words
        _, status, entry, _ = _run(server, wf)
        assert status == "success", entry.get("status")


OFFLINE = sorted(p for p in (ROOT / "workflows" / "api").glob("*.json") if offline_api(json.loads(p.read_text())))


def test_there_are_offline_workflows():
    assert len(OFFLINE) >= 4


@pytest.mark.parametrize("path", OFFLINE, ids=lambda p: p.stem)
def test_offline_workflow_runs_to_success_with_a_prompt(server, path):
    workflow = json.loads(path.read_text())
    _, status, entry, seen = _run(server, workflow, EXAMPLES)
    assert status == "success", entry.get("status")
    assert entry["status"]["status_str"] == "success"
    prompts = client.prompts_from_history(workflow, entry)
    assert prompts and all(p.strip() for p in prompts.values())
    assert any(kind == "progress" for kind, _ in seen)  # ComfyUI's progress bar moved
    assert ("binary", b"\x00\x00\x00\x03") in seen  # the live best prompt was shown on the node


def test_template_browser_lists_ui_workflows_only(server):
    templates = _get(server, "/workflow_templates")[server.module]
    assert "pez_invert_toy" in templates and not any(t.endswith(".api") for t in templates)
    ui = _get(server, f"/api/workflow_templates/{server.module}/pez_invert_toy.json")
    assert "nodes" in ui and "links" in ui


def _distill(text: str, prompt_len: int = 4, steps: int = 30, seed: int = 0) -> dict:
    wf = json.loads((ROOT / "workflows" / "api" / "pez_distill_toy.json").read_text())
    wf["2"]["inputs"].update(text=text, prompt_len=prompt_len, steps=steps, seed=seed)
    return wf


def test_bad_inputs_come_back_as_node_errors_and_the_server_stays_up(server):
    _, status, entry, seen = _run(server, _distill("   "))
    assert status == "execution_error"
    error = [d for k, d in seen if k == "execution_error"][0]
    assert error["node_type"] == "PEZDistill" and "empty" in error["exception_message"]
    with pytest.raises(client.ClientError, match="prompt_len"):
        server.queue(_distill("a red circle", prompt_len=0))
    assert _get(server, "/system_stats")  # still serving
    _, status, _, _ = _run(server, _distill("a red circle"))
    assert status == "success"


def test_interrupt_stops_the_node_within_a_step(server):
    wf = _distill("a small white ring on brick", steps=100000, seed=5)
    ws = server.websocket()
    try:
        prompt_id = server.queue(wf)
        progressed = 0
        while progressed < 3:  # wait until the optimisation is really running
            opcode, payload = ws.receive()
            if opcode == 1 and json.loads(payload)["type"] == "progress":
                progressed += 1
        asked = time.monotonic()
        server.interrupt()
        while True:
            opcode, payload = ws.receive()
            if opcode == 1:
                msg = json.loads(payload)
                if msg["type"] in ("execution_interrupted", "execution_success", "execution_error"):
                    break
        took = time.monotonic() - asked
    finally:
        ws.close()
    assert msg["type"] == "execution_interrupted" and msg["data"]["prompt_id"] == prompt_id
    assert took < 5.0, took
    assert _get(server, "/system_stats")


def test_same_inputs_and_seed_hit_the_cache_and_a_new_seed_reruns(server):
    wf = _distill("a large green cross on sand", seed=11)
    _, status, first, _ = _run(server, wf)
    assert status == "success"
    _, status, second, seen = _run(server, wf)
    cached = [d for k, d in seen if k == "execution_cached"]
    assert status == "success" and cached and "2" in cached[0]["nodes"]
    assert not any(k == "executing" and d.get("node") == "2" for k, d in seen)
    assert client.prompts_from_history(wf, second) == client.prompts_from_history(wf, first)
    _, status, _, seen = _run(server, _distill("a large green cross on sand", seed=12))
    assert status == "success" and any(k == "executing" and d.get("node") == "2" for k, d in seen)


def test_headless_client_prints_the_learned_prompt(server):
    out = subprocess.run([sys.executable, "-m", "pez_nodes.client", str(ROOT / "workflows" / "api" / "pez_invert_toy.json"),
                          "--image", str(EXAMPLES[1]), "--server", f"127.0.0.1:{server.port}", "--set", "3.steps=40",
                          "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "success" and data["prompts"]["3"].strip()
    bad = subprocess.run([sys.executable, "-m", "pez_nodes.client", str(ROOT / "workflows" / "pez_invert_toy.json"),
                          "--server", f"127.0.0.1:{server.port}"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "UI format" in bad.stderr


def test_headless_client_inverts_a_folder_one_image_at_a_time(server, tmp_path):
    for i, path in enumerate(EXAMPLES):
        shutil.copy(path, tmp_path / f"pic{i}.png")
    (tmp_path / "notes.md").write_text("not an image")
    out = subprocess.run([sys.executable, "-m", "pez_nodes.client", str(ROOT / "workflows" / "api" / "pez_invert_toy.json"),
                          "--folder", str(tmp_path), "--server", f"127.0.0.1:{server.port}", "--set", "3.steps=25",
                          "--json", "--quiet"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["pic0.png", "pic1.png"]
    assert all(r["status"] == "success" and r["prompts"]["3"].strip() for r in rows)


def test_upload_never_replaces_another_file_and_reuses_its_own(server, tmp_path):
    """The client's upload name is the image's stem + a hash of its bytes, sent without ``overwrite``: a file
    already there under that name (another user's) stays; the same bytes again come back as the same file."""
    inputs = Path(COMFY) / "input"
    content = f"pez host test {os.getpid()} {time.time()}".encode()
    mine = tmp_path / "photo.png"
    mine.write_bytes(content)
    name = client.upload_name(mine, content)
    squatter = inputs / name
    squatter.write_bytes(b"someone else's file")
    try:
        first = server.upload_image(mine)
        assert first != name and squatter.read_bytes() == b"someone else's file"
        assert (inputs / first).read_bytes() == content
        assert server.upload_image(mine) == first  # ComfyUI sees the same bytes there: no copy, no overwrite
        assert sorted(p.name for p in inputs.glob(f"{Path(name).stem}*")) == sorted([name, first])
    finally:
        for path in inputs.glob(f"{Path(name).stem}*"):
            path.unlink()


class _Payload:
    """Unpickled, it creates ``marker``: what a malicious checkpoint could do with any code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("inputs", [{"custom_model": "{folder}"}, {"custom_model": "ViT-B-32", "pretrained": "{bin}"}],
                         ids=["folder with a .bin", "pretrained .bin"])
def test_a_workflow_cannot_make_the_server_unpickle(server, tmp_path, inputs):
    """PEZ Load CLIP's ``custom_model``/``pretrained`` come from unauthenticated API calls: a pickled checkpoint is
    refused by the node (one line), an ``allow_pickle`` input smuggled into the prompt changes nothing."""
    import torch

    marker, folder = tmp_path / "unpickled-code-ran", tmp_path / "model"
    folder.mkdir()
    shutil.copy(TOY_DIR / "open_clip_config.json", folder)
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, folder / "open_clip_pytorch_model.bin")
    wf = _distill("a red circle", steps=5)
    wf["1"]["inputs"].update({k: v.format(folder=folder, bin=folder / "open_clip_pytorch_model.bin")
                              for k, v in inputs.items()}, allow_pickle=True)
    _, status, _, seen = _run(server, wf)
    assert status == "execution_error"
    error = [d for k, d in seen if k == "execution_error"][0]
    message = error["exception_message"].strip()
    assert error["node_type"] == "PEZLoadCLIP" and "pickle" in message and "\n" not in message, message
    assert not marker.exists()


def _words(prompts: dict, node: str) -> set[str]:
    return set(prompts[node].replace("\\", "").replace("(", " ").replace(")", " ").split())


def test_one_pez_options_node_changes_both_pez_nodes_it_feeds(server):
    """pez_concat_toy's PEZ Options feeds both PEZ Invert nodes: every word of their prompts put on its blocklist,
    neither prompt has one of them any more (read from /history)."""
    workflow = json.loads((ROOT / "workflows" / "api" / "pez_concat_toy.json").read_text())
    inverts = [k for k, v in workflow.items() if v["class_type"] == "PEZInvert"]
    options = workflow[inverts[0]]["inputs"]["options"][0]
    assert [workflow[k]["inputs"]["options"] for k in inverts] == [[options, 0]] * 2
    for node in inverts + [k for k, v in workflow.items() if v["class_type"] == "PEZPromptConcat"]:
        workflow[node]["inputs"]["steps"] = 40
    _, status, entry, _ = _run(server, workflow, EXAMPLES)
    assert status == "success", entry.get("status")
    before = client.prompts_from_history(workflow, entry)
    blocked = _words(before, inverts[0]) | _words(before, inverts[1])
    workflow[options]["inputs"]["blocklist"] = ", ".join(sorted(blocked))
    _, status, entry, _ = _run(server, workflow, EXAMPLES)
    assert status == "success", entry.get("status")
    after = client.prompts_from_history(workflow, entry)
    for node in inverts:
        assert after[node] != before[node] and not _words(after, node) & blocked, (before[node], after[node])


def test_an_api_workflow_still_sending_a_moved_setting_is_refused_by_name(server):
    """ComfyUI would drop PEZ Distill's old ``lr`` without a word and run with the default: the node refuses the
    workflow in one line naming the setting and PEZ Options."""
    wf = _distill("a red circle", steps=5)
    wf["2"]["inputs"].update(lr=0.05, restarts=2)
    _, status, _, seen = _run(server, wf)
    assert status == "execution_error"
    error = _error_of(seen)
    assert error["node_type"] == "PEZDistill" and "\n" not in error["exception_message"].strip()
    assert "PEZ Distill Prompt no longer takes lr, restarts: these settings moved to a PEZ Options node" in \
        error["exception_message"]


def _error_of(seen) -> dict:
    return [d for k, d in seen if k == "execution_error"][0]


def test_per_image_mode_returns_one_prompt_per_image(server):
    workflow = json.loads((ROOT / "workflows" / "api" / "pez_invert_each_toy.json").read_text())
    workflow["5"]["inputs"]["steps"] = 30
    _, status, entry, _ = _run(server, workflow, EXAMPLES)
    assert status == "success", entry.get("status")
    prompts = client.all_prompts_from_history(workflow, entry)["5"]
    assert len(prompts) == 2 and all(p.strip() for p in prompts)
