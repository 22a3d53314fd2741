"""The headless client against a stub ComfyUI: real sockets on 127.0.0.1, no mocks (and, where COMFYUI_DIR is set,
one test against a real ComfyUI).

The stub speaks just enough of ComfyUI's protocol (``/upload/image``, ``/prompt``, ``/history``,
``/object_info/<class>``, ``/queue``, ``/interrupt`` and the ``/ws`` websocket with text, binary and ping frames)
and can be told how the prompt ends: ``success``, ``error``, ``interrupted``, ``never`` (silent until interrupted),
``trickle`` (progress forever until interrupted) or ``drop`` (the websocket closes midway).
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pez_nodes.clients import comfyui as client

ROOT = Path(__file__).resolve().parents[1]
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's handshake constant
HANG = 8.0  # the longest a stub keeps a silent websocket open, so a client that never gives up still ends
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
WORKFLOW = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
            "3": {"class_type": "PEZInvert", "inputs": {"steps": 300, "images": ["1", 0], "options": ["4", 0]}},
            "4": {"class_type": "PEZOptions", "inputs": {"template": ""}}}
LEARNED = "learned prompt\n\nsimilarity 0.9000 · 10 steps"
# what a real ComfyUI answers at /object_info/<class> for these classes (the input names; specs trimmed)
OBJECT_INFO = {
    "LoadImage": {"required": ["image"], "optional": []},
    "PEZInvert": {"required": ["pez_clip", "images", "prompt_len", "steps", "seed"],
                  "optional": ["method", "mode", "negative_images", "options", "fluency_lm", "guide_lm"]},
    "PEZDistill": {"required": ["pez_clip", "text", "prompt_len", "steps", "seed"],
                   "optional": ["method", "options", "fluency_lm", "guide_lm"]},
    "PEZOptions": {"required": [], "optional": ["lr", "restarts", "patience", "blocklist", "ascii_only", "template",
                                                "bank", "negative_text", "negative_weight", "fluency", "beams",
                                                "candidates", "lm_weight", "start_text", "instruction"]},
}


def _frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked server→client frame (FIN set)."""
    n = len(payload)
    if n < 126:
        size = bytes([n])
    else:
        size = bytes([126]) + struct.pack(">H", n) if n < 65536 else bytes([127]) + struct.pack(">Q", n)
    return bytes([0x80 | opcode]) + size + payload


def _text_event(node: str, text: str) -> bytes:
    """ComfyUI's binary event 3 (text shown on a node): type, node-id length, node id, utf-8 text."""
    return struct.pack(">II", 3, len(node)) + node.encode() + text.encode()


