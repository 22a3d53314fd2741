"""PEZ CLIP from Workflow inside a real ComfyUI server: ComfyUI's own loaders feed it, over the HTTP API.

The models are full-size random-weight files (``conftest.comfy_model_files``) that the server finds through
``--extra-model-paths-config``, as a user's ``models/text_encoders`` and ``models/clip_vision``. Needs
``COMFYUI_DIR``; skipped with the reason printed when it is unset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pez_nodes.clients import comfyui as client
from pez_nodes import toyworld as tw
from test_comfyui_host import _get, _run

COMFY = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFY, reason="COMFYUI_DIR is not set: no real ComfyUI to host the nodes")
PROJECTION = "clip_vision/vit_l_14.safetensors"
WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


@pytest.fixture(scope="module")
def server(tmp_path_factory, comfy_model_files):
    from harness.comfyui_server import running_comfyui

    d = comfy_model_files.dir
    names = _placeholders(tmp_path_factory.mktemp("named"))
    config = tmp_path_factory.mktemp("paths") / "extra_model_paths.yaml"
    config.write_text(f"pez_test:\n  base_path: {d}\n  text_encoders: .\n  clip_vision: .\n  open_clip: .\n"
                      f"pez_named:\n  base_path: {names}\n" + "".join(f"  {f}: {f}\n" for f in PAIR_FOLDERS))
    log = tmp_path_factory.mktemp("comfy") / "server.log"
    with running_comfyui(COMFY, log, extra_args=("--extra-model-paths-config", str(config))) as proc:
        srv = client.Comfy(proc.address, timeout=600)
        srv.log, srv.proc = proc.log, proc
        yield srv


# The files the prompt-pair workflows name, by the loader input that names them: (folder, input).
PAIR_FOLDERS = ("diffusion_models", "vae", "checkpoints", "text_encoders", "clip_vision", "LLM")
FILE_INPUTS = {"UNETLoader": [("diffusion_models", "unet_name")], "VAELoader": [("vae", "vae_name")],
               "CheckpointLoaderSimple": [("checkpoints", "ckpt_name")], "CLIPVisionLoader": [("clip_vision", "clip_name")],
               "DualCLIPLoader": [("text_encoders", "clip_name1"), ("text_encoders", "clip_name2")],
               "TripleCLIPLoader": [("text_encoders", f"clip_name{i}") for i in (1, 2, 3)], "PEZLoadLM": [("LLM", "model")]}


def _pair_workflows() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((WORKFLOWS / "api").glob("pez_prompt_pair_*.json"))}


def _placeholders(root: Path) -> Path:
    """Empty files (and an LM folder with a bare config.json) under the names the prompt-pair workflows use: enough
    for ComfyUI to validate them (a name must be in its model lists), not to load them."""
    for api in _pair_workflows().values():
        for node in api.values():
            for folder, name in FILE_INPUTS.get(node["class_type"], []):
                path = root / folder / node["inputs"][name]
                if folder == "LLM":
                    path.mkdir(parents=True, exist_ok=True)
                    (path / "config.json").write_text("{}")
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
    return root


def _graph(text_file: str, vision_file: str | None, projection: str = "none", invert: bool = False) -> dict:
    """CLIPLoader (+ CLIPVisionLoader) → PEZ CLIP from Workflow → PEZ Invert / Distill (API format)."""
    wf = {
        "1": {"class_type": "CLIPLoader", "inputs": {"clip_name": text_file, "type": "stable_diffusion"}},
        "3": {"class_type": "PEZCLIPFromWorkflow", "inputs": {"clip": ["1", 0], "text_projection": projection}},
    }
    if vision_file:
        wf["2"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": vision_file}}
        wf["3"]["inputs"]["clip_vision"] = ["2", 0]
    wf["6"] = {"class_type": "PEZOptions", "inputs": {"restarts": 1}}
    common = {"pez_clip": ["3", 0], "prompt_len": 3, "steps": 3, "seed": 0, "options": ["6", 0]}
    if invert:
        wf["4"] = {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}}
        wf["5"] = {"class_type": "PEZInvert", "inputs": {**common, "images": ["4", 0]}}
    else:
        wf["5"] = {"class_type": "PEZDistill", "inputs": {**common, "text": "a (red) fox in the snow"}}
    return wf


def _error(seen) -> dict:
    return [d for kind, d in seen if kind == "execution_error"][0]


def test_the_node_is_listed_with_the_projection_files_it_can_use(server):
    info = _get(server, "/object_info")["PEZCLIPFromWorkflow"]
    assert info["output"] == ["PEZ_CLIP"]
    projection = info["input"]["optional"]["text_projection"]
    options = projection[1]["options"] if "options" in projection[1] else projection[0]
    assert options[0] == "none" and PROJECTION in options


def test_a_missing_projection_and_a_mismatched_pair_are_node_errors_and_the_server_stays_up(server):
    _, status, _, seen = _run(server, _graph("clip_l_sd15.safetensors", "vit_l_14.safetensors"))
    assert status == "execution_error"
    error = _error(seen)
    assert error["node_type"] == "PEZCLIPFromWorkflow"
    assert "has no text_projection" in error["exception_message"] and "clip-vit-large-patch14" in error["exception_message"]

    _, status, _, seen = _run(server, _graph("vit_h_14.safetensors", "vit_l_14.safetensors"))
    assert status == "execution_error"
    error = _error(seen)
    assert error["node_type"] == "PEZCLIPFromWorkflow"
    assert "does not match" in error["exception_message"] and "CLIP-ViT-H-14-laion2B" in error["exception_message"]
    assert _get(server, "/system_stats")


def test_the_workflows_clip_inverts_an_image_and_distills_a_text(server, tmp_path):
    picture = tmp_path / "fox.png"
    tw.render(tw.all_scenes()[5], seed=1).save(picture)
    prompt_id, status, entry, _ = _run(server, _graph("clip_l_sd15.safetensors", "vit_l_14.safetensors", PROJECTION,
                                                      invert=True), images=[picture])
    assert status == "success", server.log
    assert entry["outputs"]["5"]["text"][0].strip()

    prompt_id, status, entry, _ = _run(server, _graph("clip_l_sd15.safetensors", None))  # text only: no vision
    assert status == "success", server.log
    shown = entry["outputs"]["5"]["text"][0]
    assert "clip_l has no text_projection" in shown  # the note is on the node


def test_shared_workflow_clip_workflows_use_only_known_nodes_and_inputs(server):
    """The shared SD 1.5 / SD 2.x / SDXL and Flux / SD3 prompt-pair workflows name only nodes and inputs this
    ComfyUI (+ PEZ) has.

    Their model files are not here, so they are not run: their structure is checked against ``/object_info``.
    """
    paths = sorted((WORKFLOWS / "api").glob("pez_workflow_clip_*.json")) + sorted((WORKFLOWS / "api").glob("pez_prompt_pair_*.json"))
    assert len(paths) == 5, paths
    info = _get(server, "/object_info")
    for path in paths:
        api = json.loads(path.read_text())
        for node_id, node in api.items():
            kind = node["class_type"]
            assert kind in info, f"{path.name} #{node_id}: {kind} is not a node of this ComfyUI"
            inputs = info[kind]["input"]
            known = {*inputs.get("required", {}), *inputs.get("optional", {})}
            unknown = set(node["inputs"]) - known
            assert not unknown, f"{path.name} #{node_id} ({kind}): unknown inputs {sorted(unknown)}"
            for name, value in node["inputs"].items():
                if isinstance(value, list):  # a link: [source node id, output slot]
                    source, slot = value
                    assert source in api, f"{path.name} #{node_id}.{name} links to missing node {source}"
                    assert 0 <= slot < len(info[api[source]["class_type"]]["output"])
        ui = json.loads((WORKFLOWS / path.name).read_text())
        assert sorted(n["type"] for n in ui["nodes"]) == sorted(n["class_type"] for n in api.values())


def test_image_similarity_judges_with_the_workflows_clip_vision(server, tmp_path):
    """The paper's metric inside a graph: two LoadImage batches and a CLIP Vision → mean cosine + per pair."""
    same, other = tmp_path / "a.png", tmp_path / "b.png"
    tw.render(tw.Scene("circle", "red", "large", "grass"), seed=1).save(same)
    tw.render(tw.Scene("star", "blue", "small", "night"), seed=2).save(other)
    wf = {"1": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}},
          "2": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}},
          "3": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "vit_l_14.safetensors"}},
          "4": {"class_type": "PEZImageSimilarity",
                "inputs": {"images_a": ["1", 0], "images_b": ["1", 0], "clip_vision": ["3", 0]}},
          "5": {"class_type": "PEZImageSimilarity",
                "inputs": {"images_a": ["1", 0], "images_b": ["2", 0], "clip_vision": ["3", 0]}}}
    _, status, entry, _ = _run(server, wf, images=[same, other])
    assert status == "success", server.log
    itself = entry["outputs"]["4"]["text"][0]
    versus = entry["outputs"]["5"]["text"][0]
    assert itself.startswith("mean 1.0000") and "1: 1.0000" in itself, itself
    assert versus.startswith("mean ") and float(versus.split()[1]) < 0.9999, versus

    wf["5"]["inputs"].pop("clip_vision")  # no judge connected: a node error, the server stays up
    _, status, _, seen = _run(server, wf, images=[same, other])
    assert status == "execution_error" and _error(seen)["node_type"] == "PEZImageSimilarity"
    assert "clip_vision" in _error(seen)["exception_message"]
    assert _get(server, "/system_stats")


