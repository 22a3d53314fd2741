"""The node pack in ComfyUI's real frontend (its pip-installed ``comfyui_frontend_package``), in headless Chromium.

Everything goes through the page as a user would: workflow files dropped on the canvas (the JSON and the
PNG), a workflow opened from the template browser, nodes added by double-click + search and linked by
dragging with the mouse, Run clicked; assertions read what the page shows (dialogs, widget values, each
node's progress bar and text box). Needs ``COMFYUI_DIR`` (as the host tests) and a Chromium with Playwright
for Python (``tests/harness/comfyui_page.py``); skipped with the reason printed otherwise.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

from harness.chromium import why_no_browser
from harness.comfyui_page import comfy_page, wait_until_done
from harness.workflow_kinds import offline_ui
from pez_nodes.core import PEZConfig

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
COMFY = os.environ.get("COMFYUI_DIR")
NO_BROWSER = why_no_browser()
pytestmark = [pytest.mark.skipif(not COMFY, reason="COMFYUI_DIR is not set: no real ComfyUI to serve the frontend"),
              pytest.mark.skipif(bool(NO_BROWSER), reason=f"no browser for the frontend tests: {NO_BROWSER}")]
OPTIMISING = ("PEZInvert", "PEZDistill", "PEZPromptConcat")
UI_WORKFLOWS = sorted(WORKFLOWS.glob("*.json"))


OFFLINE = [p for p in UI_WORKFLOWS if offline_ui(json.loads(p.read_text()))]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from harness.comfyui_server import running_comfyui

    inputs = Path(COMFY) / "input"  # the pictures the workflows' LoadImage nodes name
    inputs.mkdir(exist_ok=True)
    for name in ("pez_example.png", "pez_example_2.png"):
        shutil.copy(WORKFLOWS / name, inputs / name)
    with running_comfyui(COMFY, tmp_path_factory.mktemp("comfy") / "server.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def ui(server):
    with comfy_page(server.address) as page:
        yield page


@pytest.fixture(autouse=True)
def no_dialog_left(request):
    """A test that fails with a dialog open closes it, so the next test starts on the bare page."""
    yield
    if "ui" in request.fixturenames:
        page = request.getfixturevalue("ui")
        for _ in range(3):
            if not page.dialogs():
                break
            page.page.keyboard.press("Escape")
            page.settle()


def _history(ui, prompt_id: str | None = None) -> dict:
    """The newest (or the given) entry of ComfyUI's history."""
    with urllib.request.urlopen(ui.base + "/history", timeout=30) as r:
        history = json.loads(r.read())
    return history[prompt_id] if prompt_id else list(history.values())[-1]


def _same(shown, saved) -> bool:
    if isinstance(saved, float) or isinstance(shown, float):
        return math.isclose(float(shown), float(saved), rel_tol=1e-6, abs_tol=1e-9)
    return shown == saved


def _check_opened(ui, path: Path) -> None:
    """No dialog; every node known to the frontend with its saved links; every widget shows its saved value."""
    saved = json.loads(path.read_text())
    api = json.loads((WORKFLOWS / "api" / path.name).read_text())
    assert ui.dialogs() == [], f"{path.name}: dialogs on opening: {ui.dialogs()}"
    nodes = {n["id"]: n for n in ui.nodes()}
    assert sorted(nodes) == sorted(n["id"] for n in saved["nodes"])
    for node in nodes.values():
        assert node["known"] and not node["has_errors"], f"{path.name}: node {node['id']} {node['type']} is missing"
    names = {i["link"]: i["name"] for n in saved["nodes"] for i in n["inputs"]}  # slot numbers are the frontend's
    assert sorted(ui.links()) == sorted((src, slot, dst, names[link]) for link, src, slot, dst, *_ in saved["links"]), \
        f"{path.name}: links differ"
    for node_id, entry in api.items():
        shown = nodes[int(node_id)]["widgets"]
        for name, value in entry["inputs"].items():
            if isinstance(value, list):  # a link, not a widget
                continue
            assert name in shown, f"{path.name}: node {node_id} ({entry['class_type']}) shows no widget {name!r}"
            assert _same(shown[name], value), f"{path.name}: {entry['class_type']}.{name} shows {shown[name]!r}, saved {value!r}"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_dropped_workflow_json_opens_with_every_node_link_and_saved_value(ui, path):
    ui.drop_file(path)
    _check_opened(ui, path)


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_dropped_workflow_picture_opens_the_same_workflow(ui, path):
    """Each PNG in workflows/ carries its workflow: dropping the picture opens it."""
    picture = path.with_suffix(".png")
    ui.drop_file(picture)
    _check_opened(ui, path)