class Stub:
    """A tiny ComfyUI on an ephemeral port; records what the client asked for."""

    def __init__(self):
        self.ending = "success"
        self.reject = None  # a 400 body for POST /prompt
        self.upload_delay = self.prompt_delay = 0.0
        self.outputs = {"3": {"text": [LEARNED]}}
        self.object_info = dict(OBJECT_INFO)
        self.prompt_id = None
        self.seen, self.uploads, self.interrupts, self.deleted = [], [], [], []
        self.posted = None
        self.uploading, self.queued, self.following = threading.Event(), threading.Event(), threading.Event()
        self.interrupted, self.closed = threading.Event(), threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.stub = self
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()

    def history(self, prompt_id: str) -> dict:
        if prompt_id != self.prompt_id or self.ending not in ("success", "error", "interrupted"):
            return {}
        status = "success" if self.ending == "success" else "error"
        return {prompt_id: {"outputs": self.outputs, "status": {"status_str": status, "completed": status == "success"}}}

    def websocket(self, sock: socket.socket) -> None:
        """Play a prompt's messages the way ComfyUI sends them, then wait for the client to hang up."""
        def send(kind, **data):
            sock.sendall(_frame(1, json.dumps({"type": kind, "data": data}).encode()))

        send("status", status={"exec_info": {"queue_remaining": 0}}, sid="stub")
        if not self.queued.wait(5):
            return
        pid = self.prompt_id
        send("execution_start", prompt_id=pid)
        send("executing", node="3", prompt_id=pid)
        sock.sendall(_frame(9, b"ping"))
        send("progress", value=1, max=10, prompt_id=pid, node="3")
        sock.sendall(_frame(2, _text_event("3", "a live best prompt " * 10 + "\n\nsimilarity 0.5")))  # > 125 bytes
        send("executing", node=None, prompt_id="someone-else")  # another client's prompt: ignored
        self.following.set()
        if self.ending == "success":
            send("executing", node=None, prompt_id=pid)
        elif self.ending == "error":
            send("execution_error", prompt_id=pid, node_id="3", node_type="PEZInvert",
                 exception_message="boom: the image is empty\n", exception_type="ValueError", traceback=[])
        elif self.ending == "interrupted":
            send("execution_interrupted", prompt_id=pid, node_id="3", node_type="PEZInvert", executed=[])
        elif self.ending == "drop":
            return
        else:  # never / trickle: run until interrupted, as a long optimisation would
            until = time.monotonic() + HANG
            while not self.interrupted.wait(0.2) and not self.closed.is_set() and time.monotonic() < until:
                if self.ending == "trickle":
                    send("progress", value=2, max=10, prompt_id=pid, node="3")
            if self.interrupted.is_set():
                send("execution_interrupted", prompt_id=pid, node_id="3", node_type="PEZInvert", executed=[])
        sock.settimeout(0.2)
        until = time.monotonic() + HANG
        while not self.closed.is_set() and time.monotonic() < until:  # read pongs/close until the client leaves
            with contextlib.suppress(socket.timeout):
                if not sock.recv(4096):
                    return


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, obj, status: int = 200) -> None:
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        stub = self.server.stub
        stub.seen.append(("GET", self.path))
        if self.path.startswith("/history/"):
            return self._reply(stub.history(self.path.rsplit("/", 1)[1]))
        if self.path.startswith("/object_info/"):  # ComfyUI answers {} for a class it does not know
            name = self.path.rsplit("/", 1)[1]
            spec = stub.object_info.get(name)
            return self._reply({} if spec is None else {name: {"input": {
                part: {k: ["INT", {}] for k in names} for part, names in spec.items()}, "name": name}})
        if self.path.startswith("/ws?clientId=") and self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers["Sec-WebSocket-Key"]
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            self.close_connection = True
            with contextlib.suppress(OSError):
                stub.websocket(self.connection)
            return
        self._reply({"error": "not found"}, 404)

    def do_POST(self):
        stub = self.server.stub
        stub.seen.append(("POST", self.path))
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/upload/image":
            stub.uploading.set()
            stub.closed.wait(stub.upload_delay)
            name = re.search(rb'filename="([^"]*)"', body).group(1).decode()
            stub.uploads.append((name, body))
            return self._reply({"name": name, "subfolder": "", "type": "input"})
        if self.path == "/prompt":
            stub.posted = json.loads(body)
            stub.closed.wait(stub.prompt_delay)
            if stub.reject:
                return self._reply(stub.reject, 400)
            stub.prompt_id = stub.posted.get("prompt_id") or "stub-prompt"  # ComfyUI honours a client's id
            stub.queued.set()
            return self._reply({"prompt_id": stub.prompt_id, "number": 0, "node_errors": {}})
        if self.path == "/interrupt":
            stub.interrupts.append(json.loads(body or b"{}"))
            stub.interrupted.set()
            return self._reply(None)
        if self.path == "/queue":
            stub.deleted += json.loads(body).get("delete", [])
            return self._reply(None)
        self._reply({"error": "not found"}, 404)


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


@pytest.fixture
def files(tmp_path):
    """An API-format workflow with one LoadImage node, and an image for it."""
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(WORKFLOW))
    img = tmp_path / "photo.png"
    img.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return wf, img


def run(capsys, *args) -> tuple[int, str, str]:
    rc = client.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pez-client: error: "), err
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the prompt runs ------------------------------------------------------------------------------