def _pez_side(api: dict) -> dict:
    """The nodes a prompt-pair workflow's two PEZ Invert nodes depend on, with this test's files: CLIP-L (SD 1.5
    layout), bigG, a T5-XXL stub, the random ViT-L as both CLIP Vision and text projection, toy_lm_small as the
    guide, and few steps. ComfyUI's own DualCLIPLoader / TripleCLIPLoader build the Flux / SD3 CLIP."""
    inverts = [k for k, n in api.items() if n["class_type"] == "PEZInvert"]
    keep, todo = set(), list(inverts)
    while todo:
        k = todo.pop()
        keep.add(k)
        todo += [v[0] for v in api[k]["inputs"].values() if isinstance(v, list) and v[0] not in keep]
    wf = {k: json.loads(json.dumps(api[k])) for k in keep}
    files = {"clip_l.safetensors": "clip_l_sd15.safetensors", "clip_g.safetensors": "clip_g.safetensors",
             "t5xxl_fp16.safetensors": "t5xxl_stub.safetensors"}
    for node in wf.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind in ("DualCLIPLoader", "TripleCLIPLoader"):
            for name, value in inputs.items():
                inputs[name] = files.get(value, value)
        elif kind == "CLIPVisionLoader":
            inputs["clip_name"] = "vit_l_14.safetensors"
        elif kind == "PEZCLIPFromWorkflow":
            inputs.pop("clip_vision_2", None)  # one ViT-L here: bigG's vision model is 3.7 GB
            inputs["text_projection"] = PROJECTION
        elif kind == "PEZLoadLM":
            inputs["model"] = "toy_lm_small"
        elif kind == "PEZInvert":
            inputs.update(steps=3, prompt_len=4 if inputs["method"] == "guided" else 3)
        elif kind == "PEZOptions":
            inputs.update(restarts=1)
    return {k: v for k, v in wf.items() if v["class_type"] != "CLIPVisionLoader" or
            any(v2 == [k, 0] for n in wf.values() for v2 in n["inputs"].values())}


