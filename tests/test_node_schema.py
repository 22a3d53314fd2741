"""Each node's widget defaults are what it runs with when an API prompt leaves the input out.

The nodes are defined against ComfyUI's real ``comfy_api`` (ComfyUI is not on PyPI): set ``COMFYUI_DIR`` to a
ComfyUI checkout whose requirements are installed in this Python (``bash ../shared/comfyui/prepare.sh DEST``
lays one out). Skipped, with the reason printed by ``pytest -rs``, when it is unset. No server is started:
``execute`` runs in this process on the bundled model, 2 steps.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys

import numpy as np
import pytest
import torch

from pez_nodes import core
from pez_nodes import toyworld as tw
from pez_nodes.comfy import node_bodies, model_choices

COMFY = os.environ.get("COMFYUI_DIR")
NODE_IDS = ("PEZLoadCLIP", "PEZInvert", "PEZDistill", "PEZPromptConcat")
pytestmark = pytest.mark.skipif(not COMFY, reason="COMFYUI_DIR is not set: no ComfyUI comfy_api to define the nodes")


@pytest.fixture(scope="module")
def comfy_nodes():
    """(``comfy_api.latest.io``, ``pez_nodes.comfy.nodes``) imported against the ComfyUI checkout."""
    sys.path.append(COMFY)  # last: ComfyUI's top-level names (utils, app, ...) shadow nothing
    try:
        import comfy.cli_args

        comfy.cli_args.args.cpu = True  # comfy.model_management probes CUDA on import unless told cpu
        from comfy_api.latest import io

        from pez_nodes.comfy import nodes

        yield io, nodes
    finally:
        sys.path.remove(COMFY)


def _widget_defaults(node, optional: bool | None = None) -> dict:
    """The inputs' widget defaults (links and a Combo without a default have none): all, or only the
    optional or only the required ones."""
    return {i.id: i.default for i in node.GET_SCHEMA().inputs
            if getattr(i, "default", None) is not None and optional in (None, i.optional)}


def _expected_config(node_id: str, **changes) -> core.PEZConfig:
    """PEZConfig's defaults, except the distill node's deliberate 8 tokens."""
    prompt_len = node_bodies.DISTILL_PROMPT_LEN if node_id == "PEZDistill" else core.PEZConfig().prompt_len
    return dataclasses.replace(core.PEZConfig(), prompt_len=prompt_len, **changes)


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_widget_defaults_are_pezconfigs_and_load_clips(comfy_nodes, node_id):
    _, nodes = comfy_nodes
    defaults = _widget_defaults(getattr(nodes, node_id))
    if node_id == "PEZLoadCLIP":
        load = inspect.signature(core.load_clip).parameters
        assert defaults["activation"] == load["activation"].default
        assert defaults["vocabulary"] == load["vocabulary"].default
        return
    widgets = {k: v for k, v in defaults.items() if k in inspect.signature(node_bodies.make_config).parameters}
    assert {"prompt_len", "steps", "seed", "lr", "restarts", "patience", "blocklist", "template"} <= set(widgets)
    assert node_bodies.make_config(**widgets) == _expected_config(node_id)
    if node_id == "PEZInvert":
        assert defaults["negative_weight"] == node_bodies.NEGATIVE_WEIGHT


def test_workflow_clip_widgets_show_what_an_omitted_input_gets(comfy_nodes):
    """PEZ CLIP from Workflow: each widget's default is the node logic's and the builder's default."""
    from pez_nodes.comfy.workflow_clip import workflow_clip

    _, nodes = comfy_nodes
    defaults = _widget_defaults(nodes.PEZCLIPFromWorkflow)
    logic_defaults = {k: p.default for k, p in inspect.signature(node_bodies.from_workflow).parameters.items()
                      if p.default is not inspect.Parameter.empty}
    assert set(defaults) == {"crop", "text_projection", "weight_clip_l", "weight_clip_g", "device"}
    assert {k: logic_defaults[k] for k in defaults} == defaults
    builder = inspect.signature(workflow_clip).parameters
    assert all(builder[k].default == defaults[k] for k in defaults if k != "device")


@pytest.fixture(scope="module")
def clip():
    return node_bodies.load_model(model_choices.TOY, "cpu")