def test_success_uploads_the_image_applies_sets_and_prints_the_prompt(capsys, stub, files):
    wf, img = files
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--set", "3.steps=40",
                       "--set", "4.template=a photo of {}")
    assert rc == 0, err
    assert out == "learned prompt\n"
    uploaded = client.upload_name(img, img.read_bytes())
    assert re.fullmatch(r"photo-[0-9a-f]{16}\.png", uploaded)
    assert [name for name, _ in stub.uploads] == [uploaded] and img.read_bytes() in stub.uploads[0][1]
    sent = stub.posted["prompt"]
    assert sent["1"]["inputs"]["image"] == uploaded
    assert sent["3"]["inputs"]["steps"] == 40 and sent["4"]["inputs"]["template"] == "a photo of {}"
    assert stub.posted["client_id"] and ("GET", f"/ws?clientId={stub.posted['client_id']}") in stub.seen
    assert "a live best prompt" in err  # the binary event-3 frame became the progress line
    assert not stub.interrupts


def _form_parts(body: bytes) -> list:
    """The parts of a multipart/form-data body, as a standard MIME parser reads them."""
    boundary = body.split(b"\r\n", 1)[0][2:]
    message = email.message_from_bytes(b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n\r\n" + body,
                                       policy=email.policy.HTTP)
    assert message.is_multipart() and not message.defects, message.defects
    return list(message.iter_parts())


HOSTILE_NAMES = ['say "hi".png', 'x.png"; name="overwrite"\r\n\r\ntrue\r\n--', "caf\u00e9 \u0444\u043e\u0442\u043e.PNG",
                 "..\\..\\evil.png", "\u0444\u043e\u0442\u043e", ".hidden", "no-suffix.verylongsuffix"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_upload_sends_one_image_part_under_a_safe_hashed_name_without_overwrite(capsys, stub, files, tmp_path, name):
    """Quotes, CR/LF, non-ASCII and backslashes in a file name cannot reach the multipart header (no injected
    ``overwrite`` field, no second part), and ComfyUI's ``overwrite`` is never asked for."""
    wf, _ = files
    img = tmp_path / name
    img.write_bytes(b"\x89PNG\r\n\x1a\n" + name.encode())
    rc, _, err = run(capsys, wf, "--image", img, "--server", stub.address, "--quiet")
    assert rc == 0, err
    (sent, body), = stub.uploads
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}-[0-9a-f]{16}(\.[a-z0-9]{1,5})?", sent), sent
    assert sent == client.upload_name(img, img.read_bytes()) == stub.posted["prompt"]["1"]["inputs"]["image"]
    head = body.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and head.count(b"\r\n") == 2 and head.count(b'"') == 4, head  # boundary, 2 headers
    parts = _form_parts(body)
    assert [(p.get_param("name", header="content-disposition"), p.get_filename()) for p in parts] == [("image", sent)]
    assert parts[0].get_payload(decode=True) == img.read_bytes()
    assert b"overwrite" not in body.replace(img.read_bytes(), b"")