def test_the_prompt_pair_workflows_validate_and_their_pez_side_runs(server, tmp_path):
    """Flux and SD3: the shipped API workflows pass ComfyUI's validation (their files' names in its lists, as on a
    user's machine that has them); with this test's files, the keywords (PEZ) and the sentence (guided, a language
    model) both come out of the workflow's own CLIP, T5 left out with a note."""
    picture = tmp_path / "star.png"
    tw.render(tw.all_scenes()[5], seed=1).save(picture)
    example = server.upload_image(WORKFLOWS / "pez_example.png")  # as a user copies it into ComfyUI/input
    for name, api in _pair_workflows().items():
        loads = {k: {**n, "inputs": {**n["inputs"], "image": example}} for k, n in api.items()
                 if n["class_type"] == "LoadImage"}
        prompt_id = server.queue({**api, **loads})  # validated, or queue raises with ComfyUI's node errors
        assert prompt_id
        server.cancel(prompt_id)  # placeholder files: nothing to load
        kinds = {n["class_type"] for n in api.values()}
        assert {"CLIPTextEncodeFlux" if name.endswith("flux") else "CLIPTextEncodeSD3", "PEZLoadLM"} <= kinds

        wf = _pez_side(api)
        _, status, entry, _ = _run(server, wf, images=[picture])
        assert status == "success", server.log
        shown = {n["_meta"]["title"]: entry["outputs"][k]["text"][0] for k, n in wf.items() if n["class_type"] == "PEZInvert"}
        keywords, sentence = shown["PEZ keywords (CLIP box)"], shown["Guided sentence (T5 box)"]
        assert "t5xxl is not a CLIP text encoder" in keywords and "t5xxl is not a CLIP text encoder" in sentence
        assert "· guided" in sentence and "· guided" not in keywords
        assert keywords.split("\n")[0].strip() and sentence.split("\n")[0].strip()


