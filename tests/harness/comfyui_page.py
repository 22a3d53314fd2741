"""ComfyUI's real web page in headless Chromium — for the browser tests and the workflow screenshots.

    with comfy_page("127.0.0.1:8188") as ui:      # ui: a ComfyPage on a started ComfyUI
        ui.drop_file(Path("workflows/pez_invert_toy.json"))
        ui.run()
        print(ui.node_text(3))

Drives the system's Chromium through Playwright (``tests/harness/chromium.py``). What it does is what a user does:
drop a file on the page, double-click the canvas and search, drag a link between two slots, click
Run; it reads back what the page shows (dialogs, widget values, the node's progress bar and text box).
"""

from __future__ import annotations

import json
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .chromium import chromium_page

LIVE_TEXT = "$$node-text-preview"  # the frontend's text box for a node's progress text (PromptServer.send_progress_text)
VIEWPORT = {"width": 1600, "height": 900}


def _post(base: str, path: str, body) -> None:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


class ComfyPage:
    """One ComfyUI tab: what a user does on it, and what it shows."""

    def __init__(self, page, base: str):
        self.page, self.base = page, base

    # -- what the user does ------------------------------------------------------------------------------
    def drop_file(self, path: Path) -> None:
        """Drop a workflow file (JSON or PNG with the workflow in its metadata) on the page, as from a file manager."""
        mime = "image/png" if path.suffix.lower() == ".png" else "application/json"
        self.page.evaluate("""async ([name, bytes, mime]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], name, {type: mime}));
            const canvas = document.querySelector('#graph-canvas');
            canvas.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""", [path.name, list(path.read_bytes()), mime])
        self.wait_for(f"() => app.graph.nodes.length > 0 && (document.title || '').includes({json.dumps(path.stem)})",
                      what=f"{path.name} to open")
        self.settle()

    def new_blank_workflow(self) -> None:
        self.page.get_by_role("button", name="Create a new blank workflow").click()
        self.wait_for("() => app.graph.nodes.length === 0", what="a blank workflow")

    def add_node_by_search(self, query: str, at: tuple[int, int], expect_type: str) -> int:
        """Double-click the empty canvas at ``at`` (page pixels), type ``query`` in the node search, take the
        entry whose node type is ``expect_type``; returns the new node's id."""
        before = set(self.page.evaluate("app.graph.nodes.map(n => n.id)"))
        assert self.page.evaluate(f"(() => {{ const r = app.canvasEl.getBoundingClientRect(); "
                                  f"const p = app.canvas.ds.convertCanvasToOffset([{at[0]} - r.left, {at[1]} - r.top]); "
                                  f"return !app.graph.getNodeOnPos(p[0], p[1]); }})()"), f"a node is already at {at}"
        box = self.page.locator("input[placeholder='Search Nodes...']:visible").first
        for attempt in range(3):  # a double-click right after the last dialog closed can go unseen: try again
            self.settle()
            self.page.mouse.dblclick(*at)
            try:
                box.wait_for(timeout=5_000)
                break
            except Exception:
                if attempt == 2:
                    raise AssertionError(f"no node search opened on a double-click at {at}; dialogs: {self.dialogs()}")
        box.fill(query, timeout=10_000)
        self.page.locator("li[role='option']").filter(has_text=self._display_name(expect_type)).first.click(timeout=10_000)
        box.wait_for(state="hidden", timeout=10_000)
        self.wait_for(f"() => app.graph.nodes.some(n => n.type === {json.dumps(expect_type)} && "
                      f"!{json.dumps(sorted(before))}.includes(n.id))", what=f"{expect_type} to be added")
        return self.page.evaluate(f"app.graph.nodes.filter(n => n.type === {json.dumps(expect_type)} && "
                                  f"!{json.dumps(sorted(before))}.includes(n.id))[0].id")

    def connect(self, src: int, src_slot: int, dst: int, dst_input: str) -> None:
        """Drag with the mouse from output ``src_slot`` of node ``src`` to input ``dst_input`` of node ``dst``."""
        (x0, y0), (x1, y1) = self.page.evaluate("""([src, slot, dst, name]) => {
            const toPage = ([x, y]) => { const r = app.canvasEl.getBoundingClientRect();
                const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([x, y]);
                return [r.left + cx / (app.canvasEl.width / r.width), r.top + cy / (app.canvasEl.height / r.height)]; };
            const a = app.graph.getNodeById(src), b = app.graph.getNodeById(dst);
            const i = b.inputs.findIndex(s => s.name === name);
            return [toPage(a.getConnectionPos(false, slot)), toPage(b.getConnectionPos(true, i))];
        }""", [src, src_slot, dst, dst_input])
        mouse = self.page.mouse
        mouse.move(x0, y0)
        mouse.down()
        for k in range(1, 11):
            mouse.move(x0 + (x1 - x0) * k / 10, y0 + (y1 - y0) * k / 10)
        mouse.up()
        self.wait_for(f"() => {{ const b = app.graph.getNodeById({dst}); "
                      f"return b.inputs.find(s => s.name === {json.dumps(dst_input)}).link != null; }}",
                      what=f"a link into {dst_input}")

    def set_widget(self, node_id: int, name: str, value) -> None:
        """Click a number or text widget and type ``value`` into the box the frontend opens, then Enter."""
        x, y = self.page.evaluate("""([id, name]) => { const n = app.graph.getNodeById(id);
            const w = n.widgets.find(w => w.name === name);
            const r = app.canvasEl.getBoundingClientRect();
            const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] / 2, n.pos[1] + w.y + 10]);
            return [r.left + cx / (app.canvasEl.width / r.width), r.top + cy / (app.canvasEl.height / r.height)]; }""",
                                  [node_id, name])
        self.page.mouse.click(x, y)
        box = self.page.locator(".graphdialog input:visible, .graphdialog textarea:visible").first
        box.fill(str(value), timeout=10_000)
        box.press("Enter")
        self.wait_for(f"() => String(app.graph.getNodeById({node_id}).widgets.find(w => w.name === {json.dumps(name)})"
                      f".value) === {json.dumps(str(value))}", what=f"{name} = {value}")

    def run(self) -> None:
        """Click Run (queue the open workflow)."""
        self.page.get_by_role("button", name="Run", exact=True).first.click()

    # -- what the page shows -----------------------------------------------------------------------------
    def dialogs(self) -> list[str]:
        """The text of every dialog and error toast open on the page."""
        return self.page.evaluate("[...document.querySelectorAll('.p-dialog, .p-toast-message')]"
                                  ".filter(d => d.offsetParent !== null || d.getClientRects().length)"
                                  ".map(d => d.innerText.trim())")

    def nodes(self) -> list[dict]:
        """Every node: id, type, whether the frontend knows its type, its widgets (name → value) and inputs."""
        return self.page.evaluate("""app.graph.nodes.map(n => ({id: n.id, type: n.type, title: n.title,
            known: !!LiteGraph.registered_node_types[n.type], has_errors: !!n.has_errors,
            widgets: Object.fromEntries((n.widgets || []).map(w => [w.name, w.value])),
            inputs: (n.inputs || []).map(s => [s.name, s.link]),
            size: [n.size[0], n.size[1]]}))""")

    def links(self) -> list[tuple[int, int, int, str]]:
        """Every link as (source node, source slot, target node, target input's name)."""
        return [tuple(x) for x in self.page.evaluate(
            "[...(app.graph.links instanceof Map ? app.graph.links.values() : Object.values(app.graph.links))]"
            ".filter(l => l).map(l => [l.origin_id, l.origin_slot, l.target_id, "
            "app.graph.getNodeById(l.target_id).inputs[l.target_slot].name])")]

    def node_state(self, node_id: int) -> dict:
        """The node's progress bar (0..1, None when idle) and the text in its text box (None when none)."""
        return self.page.evaluate(f"""(() => {{ const n = app.graph.getNodeById({node_id});
            const w = (n.widgets || []).find(w => w.name === {json.dumps(LIVE_TEXT)});
            return {{progress: n.progress ?? null, text: w ? w.value : null}}; }})()""")

    def node_text(self, node_id: int) -> str | None:
        return self.node_state(node_id)["text"]

    def queue_size(self) -> int:
        with urllib.request.urlopen(self.base + "/queue", timeout=30) as r:
            q = json.loads(r.read())
        return len(q["queue_running"]) + len(q["queue_pending"])

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path))

    # -- waiting -----------------------------------------------------------------------------------------
    def wait_for(self, js: str, what: str, timeout_s: float = 30) -> None:
        try:
            self.page.wait_for_function(js, timeout=timeout_s * 1000)
        except Exception as e:
            raise AssertionError(f"the page did not show {what} within {timeout_s:.0f} s; dialogs: {self.dialogs()}") from e

    def settle(self, seconds: float = 0.5) -> None:
        self.page.wait_for_timeout(seconds * 1000)

    def _display_name(self, node_type: str) -> str:
        with urllib.request.urlopen(f"{self.base}/object_info/{node_type}", timeout=30) as r:
            return json.loads(r.read())[node_type]["display_name"]