def test_upload_names_keep_different_contents_apart_and_repeat_for_the_same_content(tmp_path):
    """Two users' ``photo.png`` get different names (ComfyUI keeps both); the same bytes get the same name, which
    ComfyUI recognises as already there rather than saving a copy."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    mine, theirs, again = tmp_path / "a" / "photo.png", tmp_path / "b" / "photo.png", tmp_path / "photo copy.png"
    mine.write_bytes(b"mine")
    theirs.write_bytes(b"theirs")
    again.write_bytes(b"mine")
    assert client.upload_name(mine, b"mine") != client.upload_name(theirs, b"theirs")
    assert client.upload_name(mine, b"mine") == client.upload_name(tmp_path / "a" / "photo.png", b"mine")
    assert client.upload_name(again, b"mine").startswith("photo_copy-")


def test_json_prints_id_status_prompts_and_similarity(capsys, stub, files):
    wf, img = files
    rc, out, err = run(capsys, wf, "--image", img, "--server", f"http://{stub.address}/", "--json", "--quiet")
    assert rc == 0 and err == ""
    assert json.loads(out) == {"prompt_id": stub.prompt_id, "status": "success", "prompts": {"3": "learned prompt"},
                               "similarity": {"3": 0.9}}


def test_similarity_is_read_from_the_text_the_nodes_show():
    """From the nodes' ``ui`` text ('prompt\\n\\nsimilarity 0.1234 · N steps[ · method][\\n· note]'); per image:
    the first."""
    wf = {"3": {"class_type": "PEZInvert"}, "5": {"class_type": "PEZDistill"}, "6": {"class_type": "PEZConcat"},
          "7": {"class_type": "PEZPromptConcat"}}
    entry = {"outputs": {"3": {"text": ["a (cat)\n\nsimilarity 0.3125 · 40 steps · guided\n· a note",
                                        "second\n\nsimilarity 0.2 · 40 steps"]},
                         "5": {"text": ["x\n\nsimilarity -1.5e-02 · 3 steps"]},
                         "6": {"text": ["not a PEZ node\n\nsimilarity 0.5"]},
                         "7": {"text": ["no similarity shown"]}}}
    assert client.similarities_from_history(wf, entry) == {"3": 0.3125, "5": -0.015, "7": None}
    assert client.prompts_from_history(wf, entry) == {"3": "a (cat)", "5": "x", "7": "no similarity shown"}


def test_a_folder_run_prints_the_similarity_of_each_image(capsys, stub, files, tmp_path):
    wf, img = files
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "a.png").write_bytes(img.read_bytes())
    rc, out, err = run(capsys, wf, "--folder", folder, "--server", stub.address, "--json", "--quiet")
    assert rc == 0, err
    row = json.loads(out)
    assert row["prompts"] == {"3": "learned prompt"} and row["similarity"] == {"3": 0.9}


def test_repo_workflow_without_images(capsys, stub):
    stub.outputs = {"2": {"text": ["four tokens\n\nsimilarity 0.8"]}}
    rc, out, err = run(capsys, ROOT / "workflows" / "api" / "pez_distill_toy.json", "--server", stub.address,
                       "--set", "2.text=a red circle on sand", "--quiet")
    assert rc == 0, err
    assert out == "four tokens\n" and stub.posted["prompt"]["2"]["inputs"]["text"] == "a red circle on sand"


def test_execution_error_exits_1_with_the_node_message(capsys, stub, files):
    stub.ending = "error"
    wf, img = files
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--quiet")
    assert rc == 1
    assert err.strip() == "pez-client: node 3 (PEZInvert) failed: boom: the image is empty"


def test_interrupted_prompt_exits_1(capsys, stub, files):
    stub.ending = "interrupted"
    wf, img = files
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--json", "--quiet")
    assert rc == 1 and json.loads(out)["status"] == "interrupted"
    assert not stub.interrupts  # stopped by someone else: nothing for the client to stop


def test_rejected_prompt_names_the_node_error(capsys, stub, files):
    stub.reject = {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                             "details": "", "extra_info": {}},
                   "node_errors": {"3": {"errors": [{"type": "value_smaller_than_min", "details": "prompt_len",
                                                     "message": "Value 0 smaller than min of 1", "extra_info": {}}],
                                         "dependent_outputs": ["3"], "class_type": "PEZInvert"}}}
    wf, img = files
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--quiet")
    assert rc == 2 and out == ""
    line = one_error_line(err)
    assert "HTTP 400" in line and "node 3 (PEZInvert): Value 0 smaller than min of 1 prompt_len" in line
    assert not stub.interrupts and not stub.deleted  # nothing was queued


def test_websocket_closing_midway_is_an_error_and_stops_the_prompt(capsys, stub, files):
    stub.ending = "drop"
    wf, img = files
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--quiet")
    assert rc == 2 and "closed the websocket" in one_error_line(err)
    assert stub.interrupts == [{"prompt_id": stub.prompt_id}]


# --- bad input: one line, status 2, nothing sent ---------------------------------------------------

def _bad_inputs(tmp_path: Path, wf: Path, img: Path) -> dict:
    (tmp_path / "dir").mkdir()
    (tmp_path / "binary.json").write_bytes(bytes(range(256)))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "number.json").write_text("42")
    (tmp_path / "empty.json").write_text("{}")
    (tmp_path / "broken.json").write_text('{"1": ')
    (tmp_path / "ui.json").write_text('{"nodes": [], "links": []}')
    (tmp_path / "inputs.json").write_text('{"3": {"class_type": "PEZInvert", "inputs": [1]}}')
    distill = ROOT / "workflows" / "api" / "pez_distill_toy.json"
    return {  # name: (args, a word the message must contain)
        "missing workflow": ([tmp_path / "nope.json"], "does not exist"),
        "directory workflow": ([tmp_path / "dir"], "not a file"),
        "binary workflow": ([tmp_path / "binary.json"], "UTF-8"),
        "list workflow": ([tmp_path / "list.json"], "API-format"),
        "number workflow": ([tmp_path / "number.json"], "API-format"),
        "empty workflow": ([tmp_path / "empty.json"], "no nodes"),
        "broken json": ([tmp_path / "broken.json"], "not JSON"),
        "ui format": ([tmp_path / "ui.json"], "UI format"),
        "inputs not an object": ([tmp_path / "inputs.json"], "API-format"),
        "set without =": ([wf, "--set", "3.steps"], "NODE_ID.INPUT=VALUE"),
        "set without .": ([wf, "--set", "3=5"], "NODE_ID.INPUT=VALUE"),
        "set without input": ([wf, "--set", "3.=5"], "NODE_ID.INPUT=VALUE"),
        "set unknown node": ([wf, "--set", "9.steps=5"], "no node '9'"),
        "missing image": ([wf, "--image", tmp_path / "nope.png"], "does not exist"),
        "directory image": ([wf, "--image", tmp_path / "dir"], "not a file"),
        "too many images": ([wf, "--image", img, "--image", img], "LoadImage"),
        "image without LoadImage": ([distill, "--image", img], "LoadImage"),
        "zero timeout": ([wf, "--timeout", "0"], "--timeout"),
        "nan timeout": ([wf, "--timeout", "nan"], "--timeout"),
    }


BAD = ["missing workflow", "directory workflow", "binary workflow", "list workflow", "number workflow", "empty workflow",
       "broken json", "ui format", "inputs not an object", "set without =", "set without .", "set without input",
       "set unknown node", "missing image", "directory image", "too many images", "image without LoadImage",
       "zero timeout", "nan timeout"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_status_2(capsys, stub, files, tmp_path, case):
    args, word = _bad_inputs(tmp_path, *files)[case]
    rc, out, err = run(capsys, *args, "--server", stub.address)
    assert rc == 2 and out == ""
    assert word in one_error_line(err)
    assert not stub.seen  # rejected before anything reached the server


@pytest.mark.parametrize("server", ["127.0.0.1:abc", "127.0.0.1:99999", "127.0.0.1:", ":8188"])
def test_bad_server_address(capsys, files, server):
    rc, out, err = run(capsys, files[0], "--server", server)
    assert rc == 2 and "--server" in one_error_line(err) and "HOST:PORT" in err


@pytest.mark.parametrize("with_image", [False, True], ids=["websocket first", "upload first"])
def test_no_server_is_one_line_and_status_2(capsys, files, with_image):
    wf, img = files
    port = _free_port()
    rc, out, err = run(capsys, wf, *(["--image", img] if with_image else []), "--server", f"127.0.0.1:{port}")
    assert rc == 2 and out == ""
    line = one_error_line(err)
    assert f"not reachable at http://127.0.0.1:{port}" in line and "--server" in line


def test_parse_server():
    assert client.parse_server("http://localhost:8190/") == ("localhost", 8190)
    assert client.parse_server("comfy.lan") == ("comfy.lan", 8188)


def test_set_on_a_node_that_is_not_an_object():
    with pytest.raises(client.ClientError, match="not a node"):
        client.apply_overrides({"3": 5}, ["3.steps=1"])
    wf = {"3": {"class_type": "PEZInvert"}}  # no inputs yet: the override creates them
    client.apply_overrides(wf, ["3.steps=7", "3.text=hi"])
    assert wf["3"]["inputs"] == {"steps": 7, "text": "hi"}


@pytest.mark.parametrize("item, hint", [("3.stepz=10", "; did you mean 'steps'?"), ("4.learning_rate=0.1", ""),
                                        ("1.imgae=x.png", "; did you mean 'image'?")])
def test_set_of_an_input_the_node_does_not_have_is_refused_with_its_inputs(capsys, stub, files, item, hint):
    """ComfyUI ignores an unknown input (and answers the cached prompt); the client asks the server which inputs
    the node's class takes and refuses the typo in one line, before uploading or queueing anything."""
    wf, img = files
    node, name = item.split("=")[0].split(".")
    cls = WORKFLOW[node]["class_type"]
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--set", "3.steps=40", "--set", item)
    assert rc == 2 and out == ""
    inputs = ", ".join(OBJECT_INFO[cls]["required"] + OBJECT_INFO[cls]["optional"])
    assert one_error_line(err) == (f"pez-client: error: --set {item!r}: node {node} ({cls}) has no input {name!r} "
                                   f"(its inputs: {inputs}){hint}")
    assert ("GET", f"/object_info/{cls}") in stub.seen
    assert not stub.uploads and ("POST", "/prompt") not in stub.seen