def _free(server) -> None:
    """ComfyUI's own "unload models and free memory" (the Manager's and the API's ``POST /free``)."""
    import urllib.request

    request = urllib.request.Request(server.base + "/free", data=json.dumps({"unload_models": True,
                                     "free_memory": True}).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()


def test_comfyuis_free_releases_pezs_model_and_a_second_run_reloads_it(server):
    """A full-size ViT-L-14 (random weights, 1.7 GB in fp32) loaded by PEZ Load CLIP: after a run ComfyUI's model
    management holds it (its log says it loaded it), ``POST /free`` gives the memory back (the server's RSS falls by
    at least 1.2 GB: measured ~1.7 GB), and the next run loads it again (ComfyUI's log says so; the RSS after a
    free is no floor: glibc keeps trimming)."""
    import time

    wf = {"1": {"class_type": "PEZLoadCLIP", "inputs": {"model": "vit_l_14.safetensors", "device": "cpu"}},
          "2": {"class_type": "PEZDistill", "inputs": {"pez_clip": ["1", 0], "text": "a red fox", "prompt_len": 2,
                                                       "steps": 2, "seed": 0}}}
    log_before = server.log.read_text(errors="replace")
    _, status, _, _ = _run(server, wf)
    assert status == "success", server.log
    assert "Requested to load CLIP" in server.log.read_text(errors="replace")[len(log_before):]  # ComfyUI loaded it
    held = server.proc.rss_mb()
    _free(server)
    deadline, rss = time.time() + 60, held
    while time.time() < deadline and held - rss < 1200:
        time.sleep(1)
        rss = server.proc.rss_mb()
    assert held - rss >= 1200, f"RSS {held:.0f} MB → {rss:.0f} MB after POST /free"
    log_before = server.log.read_text(errors="replace")
    _, status, _, _ = _run(server, {**wf, "2": {**wf["2"], "inputs": {**wf["2"]["inputs"], "seed": 1}}})
    assert status == "success", server.log
    assert "Requested to load CLIP" in server.log.read_text(errors="replace")[len(log_before):]  # loaded again
