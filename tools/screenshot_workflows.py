"""Make ``workflows/*.png``: real screenshots of ComfyUI's frontend, each carrying its workflow.

    COMFYUI_DIR=/path/to/ComfyUI python tools/screenshot_workflows.py [NAME ...]

For every UI workflow in ``workflows/`` (or the NAMEs given): start the real ComfyUI with this pack, open
it in headless Chromium (``tests/harness/comfyui_page.py``), drop the workflow JSON on the page, and — for
the offline ones (toy CLIP, no checkpoint) — click Run and wait for the finished run, so the picture shows
the learned prompts on the nodes. The PNG's metadata holds the workflow (``workflow``, the JSON file as
it is) and its API form (``prompt``), as ComfyUI's own saved images do: dropping the picture on ComfyUI
opens the workflow. ``tools/make_workflows.py`` writes the JSON files; run this after it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # harness: the test-only browser and ComfyUI launcher
sys.path.insert(0, str(ROOT))
WORKFLOWS = ROOT / "workflows"

from harness.chromium import why_no_browser  # noqa: E402
from harness.comfyui_page import comfy_page, wait_until_done  # noqa: E402
from harness.comfyui_server import running_comfyui  # noqa: E402
from harness.workflow_kinds import offline_ui  # noqa: E402

OPTIMISING = ("PEZInvert", "PEZDistill", "PEZPromptConcat", "PEZImageSimilarity")
MARGIN = (160, 200)  # page pixels around the graph: the sidebar, the top bar, the canvas toolbar


def viewport(ui_workflow: dict) -> dict:
    """A page big enough to show the whole graph at 100 % (below ~60 % the canvas draws nodes without text)."""
    right = max(n["pos"][0] + n["size"][0] for n in ui_workflow["nodes"])
    bottom = max(n["pos"][1] + n["size"][1] for n in ui_workflow["nodes"])
    return {"width": max(1280, right + MARGIN[0]), "height": max(720, bottom + MARGIN[1])}


def with_workflow(png: bytes, workflow_text: str, api_text: str) -> tuple[Image.Image, PngInfo]:
    """The screenshot, and PNG text chunks holding the workflow (compact JSON, as ComfyUI writes them)."""
    info = PngInfo()
    info.add_text("workflow", json.dumps(json.loads(workflow_text), separators=(",", ":")))
    info.add_text("prompt", json.dumps(json.loads(api_text), separators=(",", ":")))
    return Image.open(io.BytesIO(png)).convert("RGB"), info


def shoot(ui, path: Path) -> None:
    """Open ``path`` as a user would, run it when offline, and write ``path``'s PNG."""
    workflow = json.loads(path.read_text())
    ui.drop_file(path)
    if offline_ui(workflow):
        nodes = [n["id"] for n in ui.nodes() if n["type"] in OPTIMISING]
        ui.run()
        wait_until_done(ui, nodes)
    for attempt in range(3):  # the canvas toolbar's button (the whole graph); a dialog opening may cover it a moment
        try:
            ui.page.get_by_role("button", name="Fit View").first.click(timeout=10_000)
            break
        except Exception:
            if attempt == 2:
                raise AssertionError(f"Fit View could not be clicked; dialogs: {ui.dialogs()}") from None
            ui.page.keyboard.press("Escape")
            ui.settle(1)
    ui.settle(1)
    image, info = with_workflow(ui.page.screenshot(), path.read_text(), (WORKFLOWS / "api" / path.name).read_text())
    image.save(path.with_suffix(".png"), pnginfo=info, optimize=True)
    print(f"wrote workflows/{path.with_suffix('.png').name}" + (" (after a run)" if offline_ui(workflow) else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="workflow names (default: every workflows/*.json)")
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR"), help="ComfyUI folder (default $COMFYUI_DIR)")
    args = parser.parse_args(argv)
    if not args.comfyui:
        parser.error("no ComfyUI: pass --comfyui DIR or set COMFYUI_DIR")
    if why_no_browser():
        parser.error(why_no_browser())
    paths = [WORKFLOWS / f"{n}.json" for n in args.names] or sorted(WORKFLOWS.glob("*.json"))
    for p in paths:
        if not p.exists():
            parser.error(f"no workflow {p}")
    inputs = Path(args.comfyui) / "input"
    inputs.mkdir(exist_ok=True)
    for name in ("pez_example.png", "pez_example_2.png"):
        shutil.copy(WORKFLOWS / name, inputs / name)
    # linked as "pez" (the folder a user's clone has), so the nodes' source badge reads "pez"
    with tempfile.TemporaryDirectory() as tmp, \
            running_comfyui(args.comfyui, Path(tmp) / "server.log", link_name="pez") as server:
        for p in paths:  # a fresh page each: one workflow tab in the picture
            with comfy_page(server.address, viewport=viewport(json.loads(p.read_text())),
                            settings={"Comfy.Minimap.Visible": False}) as ui:
                shoot(ui, p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
