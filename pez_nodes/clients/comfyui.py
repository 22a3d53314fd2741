"""Run a PEZ workflow on a running ComfyUI, headless, with the standard library only.

    python -m pez_nodes.client workflows/api/pez_invert_toy.json --image photo.png
    python -m pez_nodes.client workflows/api/pez_distill_toy.json --set 2.text="a long prompt ..." --json

Uploads the images (assigned to the workflow's LoadImage nodes in order; each under its name plus a
hash of its bytes, so another user's file of the same name is never replaced), posts the API-format
workflow, follows progress and the live best prompt over ComfyUI's websocket, and prints the learned
prompt(s) from ``/history`` (``--json``: with each one's similarity). ``--set NODE.INPUT=VALUE`` is checked
against the workflow's nodes and, on the server, against the inputs the node's class takes
(``/object_info/<class>``): a typo is refused in one line, not silently ignored (ComfyUI would drop the unknown
input and answer its cached prompt). Progress goes to stderr: one line rewritten in place on a terminal, line
by line (every 5 % of the steps) when stderr is a file or a pipe.

``--timeout`` bounds the whole run (upload, queue, websocket, history) from one deadline. When it
passes, or on Ctrl-C, the client stops its prompt on the server (drops it from the queue and POSTs
``/interrupt`` with its id) before it exits, so nothing keeps running there.

Exit status: 0 success; 1 the prompt failed, was interrupted or did not finish within ``--timeout``;
2 bad input or an unreachable server; 130 Ctrl-C. Every problem is one ``pez-client: ...`` line on
stderr.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import hashlib
import http.client
import json
import math
import os
import re
import socket
import struct
import sys
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from .common import ClientError, Progress, check_image

PEZ_NODES = ("PEZInvert", "PEZDistill", "PEZPromptConcat")
JSON = {"Content-Type": "application/json"}


class TimedOut(Exception):
    """The ``--timeout`` deadline passed."""


def _wait(cap: float, deadline: float | None) -> float:
    """Seconds the next blocking call may take: ``cap``, cut to what is left before ``deadline``."""
    left = math.inf if deadline is None else deadline - time.monotonic()
    if left <= 0:
        raise TimedOut()
    return min(cap, left)


def load_api_workflow(path: Path) -> dict:
    """The API-format workflow at ``path`` ({id: {class_type, inputs}}), or a ClientError saying what is wrong."""
    name = repr(str(path))
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ClientError(f"workflow {name} does not exist") from None
    except IsADirectoryError:
        raise ClientError(f"workflow {name} is not a file; pass a workflow JSON "
                          "such as workflows/api/pez_invert_toy.json") from None
    except UnicodeDecodeError:
        raise ClientError(f"workflow {name} is not UTF-8 text; pass a workflow JSON file") from None
    except json.JSONDecodeError as e:
        raise ClientError(f"workflow {name} is not JSON ({e})") from None
    except OSError as e:
        raise ClientError(f"workflow {name} cannot be read ({e.strerror})") from None
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise ClientError(f"workflow {name} is in ComfyUI's UI format; POST /prompt needs the API format "
                          "(workflows/api/<name>.json, or 'Export (API)' in ComfyUI)")
    if not isinstance(data, dict) or not all(_is_node(v) for v in data.values()):
        raise ClientError(f"workflow {name} is not an API-format workflow ({{id: {{class_type, inputs}}}})")
    if not data:
        raise ClientError(f"workflow {name} has no nodes")
    return data


def _is_node(value) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("class_type"), str)
            and isinstance(value.get("inputs", {}), dict))


def apply_overrides(workflow: dict, sets: list[str]) -> None:
    """``NODE.INPUT=VALUE`` overrides; VALUE is parsed as JSON when it can be (numbers, booleans)."""
    for item in sets:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot or not node or not name:
            raise ClientError(f"--set {item!r}: write NODE_ID.INPUT=VALUE, e.g. --set 3.steps=100")
        if node not in workflow:
            nodes = ", ".join(f"{k} ({v.get('class_type')})" if isinstance(v, dict) else k for k, v in workflow.items())
            raise ClientError(f"--set {item!r}: the workflow has no node {node!r}; its nodes: {nodes}")
        if not isinstance(workflow[node], dict):
            raise ClientError(f"--set {item!r}: {node!r} is not a node of an API-format workflow")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        workflow[node].setdefault("inputs", {})[name] = parsed


def check_overrides(comfy: "Comfy", workflow: dict, sets: list[str]) -> None:
    """Refuse a ``--set`` input that its node's class does not take, naming the inputs it does take (required and
    optional, from the server's ``/object_info/<class>``). ComfyUI itself ignores an unknown input, so a typo
    would run the node unchanged (and answer its cached prompt). A class the server does not know is left to
    ``/prompt``, which names it."""
    known: dict[str, list[str] | None] = {}
    for item in sets:
        node, _, name = item.partition("=")[0].partition(".")
        class_type = workflow[node]["class_type"]
        if class_type not in known:
            known[class_type] = comfy.node_inputs(class_type)
        inputs = known[class_type]
        if inputs is not None and name not in inputs:
            close = difflib.get_close_matches(name, inputs, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ClientError(f"--set {item!r}: node {node} ({class_type}) has no input {name!r} (its inputs: "
                              f"{', '.join(inputs)}){hint}")


def parse_server(server: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (an ``http://`` prefix and a trailing ``/`` are fine) as (host, port); port 8188 by default."""
    text = server.strip().removeprefix("http://").rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "8188"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClientError(f"--server {server!r}: write HOST:PORT, e.g. --server 127.0.0.1:8188")
    return host, int(port)