@contextmanager
def comfy_page(address: str, chromium: str | None = None, viewport: dict | None = None, settings: dict | None = None):
    """Open ComfyUI at ``address`` (host:port) in headless Chromium; yields a :class:`ComfyPage`.

    The first-run template dialog is switched off through ComfyUI's settings API first, as a returning
    user has it (and any other ``settings`` given are set); the page counts as ready when the app and its
    graph exist.
    """
    base = f"http://{address}"
    for key, value in {"Comfy.TutorialCompleted": True, **(settings or {})}.items():
        _post(base, f"/settings/{key}", value)
    with chromium_page(base + "/", viewport or VIEWPORT, chromium) as page:
        page.wait_for_function("window.app && window.app.graph && window.app.canvasEl", timeout=120_000)
        ui = ComfyPage(page, base)
        ui.settle(1)
        yield ui


def wait_until_done(ui: ComfyPage, node_ids: list[int], timeout_s: float = 600, poll_s: float = 0.2,
                    start_grace_s: float = 10) -> dict:
    """Poll the page while the queued run goes on; returns what it saw per node: every progress fraction
    shown (``progress``), every distinct text shown in its box (``texts``), and the text left when the queue
    emptied (``final``). A queue that stays empty for ``start_grace_s`` counts as a run already finished."""
    seen = {n: {"progress": [], "texts": []} for n in node_ids}
    t0 = time.monotonic()
    started = False
    while time.monotonic() - t0 < timeout_s:
        for n in node_ids:
            state = ui.node_state(n)
            if state["progress"] is not None:
                seen[n]["progress"].append(state["progress"])
            if state["text"] and (not seen[n]["texts"] or seen[n]["texts"][-1] != state["text"]):
                seen[n]["texts"].append(state["text"])
        busy = ui.queue_size() > 0
        started = started or busy or time.monotonic() - t0 > start_grace_s
        if started and not busy:
            ui.settle(1)
            for n in node_ids:
                seen[n]["final"] = ui.node_text(n)
            return seen
        time.sleep(poll_s)
    raise AssertionError(f"the run did not finish within {timeout_s:.0f} s; dialogs: {ui.dialogs()}")