def test_set_inputs_the_node_has_pass_and_each_class_is_asked_once(capsys, stub, files):
    wf, img = files
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--quiet", "--set", "3.steps=40",
                       "--set", "3.seed=2", "--set", "4.restarts=2")
    assert rc == 0, err
    asked = [path for method, path in stub.seen if path.startswith("/object_info/")]
    assert asked == ["/object_info/PEZInvert", "/object_info/PEZOptions"]
    assert stub.posted["prompt"]["3"]["inputs"]["seed"] == 2 and stub.posted["prompt"]["4"]["inputs"]["restarts"] == 2


def test_set_on_a_class_the_server_does_not_know_is_left_to_comfyui(capsys, stub, files):
    """A class missing on the server (a pack not installed): no input list to check against; ``/prompt`` names it."""
    del stub.object_info["PEZOptions"]
    wf, img = files
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--quiet", "--set", "4.anything=1")
    assert rc == 0, err
    assert stub.posted["prompt"]["4"]["inputs"]["anything"] == 1


def test_set_checks_need_the_server(capsys, files):
    wf, img = files
    port = _free_port()
    rc, out, err = run(capsys, wf, "--image", img, "--server", f"127.0.0.1:{port}", "--set", "3.steps=4")
    assert rc == 2 and f"not reachable at http://127.0.0.1:{port}" in one_error_line(err)


