"""The shipped workflow files agree with each other (no ComfyUI needed; the browser tests open them for real)."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest
from PIL import Image

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
UI_WORKFLOWS = sorted(WORKFLOWS.glob("*.json"))


def test_every_ui_workflow_has_an_api_twin_and_a_picture():
    assert len(UI_WORKFLOWS) >= 10
    for path in UI_WORKFLOWS:
        assert (WORKFLOWS / "api" / path.name).exists(), path.name
        assert path.with_suffix(".png").exists(), path.name


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_picture_carries_its_workflow_and_prompt(path):
    """Dropping the PNG on ComfyUI opens what the JSON holds: a stale screenshot fails here
    (re-run tools/screenshot_workflows.py after tools/make_workflows.py)."""
    with Image.open(path.with_suffix(".png")) as picture:
        text = dict(picture.text)
        assert picture.size[0] >= 1280 and picture.size[1] >= 720  # a screenshot of the page, not a thumbnail
    assert json.loads(text["workflow"]) == json.loads(path.read_text())
    assert json.loads(text["prompt"]) == json.loads((WORKFLOWS / "api" / path.name).read_text())


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_no_node_covers_another(path):
    nodes = json.loads(path.read_text())["nodes"]
    for a, b in combinations(nodes, 2):
        (ax, ay), (aw, ah), (bx, by), (bw, bh) = a["pos"], a["size"], b["pos"], b["size"]
        title = 30  # the title bar is drawn above pos
        apart = ax + aw <= bx or bx + bw <= ax or ay + ah <= by - title or by + bh <= ay - title
        assert apart, f"{path.name}: node {a['id']} ({a['type']}) overlaps node {b['id']} ({b['type']})"