def test_template_browser_opens_a_pack_workflow(ui, server):
    """Templates → the pack's entry under Custom Nodes → a workflow: it opens like a dropped file."""
    ui.new_blank_workflow()
    ui.page.get_by_role("button", name="Templates").first.click()
    dialog = ui.page.locator(".p-dialog")
    dialog.get_by_text(server.link.name, exact=True).first.click(timeout=15_000)
    dialog.get_by_text("pez_invert_toy", exact=True).first.click(timeout=15_000)
    ui.wait_for("() => app.graph.nodes.some(n => n.type === 'PEZInvert')", what="the template to open")
    ui.settle(1)
    _check_opened(ui, WORKFLOWS / "pez_invert_toy.json")


def test_there_are_offline_workflows_to_run():
    assert len(OFFLINE) >= 6


@pytest.mark.parametrize("path", OFFLINE, ids=lambda p: p.stem)
def test_offline_workflow_runs_in_the_page_with_progress_live_prompt_and_result(ui, path):
    """Run clicked: each PEZ node's progress bar moves, its box shows the live best prompt, then the final
    prompt — the text ComfyUI recorded for the node in its history."""
    ui.drop_file(path)
    pez = [n["id"] for n in ui.nodes() if n["type"] in OPTIMISING]
    ui.run()
    seen = wait_until_done(ui, pez)
    assert ui.dialogs() == [], ui.dialogs()
    entry = _history(ui)
    assert entry["status"]["status_str"] == "success", entry["status"]
    for node in pez:
        got = seen[node]
        assert any(0 < p < 1 for p in got["progress"]), f"node {node}: no progress bar seen ({got['progress'][:5]})"
        live = [t for t in got["texts"] if t.startswith("step ")]  # the live best prompt (the page is polled: on a
        assert live, f"node {node}: no live best prompt shown: {got['texts']}"  # busy machine it may catch only one)
        final = "\n\n".join(entry["outputs"][str(node)]["text"])
        assert got["final"] == final, f"node {node}: the page shows {got['final']!r}, the run recorded {final!r}"
        assert final.split("\n")[0].strip() and not final.startswith("step ")


def test_a_pez_node_added_from_search_and_linked_by_dragging_runs(ui):
    """A blank workflow: PEZ Load CLIP, Load Image and PEZ Invert Image added by double-click + search ("PEZ"),
    linked by dragging from output to input, two widgets typed in, Run: a prompt appears on the node."""
    ui.new_blank_workflow()
    clip = ui.add_node_by_search("PEZ", (150, 150), "PEZLoadCLIP")
    image = ui.add_node_by_search("load image", (150, 520), "LoadImage")
    invert = ui.add_node_by_search("PEZ invert", (800, 150), "PEZInvert")
    assert next(n for n in ui.nodes() if n["id"] == clip)["widgets"]["model"].startswith("toy")  # the offline model is the loader's default
    ui.connect(clip, 0, invert, "pez_clip")
    ui.connect(image, 0, invert, "images")
    assert sorted(ui.links()) == [(clip, 0, invert, "pez_clip"), (image, 0, invert, "images")]
    ui.set_widget(invert, "steps", 60)
    ui.set_widget(invert, "prompt_len", 4)
    ui.run()
    seen = wait_until_done(ui, [invert])[invert]
    entry = _history(ui)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["prompt"][2][str(invert)]["inputs"]["steps"] == 60  # what was typed is what ran
    assert seen["final"] == entry["outputs"][str(invert)]["text"][0]
    assert seen["final"].endswith("60 steps") or "60 steps" in seen["final"]


