"""Each node's widget defaults are what it runs with when an API prompt leaves the input out.

The nodes are defined against ComfyUI's real ``comfy_api`` (ComfyUI is not on PyPI): set ``COMFYUI_DIR`` to a
ComfyUI checkout whose requirements are installed in this Python (docs/testing.md says how). Skipped, with the reason printed by ``pytest -rs``, when it is unset. No server is started:
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
OPTIMISING = NODE_IDS[1:]
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


TASKS = {"PEZInvert": "invert", "PEZDistill": "distill", "PEZPromptConcat": "concat"}


def _expected_config(node_id: str, **changes) -> core.PEZConfig:
    """The core's defaults for the node's task (``core.task_config``: the one set every front end shares)."""
    return dataclasses.replace(core.task_config(TASKS[node_id]), **changes)


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_widget_defaults_are_pezconfigs_and_load_clips(comfy_nodes, node_id):
    """A node's widgets and PEZ Options' widgets, all at their defaults, make PEZConfig's defaults."""
    _, nodes = comfy_nodes
    defaults = _widget_defaults(getattr(nodes, node_id))
    if node_id == "PEZLoadCLIP":
        load = inspect.signature(core.load_clip).parameters
        assert defaults["activation"] == load["activation"].default
        assert defaults["vocabulary"] == load["vocabulary"].default
        return
    options = _widget_defaults(nodes.PEZOptions)
    assert set(options) == set(node_bodies.OPTIONS) and options["negative_weight"] == node_bodies.NEGATIVE_WEIGHT
    make_config = inspect.signature(node_bodies.make_config).parameters
    widgets = {k: v for k, v in {**options, **defaults}.items() if k in make_config}
    assert {"prompt_len", "steps", "seed", "method", "lr", "restarts", "patience", "blocklist", "template", "fluency",
            "beams", "candidates", "lm_weight", "start_text", "instruction"} <= set(widgets)
    assert node_bodies.make_config(**widgets) == _expected_config(node_id)


SHOWN = {"PEZInvert": ["prompt_len", "steps", "seed", "method", "mode"],
         "PEZDistill": ["text", "prompt_len", "steps", "seed", "method"],
         "PEZPromptConcat": ["text_a", "text_b", "prompt_len", "steps", "seed", "method"]}


@pytest.mark.parametrize("node_id", OPTIMISING)
def test_an_optimising_node_shows_only_what_most_users_change(comfy_nodes, node_id):
    """Its widgets (≤ 8 with seed's control_after_generate), links for the rest; every input has a tooltip."""
    io, nodes = comfy_nodes
    inputs = nodes.__dict__[node_id].GET_SCHEMA().inputs
    widgets = [i.id for i in inputs if isinstance(i, io.WidgetInput) and not getattr(i, "force_input", False)]
    assert widgets == SHOWN[node_id] and len(widgets) + 1 <= 8
    links = {i.id for i in inputs} - set(widgets)
    assert {"pez_clip", "options", "fluency_lm", "guide_lm"} <= links and not links & set(node_bodies.OPTIONS)
    assert all(i.tooltip for i in inputs)
    assert all(i.tooltip for i in nodes.PEZOptions.GET_SCHEMA().inputs)
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


def _image():
    scene = tw.render(tw.Scene("circle", "red", "large", "grass"), size=64, seed=0)
    return torch.from_numpy(np.asarray(scene, dtype="float32")[None] / 255)  # a ComfyUI IMAGE: [1, H, W, C]


def _given(node_id: str, clip) -> dict:
    """What a user must connect or write, and steps=2."""
    return {
        "PEZLoadCLIP": {"model": model_choices.TOY},
        "PEZInvert": {"pez_clip": clip, "images": _image(), "steps": 2},
        "PEZDistill": {"pez_clip": clip, "text": "a large red circle on grass", "steps": 2},
        "PEZPromptConcat": {"pez_clip": clip, "text_a": "a red circle", "text_b": "on grass", "steps": 2},
    }[node_id]


def _reached_core(io, node, monkeypatch, inputs: dict, prompt: dict | None = None) -> dict:
    """What one ``execute`` of ``node`` handed the core (``_spy``); ``prompt``: the API prompt ComfyUI hands it."""
    seen = _spy(monkeypatch)
    node.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "1", io.Hidden.prompt: prompt}).execute(**inputs)
    monkeypatch.undo()
    return {call[0]: call[1:] for call in seen}


