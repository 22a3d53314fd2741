"""PEZ Prompt List → (images per candidate) → PEZ Pick by Generation in a real ComfyUI server.

No Stable Diffusion weights here, so each candidate's "generations" are the toy text-to-image model's pictures,
rendered by the test and fed through ComfyUI's own nodes (LoadImage, ImageBatch, RebatchImages: one batch per
prompt, in the prompts' order), as VAE Decode would give them once per prompt. The case is ``test_pick``'s: the
toy CLIP's best prompt ("small purple grass") is not the one whose generations come closest, and the node — judged
by the bundled reference CLIP — must pick "a small purple star on grass", read back from ``/history``.

Needs ``COMFYUI_DIR`` (see ``test_comfyui_host``); skipped with the reason printed when it is unset.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pez_nodes import toyworld as tw
from pez_nodes.clients import comfyui as client

COMFY = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFY, reason="COMFYUI_DIR is not set: no real ComfyUI to host the nodes")
pytest.importorskip("diffusers", reason="the toy generator needs diffusers: pip install -e '.[generate]'")

from test_comfyui_host import _run  # noqa: E402
from test_pick import A_CLIP_BEST, B_GENERATION_BEST, GEN_SEEDS, SCENE, TARGET_SEEDS  # noqa: E402

PROMPTS = [A_CLIP_BEST, B_GENERATION_BEST]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from harness.comfyui_server import running_comfyui

    try:
        with running_comfyui(Path(COMFY), tmp_path_factory.mktemp("comfy") / "server.log") as proc:
            base = client.Comfy(proc.address, timeout=300)
            base.log = proc.log
            yield base
    finally:  # the pictures this module uploaded (their names: the stems below + a hash of the bytes)
        for path in (Path(COMFY) / "input").glob("pick_[tc]*.png"):
            if path.name.startswith(("pick_target_", "pick_candidate")):
                path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """PNG files: the targets, and each candidate's toy generations (seeds 0, 1, 2), in PROMPTS' order."""
    from pez_nodes.generate import load_generator

    folder = tmp_path_factory.mktemp("pick_pictures")
    generator = load_generator("toy")
    targets = []
    for seed in TARGET_SEEDS:
        targets.append(folder / f"pick_target_{seed}.png")
        tw.render(SCENE, size=128, seed=seed).save(targets[-1])
    generated = []
    for i, prompt in enumerate(PROMPTS):
        for seed, picture in zip(GEN_SEEDS, generator.generate(prompt, GEN_SEEDS)):
            generated.append(folder / f"pick_candidate{i}_seed{seed}.png")
            picture.save(generated[-1])
    return targets, generated


def _batch(workflow: dict, names: list[str], first_id: int) -> str:
    """LoadImage per uploaded name, joined by ImageBatch; returns the id of the node whose output is the batch."""
    ids = []
    for k, name in enumerate(names):
        ids.append(str(first_id + k))
        workflow[ids[-1]] = {"class_type": "LoadImage", "inputs": {"image": name}}
    last, next_id = ids[0], first_id + len(names)
    for other in ids[1:]:
        workflow[str(next_id)] = {"class_type": "ImageBatch", "inputs": {"image1": [last, 0], "image2": [other, 0]}}
        last, next_id = str(next_id), next_id + 1
    return last


def pick_workflow(lines: str, generated: list[str], targets: list[str], judge: dict | None) -> dict:
    """PEZ Prompt List (lines) → PEZ Pick by Generation, the generations rebatched into one batch per prompt."""
    workflow = {"1": {"class_type": "PEZPromptList", "inputs": {"lines": lines}}}
    images = _batch(workflow, generated, 100)
    workflow["2"] = {"class_type": "RebatchImages", "inputs": {"images": [images, 0], "batch_size": len(GEN_SEEDS)}}
    target = _batch(workflow, targets, 200)
    inputs = {"prompts": ["1", 0], "images": ["2", 0], "target": [target, 0], "crop": "center"}
    if judge is not None:
        workflow["3"] = {"class_type": "PEZLoadCLIP", "inputs": judge}
        inputs["pez_clip"] = ["3", 0]
    workflow["4"] = {"class_type": "PEZPickByGeneration", "inputs": inputs}
    return workflow


def _uploaded(server, pictures) -> tuple[list[str], list[str]]:
    targets, generated = pictures
    return [server.upload_image(p) for p in generated], [server.upload_image(p) for p in targets]


def _reference_judge() -> dict:
    """PEZ Load CLIP's inputs for the bundled reference CLIP (a folder typed into custom_model)."""
    from pez_nodes.evaluate.reference import REFERENCE_DIR
    from pez_nodes.model_choices import TOY

    return {"model": TOY, "device": "cpu", "custom_model": str(REFERENCE_DIR)}


def test_the_workflow_picks_the_prompt_whose_generations_come_closest(server, pictures):
    generated, targets = _uploaded(server, pictures)
    workflow = pick_workflow("\n".join(PROMPTS), generated, targets, _reference_judge())
    _, status, entry, _ = _run(server, workflow)
    assert status == "success", (entry.get("status"), server.log)
    shown = entry["outputs"]["4"]["text"][0]
    assert shown.startswith(f"best (#2 of 2): {B_GENERATION_BEST}\nsimilarity "), shown
    scores = {line.split("  ", 2)[2]: float(line.split()[1]) for line in shown.split("\n\n", 1)[1].splitlines()}
    assert scores[B_GENERATION_BEST] > scores[A_CLIP_BEST] + 0.08, scores  # measured 0.85 vs 0.68 (test_pick)


@pytest.mark.parametrize("case, message", [
    ("three prompts", "prompts has 3 prompts but images has 2 image batches: generate one batch per prompt"),
    ("no judge", "connect exactly one judge: a PEZ CLIP (pez_clip) or a CLIP Vision model (clip_vision)"),
    ("no prompts", "PEZ Prompt List has no prompts"),
])
def test_bad_inputs_come_back_as_one_line_node_errors(server, pictures, case, message):
    generated, targets = _uploaded(server, pictures)
    lines = {"three prompts": "\n".join([*PROMPTS, "a third prompt"]), "no prompts": " \n"}.get(case, "\n".join(PROMPTS))
    workflow = pick_workflow(lines, generated, targets, None if case == "no judge" else _reference_judge())
    _, status, _, seen = _run(server, workflow)
    assert status == "execution_error"
    error = [d for k, d in seen if k == "execution_error"][0]
    text = error["exception_message"].strip()
    assert message in text and "\n" not in text, text
    assert error["node_type"] == ("PEZPromptList" if case == "no prompts" else "PEZPickByGeneration")