def test_unknown_node_lists_the_workflows_nodes():
    with pytest.raises(client.ClientError) as e:
        client.apply_overrides(json.loads(json.dumps(WORKFLOW)), ["9.steps=5"])
    assert str(e.value) == ("--set '9.steps=5': the workflow has no node '9'; its nodes: 1 (LoadImage), "
                            "3 (PEZInvert), 4 (PEZOptions)")


# --- progress on stderr: in place on a terminal, line by line in a log --------------------------------------------

def test_progress_without_a_terminal_is_line_by_line_every_5_percent(capsys):
    from pez_nodes.clients.common import Progress

    progress = Progress(quiet=False, live=False)
    for step in range(1, 301):
        progress.show(f"step {step}/300  similarity 0.{step:04d}\nprompt {step}")
    progress.end()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and err.endswith("\n")
    assert 15 <= len(lines) <= 22, lines
    assert lines[0] == "step 1/300 similarity 0.0001 prompt 1" and lines[-1].startswith("step 300/300")
    steps = [int(line.split()[1].split("/")[0]) for line in lines]
    assert all(b - a >= 15 for a, b in zip(steps[:-2], steps[1:-1]))  # 5 % of 300 steps apart


def test_progress_without_step_counts_is_at_most_one_line_a_second(capsys, monkeypatch):
    from pez_nodes.clients import common

    now = [100.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: now[0])
    progress = common.Progress(quiet=False, live=False)
    for i in range(30):  # 3 s of updates, ten a second
        now[0] = 100.0 + i / 10
        progress.show(f"best prompt {i}")
    progress.end()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["best prompt 0", "best prompt 10", "best prompt 20", "best prompt 29"]