class Comfy:
    """A ComfyUI server at ``host:port``. ``deadline`` (``time.monotonic()`` seconds) bounds every call."""

    def __init__(self, server: str, timeout: float = 600.0, deadline: float | None = None):
        self.host, self.port = parse_server(server)
        self.base = f"http://{self.host}:{self.port}"
        self.timeout = timeout
        self.deadline = deadline
        self.client_id = uuid.uuid4().hex
        self.running: str | None = None  # the prompt this client queued and has not seen end

    def _request(self, path: str, data: bytes | None = None, headers: dict | None = None,
                 timeout: float | None = None) -> dict:
        """JSON answer of ``path`` (POST when ``data``); ``timeout`` given: that long, whatever the deadline."""
        cap = 60.0 if timeout is None else timeout
        wait = _wait(cap, self.deadline if timeout is None else None)
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=wait) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            raise ClientError(f"{path} answered HTTP {e.code}: {_describe_error(e.read())}") from None
        except (OSError, http.client.HTTPException) as e:
            if wait < cap and isinstance(getattr(e, "reason", e), TimeoutError):
                raise TimedOut() from None
            raise ClientError(f"ComfyUI is not reachable at {self.base} ({getattr(e, 'reason', e)}); "
                              "start it or pass --server HOST:PORT") from None
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ClientError(f"{self.base}{path} did not answer a JSON object; is ComfyUI running there?")
        return answer

    def node_inputs(self, class_type: str) -> list[str] | None:
        """The inputs node class ``class_type`` takes on this server (required, then optional), or None where the
        server does not know the class."""
        info = self._request(f"/object_info/{urllib.parse.quote(class_type, safe='')}").get(class_type)
        spec = info.get("input") if isinstance(info, dict) else None
        if not isinstance(spec, dict):
            return None
        return [name for part in ("required", "optional") if isinstance(spec.get(part), dict) for name in spec[part]]

    def upload_image(self, path: Path) -> str:
        """Upload ``path`` to ComfyUI's input folder; returns the name a LoadImage node takes.

        The file goes up as :func:`upload_name` (its sanitised stem + a hash of its bytes) without ComfyUI's
        ``overwrite``: a same-named file of another user is never replaced (ComfyUI renames ours, or finds
        this very content already there and keeps it), and the name is safe in the multipart header.
        """
        check_image(path)
        try:
            content = Path(path).read_bytes()
        except OSError as e:
            raise ClientError(f"image {str(path)!r} cannot be read ({e.strerror})") from None
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
                f"filename=\"{upload_name(path, content)}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode("ascii") + content + (
                f"\r\n--{boundary}--\r\n").encode("ascii")
        answer = self._request("/upload/image", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if "name" not in answer:
            raise ClientError(f"/upload/image answered without a file name: {answer}")
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]

    def queue(self, workflow: dict) -> str:
        """Queue ``workflow`` under an id chosen here (so it can be stopped even before ComfyUI answers)."""
        self.running = uuid.uuid4().hex
        try:
            answer = self._request("/prompt", json.dumps({"prompt": workflow, "client_id": self.client_id,
                                                          "prompt_id": self.running}).encode(), JSON)
        except ClientError:
            self.running = None
            raise
        self.running = str(answer.get("prompt_id") or self.running)  # an older ComfyUI picks its own
        return self.running

    def history(self, prompt_id: str, wait: float = 10.0) -> dict:
        """The prompt's ``/history`` entry, waiting up to ``wait`` seconds for ComfyUI to write it."""
        until = time.monotonic() + wait
        while True:
            entry = self._request(f"/history/{prompt_id}").get(prompt_id, {})
            if entry or time.monotonic() > until:
                return entry
            time.sleep(0.1)

    def interrupt(self, prompt_id: str | None = None, timeout: float | None = None) -> None:
        """Interrupt ``prompt_id`` if it is the one running (any running prompt on an older ComfyUI, or without an id)."""
        self._request("/interrupt", json.dumps({"prompt_id": prompt_id} if prompt_id else {}).encode(), JSON, timeout)

    def cancel(self, prompt_id: str) -> bool:
        """Stop ``prompt_id`` whether it still waits in the queue or runs; False if ComfyUI did not answer."""
        try:
            self._request("/queue", json.dumps({"delete": [prompt_id]}).encode(), JSON, timeout=5)
            self.interrupt(prompt_id, timeout=5)
        except ClientError:
            return False
        return True

    def websocket(self) -> "WebSocket":
        return WebSocket(self.host, self.port, f"/ws?clientId={self.client_id}", self.timeout, self.deadline)