# KSampler's height (262 px in frontend 1.27: 4 link rows + 7 widget rows) plus what a KSampler has not: two more
# link rows (PEZ nodes take up to 6 links: pez_clip, images, negative_images, options, fluency_lm, guide_lm; 2 × 20 px)
# and PEZ Prompt Concat's two multiline prompt boxes (58 px each at their minimum, 34 px more than a 24 px widget row).
BESIDE_KSAMPLER = 2 * 20 + 2 * 34


def test_each_pez_node_shows_at_most_8_widgets_and_fits_beside_a_ksampler(ui):
    """At 100 % zoom, each optimising node (as the frontend sizes a new one) shows ≤ 8 widgets (seed's
    control_after_generate counted) and is no taller than a KSampler + BESIDE_KSAMPLER (108 px); PEZ Options holds
    the rest."""
    ui.new_blank_workflow()
    ui.page.evaluate("app.canvas.ds.scale = 1")  # 100 %: a canvas unit is a page pixel
    sizes = dict(ui.page.evaluate("""['KSampler', 'PEZInvert', 'PEZDistill', 'PEZPromptConcat', 'PEZOptions'].map(t => {
        const n = LiteGraph.createNode(t); app.graph.add(n);
        return [t, [n.computeSize()[1], n.widgets.filter(w => !w.name.startsWith('$$')).map(w => w.name)]]; })"""))
    ksampler = sizes.pop("KSampler")[0]
    options = sizes.pop("PEZOptions")[1]
    for node, (height, widgets) in sizes.items():
        assert len(widgets) <= 8, f"{node} shows {len(widgets)} widgets: {widgets}"
        assert height <= ksampler + BESIDE_KSAMPLER, f"{node} is {height} px tall, KSampler {ksampler} px"
        assert not set(widgets) & set(options), f"{node} shows a PEZ Options setting: {widgets}"
    assert {"lr", "restarts", "patience", "blocklist", "negative_text", "fluency", "beams"} <= set(options)


# The optimising nodes' widget orders before PEZ Options (git: tools/make_workflows.py, NODE_TYPES)
_OPT = ["prompt_len", "steps", "seed", "@control", "lr", "restarts", "patience", "blocklist", "ascii_only", "template",
        "method", "bank"]
OLD_ORDER = {"PEZInvert": _OPT + ["negative_text", "negative_weight", "fluency", "mode"],
             "PEZDistill": ["text"] + _OPT + ["fluency"],
             "PEZPromptConcat": ["text_a", "text_b"] + _OPT[:4] + ["text_c", "text_d"] + _OPT[4:] + ["fluency"]}