def test_progress_on_a_terminal_rewrites_one_line(capsys):
    from pez_nodes.clients.common import Progress

    progress = Progress(quiet=False, live=True)
    for step in range(1, 4):
        progress.show(f"step {step}/3")
    progress.end()
    err = capsys.readouterr().err
    assert err.count("\r") == 3 and err.count("\n") == 1


def test_a_client_writing_to_a_pipe_prints_progress_lines(stub, files):
    wf, img = files
    done = subprocess.run([sys.executable, "-m", "pez_nodes.client", str(wf), "--image", str(img), "--server",
                           stub.address], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and done.stderr.splitlines()[0].startswith("a live best prompt"), done.stderr
    assert done.stdout == "learned prompt\n"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="COMFYUI_DIR is not set: no real ComfyUI to run against")
def test_the_first_five_minutes_on_a_real_comfyui(tmp_path):
    """Against a real ComfyUI (its own /object_info, /history and node texts), as a new user meets the client from a
    script: a typo in --set is refused with the node's real inputs; --json carries the similarity; progress piped to
    a file is one line per update; a preset model that cannot be downloaded (the hub is off) fails in one line that
    says which file goes where in the server's models/open_clip folder."""
    sys.path.insert(0, str(ROOT / "tests"))
    from harness.comfyui_server import running_comfyui

    workflow = ROOT / "workflows" / "api" / "pez_invert_toy.json"
    image = ROOT / "workflows" / "pez_example_2.png"
    with running_comfyui(os.environ["COMFYUI_DIR"], tmp_path / "server.log") as server:
        def client_run(*args):
            return subprocess.run([sys.executable, "-m", "pez_nodes.client", str(workflow), "--image", str(image),
                                   "--server", server.address, *map(str, args)], capture_output=True, text=True,
                                  cwd=ROOT, env=ENV, timeout=300)

        typo = client_run("--set", "3.stepz=10")
        assert typo.returncode == 2 and typo.stdout == "", typo.stderr
        assert typo.stderr.startswith("pez-client: error: --set '3.stepz=10': node 3 (PEZInvert) has no input 'stepz' "
                                      "(its inputs: pez_clip, images, prompt_len, steps, seed, "), typo.stderr
        assert typo.stderr.rstrip().endswith("; did you mean 'steps'?") and typo.stderr.count("\n") == 1

        done = client_run("--set", "3.steps=30", "--json")
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["status"] == "success" and answer["prompts"]["3"].strip()
        assert set(answer["similarity"]) == {"3"} and -1 <= answer["similarity"]["3"] <= 1, answer
        assert "\r" not in done.stderr and done.stderr.strip(), done.stderr  # progress lines, not carriage returns

        offline = client_run("--set", "1.model=ViT-L-14 / openai (SD 1.5, downloads)", "--set", "1.vocabulary=full", "--quiet")
        assert offline.returncode == 1, offline.stderr
        line, = offline.stderr.strip().splitlines()
        folder = Path(os.environ["COMFYUI_DIR"]) / "models" / "open_clip"
        assert line.startswith("pez-client: node 1 (PEZLoadCLIP) failed: model ViT-L-14 / openai cannot be downloaded"
                               " here"), line
        assert f"and save it as {folder / 'ViT-L-14-openai.safetensors'}" in line, line
        assert "open_clip_model.safetensors from https://huggingface.co/timm/vit_large_patch14_clip_224.openai" in line


# --- --timeout bounds the whole prompt and stops it on the server ----------------------------------

