"""The pack as the Comfy Registry, ComfyUI-Manager and the webui extension index read it.

Checks ``pyproject.toml`` against the Registry's documented fields (docs.comfy.org, "pyproject.toml
specifications": ``[project]`` name, version, license, urls.Repository required or recommended; ``[tool.comfy]``
PublisherId required, DisplayName, Icon — SVG/PNG/JPG/GIF, at most 800 × 400 px), and the list entries written
out in ``docs/distribution.md`` against the same name and URL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT, COMFY = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
REPO = PROJECT["urls"]["Repository"]


def test_project_fields_follow_the_registry_rules():
    name = PROJECT["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", name), name
    assert "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"]), PROJECT["version"]
    assert (ROOT / PROJECT["license"]["file"]).read_text().startswith("MIT License")
    assert PROJECT["description"] and PROJECT["requires-python"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", REPO), REPO
    classifiers = PROJECT["classifiers"]
    assert any(c.startswith("Operating System ::") for c in classifiers)
    assert any(c.startswith("Environment :: GPU ::") for c in classifiers)
    assert "torch" not in " ".join(PROJECT["dependencies"]).replace("open_clip_torch", "")  # the user's torch stays


def test_tool_comfy_fields_and_an_icon_served_from_the_repository():
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", COMFY["PublisherId"]), COMFY["PublisherId"]
    assert COMFY["DisplayName"] and COMFY["requires-comfyui"]
    owner_repo = REPO.removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{owner_repo}/main/"
    assert COMFY["Icon"].startswith(prefix), COMFY["Icon"]
    icon = ROOT / COMFY["Icon"].removeprefix(prefix)
    with Image.open(icon) as image:
        assert image.format in ("PNG", "JPEG", "GIF") and image.width <= 800 and image.height <= 400, image.size


def test_the_changelog_describes_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(PROJECT['version'])} — \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)


def test_the_list_entries_name_this_repository():
    text = (ROOT / "docs" / "distribution.md").read_text()
    manager, webui = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]
    assert manager["reference"] == REPO and manager["files"] == [REPO] and manager["install_type"] == "git-clone"
    assert manager["id"] == PROJECT["name"] and manager["title"] == COMFY["DisplayName"]
    assert webui["url"] == REPO + ".git" and webui["name"] == COMFY["DisplayName"] and webui["tags"]
    workflow = (ROOT / ".github" / "workflows" / "publish_registry.yml").read_text()
    assert "Comfy-Org/publish-node-action" in workflow and "REGISTRY_ACCESS_TOKEN" in workflow