def _spy(monkeypatch) -> list:
    """Record what reaches the core: load_clip's arguments (defaults filled in), optimize's config and
    targets, with_negatives' share. The calls still run."""
    seen = []
    load_clip, optimize, with_negatives = core.load_clip, core.api.optimize, core.with_negatives

    def load_spy(*args, **kwargs):
        bound = inspect.signature(load_clip).bind(*args, **kwargs)
        bound.apply_defaults()
        seen.append(("load_clip", dict(bound.arguments)))
        return load_clip(*args, **kwargs)

    def optimize_spy(model, targets, config=None, *args, **kwargs):
        summary = [(t.text, t.weight, None if t.image is None else tuple(t.image.shape)) for t in targets]
        seen.append(("optimize", config, summary, kwargs.get("extra_texts", ())))
        return optimize(model, targets, config, *args, **kwargs)

    def negatives_spy(positives, negatives, share=inspect.signature(with_negatives).parameters["share"].default):
        seen.append(("with_negatives", share))
        return with_negatives(positives, negatives, share)

    monkeypatch.setattr(core, "load_clip", load_spy)
    monkeypatch.setattr(core, "optimize", optimize_spy)
    monkeypatch.setattr(core.api, "optimize", optimize_spy)  # core.concat calls it from inside the module
    monkeypatch.setattr(core, "with_negatives", negatives_spy)
    return seen


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_omitted_inputs_run_with_the_widget_defaults(comfy_nodes, clip, monkeypatch, node_id):
    """An API prompt gives every required input and may leave out every optional one: the node must then
    reach the core exactly as with every widget at its default. A direct call that also leaves out the
    required widgets (only what a user must connect or write, and steps=2) must too."""
    io, nodes = comfy_nodes
    node = getattr(nodes, node_id)
    scene = tw.render(tw.Scene("circle", "red", "large", "grass"), size=64, seed=0)
    image = torch.from_numpy(np.asarray(scene, dtype="float32")[None] / 255)  # a ComfyUI IMAGE: [1, H, W, C]
    given = {
        "PEZLoadCLIP": {"model": model_choices.TOY},
        "PEZInvert": {"pez_clip": clip, "images": image, "steps": 2},
        "PEZDistill": {"pez_clip": clip, "text": "a large red circle on grass", "steps": 2},
        "PEZPromptConcat": {"pez_clip": clip, "text_a": "a red circle", "text_b": "on grass", "steps": 2},
    }[node_id]

    def reached_core(inputs: dict) -> dict:
        seen = _spy(monkeypatch)
        node.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "1"}).execute(**inputs)
        monkeypatch.undo()
        return {call[0]: call[1:] for call in seen}

    omitted = reached_core({**_widget_defaults(node, optional=False), **given})
    if node_id == "PEZLoadCLIP":
        load = inspect.signature(core.load_clip).parameters
        assert omitted["load_clip"][0]["activation"] == load["activation"].default
    else:
        assert omitted["optimize"][0] == _expected_config(node_id, steps=2, device=str(clip.device))
    if node_id == "PEZInvert":
        assert omitted["with_negatives"] == (node_bodies.NEGATIVE_WEIGHT,)
    assert reached_core({**_widget_defaults(node), **given}) == omitted
    assert reached_core(given) == omitted


def test_the_pick_nodes_take_lists_and_an_omitted_crop_is_the_widgets(comfy_nodes, clip):
    """PEZ Prompt List gives a list (downstream runs once per prompt); PEZ Pick by Generation takes every input as a
    list; its one widget, crop, shows the judge's default, which an omitted crop gets."""
    io, nodes = comfy_nodes
    listing, picking = nodes.PEZPromptList.GET_SCHEMA(), nodes.PEZPickByGeneration.GET_SCHEMA()
    assert listing.is_input_list and [o.is_output_list for o in listing.outputs] == [True]
    assert picking.is_input_list and not any(o.is_output_list for o in picking.outputs)
    assert _widget_defaults(nodes.PEZPickByGeneration) == {
        "crop": inspect.signature(node_bodies.judge).parameters["crop"].default}
    assert _widget_defaults(nodes.PEZPromptList) == {"lines": ""}
    prompts = nodes.PEZPromptList.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "1"}).execute(
        text_a=["a red circle"], lines=["on grass\n\na red circle"]).result[0]
    assert prompts == ["a red circle", "on grass"]
    scenes = [tw.Scene("circle", "red", "large", "grass"), tw.Scene("ring", "blue", "small", "night")]
    batches = [torch.from_numpy(np.asarray(tw.render(s, size=64, seed=0), dtype="float32")[None] / 255) for s in scenes]
    node = nodes.PEZPickByGeneration.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "2"})
    omitted = node.execute(prompts=prompts, images=batches, target=[batches[1]], pez_clip=[clip]).result
    assert omitted == node.execute(prompts=prompts, images=batches, target=[batches[1]], pez_clip=[clip],
                                   crop=["center"]).result
    assert omitted[0] == "on grass" and omitted[1] == pytest.approx(1.0, abs=1e-5)