@pytest.mark.parametrize("ending", ["never", "trickle"])
def test_timeout_bounds_the_whole_prompt_and_interrupts_it(capsys, stub, files, ending):
    stub.ending = ending  # a silent server, and one whose messages keep every single read short
    wf, img = files
    start = time.monotonic()
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--timeout", "1.5")
    took = time.monotonic() - start
    assert rc == 1 and out == ""
    assert 1.4 < took < 4.0, took
    last = err.splitlines()[-1]  # after the progress line, on a line of its own
    assert last.startswith("pez-client: ") and "--timeout 1.5" in last and f"stopped prompt {stub.prompt_id}" in last
    assert stub.deleted == [stub.prompt_id] and stub.interrupts == [{"prompt_id": stub.prompt_id}]


def test_timeout_while_queueing_cancels_the_clients_own_prompt_id(capsys, stub, files):
    stub.prompt_delay = 5.0  # /prompt answers too late
    wf, img = files
    start = time.monotonic()
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--timeout", "1", "--quiet")
    assert rc == 1 and time.monotonic() - start < 3.0
    asked = stub.posted["prompt_id"]  # the id the client chose, so it can stop a prompt it never heard back about
    assert "--timeout 1" in err and stub.deleted == [asked] and stub.interrupts == [{"prompt_id": asked}]


def test_timeout_during_upload_queues_nothing(capsys, stub, files):
    stub.upload_delay = 5.0
    wf, img = files
    rc, out, err = run(capsys, wf, "--image", img, "--server", stub.address, "--timeout", "1", "--quiet")
    assert rc == 1 and "nothing left running on the server" in err
    assert ("POST", "/prompt") not in stub.seen and not stub.interrupts


# --- Ctrl-C ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _interruptible():
    """Children get the default SIGINT action even where this test process was started with SIGINT ignored."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _client(*args) -> subprocess.Popen:
    with _interruptible():
        return subprocess.Popen([sys.executable, "-m", "pez_nodes.client", *map(str, args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)


def _ctrl_c_once(stub, event, what: str, files) -> tuple[int, str]:
    """Run the client, send it SIGINT once the stub's ``event`` is set; (exit status, stderr)."""
    wf, img = files
    proc = _client(wf, "--image", img, "--server", stub.address, "--quiet")
    try:
        assert event.wait(15), f"the client never {what}"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    return proc.returncode, err


def test_ctrl_c_interrupts_the_prompt_on_the_server(stub, files):
    stub.ending = "never"
    code, err = _ctrl_c_once(stub, stub.following, "followed the prompt", files)
    assert code == 130, err
    assert err.strip() == f"pez-client: interrupted (Ctrl-C); stopped prompt {stub.prompt_id} on the server"
    assert stub.interrupts == [{"prompt_id": stub.prompt_id}]


def test_ctrl_c_before_queueing_just_exits_130(stub, files):
    stub.upload_delay = 10.0
    code, err = _ctrl_c_once(stub, stub.uploading, "uploaded", files)
    assert code == 130, err
    assert err.strip() == "pez-client: interrupted (Ctrl-C); nothing left running on the server"
    assert ("POST", "/prompt") not in stub.seen and not stub.interrupts


def test_both_clients_and_their_documented_names_need_only_the_standard_library():
    """``pez_nodes.client`` / ``pez_nodes.webui.client`` are aliases of ``pez_nodes.clients``; with no site-packages
    at all (``-S``) they import, and nothing of torch or the core comes with them."""
    code = ("import sys, pez_nodes.client, pez_nodes.webui.client\n"
            "from pez_nodes.clients import comfyui, webui\n"
            "assert pez_nodes.client.main is comfyui.main and pez_nodes.webui.client.main is webui.main\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'__main__'}),"
            " sorted(m for m in sys.modules if m.startswith('pez_nodes.core')))\n")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=ROOT, env=ENV,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['pez_nodes']", "[]"], done.stdout


def test_the_webui_clients_documented_command_says_its_errors_on_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    done = subprocess.run([sys.executable, "-m", "pez_nodes.webui.client", "--webui", f"127.0.0.1:{port}", "distill",
                           "a prompt"], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.startswith(f"pez-webui-client: error: no webui at http://127.0.0.1:{port} ("), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