def _options(nodes, **values) -> dict:
    return nodes.PEZOptions.execute(**values).result[0]


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_omitted_inputs_run_with_the_widget_defaults(comfy_nodes, clip, monkeypatch, node_id):
    """An API prompt gives every required input and may leave out every optional one: the node must then
    reach the core exactly as with every widget at its default. A direct call that also leaves out the
    required widgets (only what a user must connect or write, and steps=2) must too, and so must a PEZ Options
    node at its defaults (or with nothing set)."""
    io, nodes = comfy_nodes
    node = getattr(nodes, node_id)
    given = _given(node_id, clip)
    omitted = _reached_core(io, node, monkeypatch, {**_widget_defaults(node, optional=False), **given})
    if node_id == "PEZLoadCLIP":
        load = inspect.signature(core.load_clip).parameters
        assert omitted["load_clip"][0]["activation"] == load["activation"].default
    else:
        assert omitted["optimize"][0] == _expected_config(node_id, steps=2, device=str(clip.device))
    if node_id == "PEZInvert":
        assert omitted["with_negatives"] == (node_bodies.NEGATIVE_WEIGHT,)
    assert _reached_core(io, node, monkeypatch, {**_widget_defaults(node), **given}) == omitted
    assert _reached_core(io, node, monkeypatch, given) == omitted
    if node_id != "PEZLoadCLIP":
        for options in (_options(nodes, **_widget_defaults(nodes.PEZOptions)), _options(nodes)):
            assert _reached_core(io, node, monkeypatch, {**given, "options": options}) == omitted


@pytest.mark.parametrize("node_id", OPTIMISING)
def test_pez_options_reach_the_core_and_the_nodes_widgets_win(comfy_nodes, clip, monkeypatch, node_id):
    """Every PEZ Options value reaches the PEZConfig; the node's own widgets win (they are not PEZ Options'
    inputs, so only a direct call can give both); negatives: PEZ Invert uses them, the others note they do not."""
    io, nodes = comfy_nodes
    node = getattr(nodes, node_id)
    set_ = dict(lr=0.05, restarts=2, patience=7, blocklist="red, blue", ascii_only=True, fluency=0.0, beams=3,
                candidates=5, lm_weight=0.5, start_text="a photo", instruction="Describe it.")
    options = _options(nodes, **set_, negative_text="blue", negative_weight=0.25)
    seen = _reached_core(io, node, monkeypatch, {**_given(node_id, clip), "options": {**options, "steps": 9}})
    expected = _expected_config(node_id, steps=2, device=str(clip.device), **{**set_, "blocklist": ("red", " blue")})
    assert seen["optimize"][0] == expected
    if node_id == "PEZInvert":
        assert seen["with_negatives"] == (0.25,) and [t[0] for t in seen["optimize"][1]] == [None, "blue"]
    else:
        assert "with_negatives" not in seen


def test_a_setting_that_moved_to_pez_options_is_refused_by_name(comfy_nodes, clip, monkeypatch):
    """ComfyUI drops an input a node does not define: an old API workflow's ``lr`` would run with the default.
    The node reads the prompt ComfyUI hands it and refuses such a workflow, naming the setting and the fix."""
    io, nodes = comfy_nodes
    given = _given("PEZInvert", clip)
    old = {"1": {"class_type": "PEZInvert", "inputs": {"steps": 2, "lr": 0.05, "negative_text": "blue"}}}
    with pytest.raises(ValueError, match=r"PEZ Invert Image no longer takes lr, negative_text: these settings moved "
                                         r"to a PEZ Options node"):
        _reached_core(io, nodes.PEZInvert, monkeypatch, given, prompt=old)
    new = {"1": {"class_type": "PEZInvert", "inputs": {"steps": 2, "options": ["2", 0]}}}
    assert _reached_core(io, nodes.PEZInvert, monkeypatch, given, prompt=new)["optimize"]


def test_distill_and_concat_note_that_they_take_no_negatives(comfy_nodes, clip):
    io, nodes = comfy_nodes
    options = _options(nodes, negative_text="blue")
    for node_id in ("PEZDistill", "PEZPromptConcat"):
        node = getattr(nodes, node_id).PREPARE_CLASS_CLONE({io.Hidden.unique_id: "1"})
        shown = node.execute(**_given(node_id, clip), options=options).ui.as_dict()["text"][0]
        assert "takes no negatives: PEZ Options' negative_text is not used here" in shown


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