def _old_layout_workflow(monkeypatch, path: Path) -> None:
    """A UI workflow as the previous nodes saved it: PEZ Invert and Distill with the same moved settings, Concat
    with others and a text_c, a second Invert with every moved setting at its default."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_workflows", ROOT / "tools" / "make_workflows.py")
    mw = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mw)  # its dataclass looks itself up there
    spec.loader.exec_module(mw)
    for node, order in OLD_ORDER.items():
        monkeypatch.setitem(mw.NODE_TYPES, node, (mw.NODE_TYPES[node][0], order))
    common = dict(lr=0.1, restarts=4, patience=0, blocklist="", ascii_only=False, template="", method="pez", bank="",
                  fluency=0.0)
    moved = dict(common, lr=0.05, restarts=2, blocklist="red")
    nodes = [mw.loader(1), mw.image(2, "pez_example.png", (40, 260)),
             mw.Node(3, "PEZInvert", (420, 60), dict(moved, prompt_len=4, steps=20, seed=7, negative_text="",
                                                     negative_weight=0.5, mode="shared"),
                     {"pez_clip": (1, 0), "images": (2, 0)}),
             mw.Node(4, "PEZDistill", (420, 600), dict(moved, text="a large red circle on grass", prompt_len=3,
                                                       steps=20, seed=9), {"pez_clip": (1, 0)}),
             mw.Node(5, "PEZPromptConcat", (820, 60), dict(common, patience=5, text_c="a third prompt", text_d="",
                                                           prompt_len=5, steps=20, seed=3),
                     {"pez_clip": (1, 0), "text_a": (3, 0), "text_b": (4, 0)}),
             mw.Node(6, "PEZInvert", (820, 600), dict(common, prompt_len=2, steps=10, seed=11, negative_text="",
                                                      negative_weight=0.5, mode="per image"),
                     {"pez_clip": (1, 0), "images": (2, 0)})]
    path.write_text(json.dumps(mw.ui_format(nodes, "saved before PEZ Options")))


def test_a_workflow_saved_before_pez_options_opens_with_its_values_by_name(ui, monkeypatch, tmp_path):
    """Its widgets get their values by name (not by position); its moved settings go to a PEZ Options node, added
    and linked (one per set of values; none where all are defaults), Concat's text_c to a text node; one message
    names each node; the run uses exactly the saved values (/history)."""
    path = tmp_path / "saved_before_pez_options.json"
    _old_layout_workflow(monkeypatch, path)
    ui.drop_file(path)
    try:
        message = "\n".join(ui.dialogs())
        assert "These settings moved to a PEZ Options node" in message, message
        nodes = {n["id"]: n for n in ui.nodes()}
        assert nodes[3]["widgets"] == {"prompt_len": 4, "steps": 20, "seed": 7, "control_after_generate": "fixed",
                                       "method": "pez", "mode": "shared"}
        assert nodes[4]["widgets"]["text"] == "a large red circle on grass" and nodes[4]["widgets"]["seed"] == 9
        assert [nodes[5]["widgets"][k] for k in ("prompt_len", "steps", "seed", "method")] == [5, 20, 3, "pez"]
        assert nodes[6]["widgets"]["mode"] == "per image" and nodes[6]["widgets"]["seed"] == 11
        into = {(dst, name): src for src, _, dst, name in ui.links()}
        shared, concat, text = into[(3, "options")], into[(5, "options")], into[(5, "text_c")]
        assert into[(4, "options")] == shared and (6, "options") not in into  # node 6: every setting at its default
        assert {k: nodes[shared]["widgets"][k] for k in ("lr", "restarts", "patience", "blocklist")} == \
            {"lr": 0.05, "restarts": 2, "patience": PEZConfig().patience, "blocklist": "red"}  # 0 < 20 steps: default
        assert nodes[concat]["widgets"]["patience"] == 5 and nodes[text]["widgets"]["value"] == "a third prompt"
        for line in ("PEZ Invert Image #3: lr, restarts, blocklist → PEZ Options", "PEZ Distill Prompt #4:",
                     "PEZ Prompt Concat #5: patience → PEZ Options", "text_c (a link now) → text node"):
            assert line in message, message
        assert "#6" not in message
    finally:
        ui.page.evaluate("app.extensionManager.toast.removeAll()")
    ui.run()
    wait_until_done(ui, [3, 4, 5, 6])
    entry = _history(ui)
    assert entry["status"]["status_str"] == "success", entry["status"]
    ran = entry["prompt"][2]
    assert ran[str(shared)]["inputs"]["lr"] == 0.05 and ran["3"]["inputs"]["options"] == [str(shared), 0]
    assert ran["5"]["inputs"]["text_c"] == [str(text), 0] and ran["3"]["inputs"]["seed"] == 7
    assert "red" not in entry["outputs"]["4"]["text"][0].split("\n")[0].split()