def upload_name(path: Path, content: bytes) -> str:
    """The name an image is uploaded under: ``<stem>-<16 hex digits of its SHA-256><.suffix>``, e.g.
    ``photo-3f2a9c0d1e4b5a67.png``. Only ``A-Z a-z 0-9 _ - .`` (one dot, before a short suffix): no quote,
    CR/LF or non-ASCII character to escape in the multipart header, no path, the same on every file system;
    the hash keeps different contents apart."""
    ascii_stem = unicodedata.normalize("NFKD", Path(path).stem).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_stem).strip("_-")[:40] or "image"
    suffix = Path(path).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""
    return f"{stem}-{hashlib.sha256(content).hexdigest()[:16]}{suffix}"


def _describe_error(body: bytes) -> str:
    """ComfyUI's error JSON ({error: {message}, node_errors: {id: {errors, class_type}}}) as one line."""
    text = body.decode("utf-8", "replace")
    try:
        err = json.loads(text)
    except json.JSONDecodeError:
        return " ".join(text.split())[:300]
    if not isinstance(err, dict):
        return str(err)[:300]
    e = err.get("error", err)
    out = str(e.get("message", e)) if isinstance(e, dict) else str(e)
    for node_id, info in (err.get("node_errors") or {}).items():
        for item in (info.get("errors", []) if isinstance(info, dict) else []):
            out += f"; node {node_id} ({info.get('class_type')}): {item.get('message')} {item.get('details', '')}".rstrip()
    return " ".join(out.split())


class WebSocket:
    """The smallest RFC 6455 client that reads ComfyUI's messages (text and binary frames)."""

    def __init__(self, host: str, port: int, path: str, timeout: float, deadline: float | None = None):
        self.timeout, self.deadline = timeout, deadline
        wait = _wait(timeout, deadline)
        try:
            self.sock = socket.create_connection((host, port), timeout=wait)
        except OSError as e:
            if wait < timeout and isinstance(e, TimeoutError):
                raise TimedOut() from None
            raise ClientError(f"ComfyUI is not reachable at http://{host}:{port} ({e}); "
                              "start it or pass --server HOST:PORT") from None
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self._read(1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ClientError(f"websocket upgrade refused: {status.decode('latin-1')}; is ComfyUI running there?")

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            wait = _wait(self.timeout, self.deadline)
            self.sock.settimeout(wait)
            try:
                chunk = self.sock.recv(n - len(data))
            except TimeoutError:
                if wait < self.timeout:
                    continue  # the deadline's share ran out: the next _wait raises TimedOut
                raise ClientError(f"ComfyUI sent nothing for {self.timeout:g} s") from None
            except OSError as e:
                raise ClientError(f"the websocket to ComfyUI failed ({e})") from None
            if not chunk:
                raise ClientError("ComfyUI closed the websocket before the prompt finished")
            data += chunk
        return data

    def receive(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next complete message; answers pings."""
        while True:
            b1, b2 = self._read(2)
            opcode, length = b1 & 0x0F, b2 & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b2 & 0x80 else None
            payload = self._read(length)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            if opcode == 9:
                self._send(10, payload)
                continue
            return opcode, payload

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        head = bytes([0x80 | opcode, 0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | opcode, 0xFE]) + struct.pack(">H", len(payload))
        self.sock.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))

    def close(self) -> None:
        """Say goodbye if the connection still works, and close it."""
        try:
            self._send(8, b"")
        except OSError:
            pass
        finally:
            self.sock.close()


def follow(ws: WebSocket, prompt_id: str, progress: Progress) -> str:
    """Show progress until the prompt ends; returns 'success', 'error' or 'interrupted'."""
    while True:
        opcode, payload = ws.receive()
        if opcode == 8:
            raise ClientError("ComfyUI closed the websocket before the prompt finished")
        if opcode == 2:  # binary: 4-byte event type; 3 = text shown on a node
            if len(payload) > 8 and struct.unpack(">I", payload[:4])[0] == 3:
                n = struct.unpack(">I", payload[4:8])[0]
                progress.show(payload[8 + n:].decode("utf-8", "replace").replace("\n", "  "))
            continue
        try:
            msg = json.loads(payload)
        except ValueError:
            continue
        kind, data = (msg.get("type"), msg.get("data")) if isinstance(msg, dict) else (None, None)
        if not isinstance(data, dict) or data.get("prompt_id") not in (None, prompt_id):
            continue
        if kind == "execution_error":
            progress.end()
            print(f"pez-client: node {data.get('node_id')} ({data.get('node_type')}) failed: "
                  f"{str(data.get('exception_message', '')).strip()}", file=sys.stderr)
            return "error"
        if kind == "execution_interrupted":
            return "interrupted"
        if kind == "executing" and data.get("node") is None:  # sent after ComfyUI has written /history
            return "success"


SHOWN = re.compile(r"\n\nsimilarity ([-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf))")  # the nodes' _shown text


def prompts_from_history(workflow: dict, entry: dict) -> dict[str, str]:
    """Learned prompts by node id, from the PEZ nodes' ``ui`` text in ``/history`` (a node with one prompt
    per image: its first; ``all_prompts_from_history`` gives every one)."""
    return {node_id: texts[0] for node_id, texts in all_prompts_from_history(workflow, entry).items()}


def all_prompts_from_history(workflow: dict, entry: dict) -> dict[str, list[str]]:
    """Every learned prompt by node id (PEZ Invert in mode 'per image' shows one text per image)."""
    return {node_id: [text.split("\n\nsimilarity")[0] for text in texts]
            for node_id, texts in _shown_texts(workflow, entry).items()}


def similarities_from_history(workflow: dict, entry: dict) -> dict[str, float | None]:
    """The similarity of each node's (first) prompt, as the node shows it ("... similarity 0.1234 · N steps");
    None where the text has none."""
    out = {}
    for node_id, texts in _shown_texts(workflow, entry).items():
        found = SHOWN.search(texts[0])
        value = float(found.group(1)) if found else None
        out[node_id] = value if value is not None and math.isfinite(value) else None
    return out


def _shown_texts(workflow: dict, entry: dict) -> dict[str, list[str]]:
    """The texts each PEZ node put in its ``ui`` (``/history`` keeps the ``ui``, not the node's outputs)."""
    out = {}
    for node_id, output in (entry.get("outputs") or {}).items():
        texts = output.get("text") if isinstance(output, dict) else None
        if workflow.get(node_id, {}).get("class_type") in PEZ_NODES and texts:
            out[node_id] = [str(text) for text in texts]
    return out


def prepare(args: argparse.Namespace) -> dict:
    """The workflow to post, checked locally (file, overrides, images, timeout) before any network."""
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ClientError(f"--timeout {args.timeout:g}: give a positive number of seconds")
    workflow = load_api_workflow(args.workflow)
    apply_overrides(workflow, args.set)
    loaders = [k for k, v in workflow.items() if v["class_type"] == "LoadImage"]
    if len(args.image) > len(loaders):
        raise ClientError(f"{len(args.image)} image(s) given but the workflow has {len(loaders)} LoadImage node(s); "
                          "pass at most one --image per LoadImage node")
    for path in args.image:
        check_image(path)
    return workflow


def run(comfy: Comfy, workflow: dict, images: list[Path], progress: Progress) -> tuple[str, str, dict]:
    """Upload, queue, follow and read back one prompt: (prompt_id, status, prompts)."""
    prompt_id, status, entry = execute(comfy, workflow, images, progress)
    return prompt_id, status, prompts_from_history(workflow, entry)


def execute(comfy: Comfy, workflow: dict, images: list[Path], progress: Progress,
            sets: list[str] = ()) -> tuple[str, str, dict]:
    """Check ``sets`` against the server's node classes, upload, queue and follow one prompt:
    (prompt_id, status, its ``/history`` entry)."""
    if sets:
        check_overrides(comfy, workflow, list(sets))
    loaders = sorted((k for k, v in workflow.items() if v["class_type"] == "LoadImage"),
                     key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    for node_id, path in zip(loaders, images):
        workflow[node_id].setdefault("inputs", {})["image"] = comfy.upload_image(path)
    ws = comfy.websocket()
    try:
        prompt_id = comfy.queue(workflow)
        status = follow(ws, prompt_id, progress)
        comfy.running = None
    finally:
        ws.close()
    return prompt_id, status, comfy.history(prompt_id)


def stop(comfy: Comfy | None) -> str:
    """Stop the prompt still running on the server, if any; says what happened, for the error line."""
    prompt_id = comfy and comfy.running
    if not prompt_id:
        return "nothing left running on the server"
    try:
        stopped = comfy.cancel(prompt_id)
    except KeyboardInterrupt:
        stopped = False
    return (f"stopped prompt {prompt_id} on the server" if stopped
            else f"could not reach ComfyUI to stop prompt {prompt_id}; stop it there")


def _fail(progress: Progress, line: str, code: int) -> int:
    progress.end()
    print(f"pez-client: {line}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pez_nodes.client", description=__doc__.split("\n\n")[0])
    ap.add_argument("workflow", type=Path, help="API-format workflow JSON (workflows/api/*.json)")
    ap.add_argument("--image", action="append", default=[], type=Path, help="image for the next LoadImage node (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", help="override an input (repeatable)")
    ap.add_argument("--server", default="127.0.0.1:8188", help="ComfyUI address (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds for the whole prompt (default: %(default)s)")
    ap.add_argument("--json", action="store_true",
                    help="print {prompt_id, status, prompts, similarity} as JSON (prompts and similarity by node id)")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ap.add_argument("--folder", type=Path, default=None,
                    help="run the workflow once per image of this folder (its first LoadImage gets the image); one "
                         "line per image: 'file: prompt', or JSON with --json")
    args = ap.parse_args(argv)
    if args.folder is not None:
        return run_folder(args)
    try:
        workflow = prepare(args)
    except ClientError as e:
        return _fail(Progress(True), f"error: {e}", 2)
    outcome = _run_once(args, workflow, args.image, "the prompt", args.set)
    if isinstance(outcome, int):
        return outcome
    prompt_id, status, prompts, similarity = outcome
    if args.json:
        print(json.dumps({"prompt_id": prompt_id, "status": status, "prompts": prompts, "similarity": similarity}))
    else:
        for node_id, text in prompts.items():
            print(text if len(prompts) == 1 else f"{node_id}: {text}")
    return 0 if status == "success" else 1


def _run_once(args: argparse.Namespace, workflow: dict, images: list[Path], what: str, sets: list[str] = ()):
    """``execute`` with the client's error handling: (prompt_id, status, prompts, similarity by node), or the exit
    code after one line."""
    progress, comfy = Progress(args.quiet), None
    try:
        comfy = Comfy(args.server, args.timeout, deadline=time.monotonic() + args.timeout)
        prompt_id, status, entry = execute(comfy, workflow, images, progress, sets)
        outcome = (prompt_id, status, prompts_from_history(workflow, entry), similarities_from_history(workflow, entry))
    except ClientError as e:
        note = f"; {stop(comfy)}" if comfy and comfy.running else ""
        return _fail(progress, f"error: {e}{note}" if what == "the prompt" else f"error at {what}: {e}{note}", 2)
    except TimedOut:
        return _fail(progress, f"{what} did not finish within --timeout {args.timeout:g} s; {stop(comfy)}", 1)
    except KeyboardInterrupt:
        return _fail(progress, f"interrupted (Ctrl-C){'' if what == 'the prompt' else ' at ' + what}; {stop(comfy)}", 130)
    progress.end()
    return outcome


def run_folder(args: argparse.Namespace) -> int:
    """``--folder``: the workflow once per image (a fresh copy each time); 0 when every image succeeded."""
    from ..batch.jobs import list_images

    if args.image:
        return _fail(Progress(True), "error: --folder and --image exclude each other; give one of them", 2)
    try:
        images = list_images(args.folder)
        workflow = prepare(args)
    except (ClientError, ValueError) as e:
        return _fail(Progress(True), f"error: {e}", 2)
    if not any(v["class_type"] == "LoadImage" for v in workflow.values()):
        return _fail(Progress(True), f"error: workflow {str(args.workflow)!r} has no LoadImage node to feed the "
                                     "folder's images to", 2)
    failed = 0
    for i, path in enumerate(images):  # the --set inputs are checked with the server once, before the first image
        outcome = _run_once(args, json.loads(json.dumps(workflow)), [path], path.name, args.set if i == 0 else ())
        if isinstance(outcome, int):
            return outcome
        prompt_id, status, prompts, similarity = outcome
        failed += status != "success"
        if args.json:
            print(json.dumps({"path": str(path), "prompt_id": prompt_id, "status": status, "prompts": prompts,
                              "similarity": similarity}), flush=True)
        else:
            print(f"{path.name}: " + (" | ".join(prompts.values()) if status == "success" else status), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
