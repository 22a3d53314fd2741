"""Run a PEZ workflow on a running ComfyUI, headless, with the standard library only.

    python -m pez_nodes.client workflows/api/pez_invert_toy.json --image photo.png
    python -m pez_nodes.client workflows/api/pez_distill_toy.json --set 2.text="a long prompt ..." --json

Uploads the images (assigned to the workflow's LoadImage nodes in order), posts the API-format
workflow, follows progress and the live best prompt over ComfyUI's websocket, and prints the learned
prompt(s) from ``/history``. Exit status 0 on success, 1 on a failed or interrupted prompt, 2 on bad
input or an unreachable server.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

PEZ_NODES = ("PEZInvert", "PEZDistill", "PEZPromptConcat")


class ClientError(Exception):
    """A problem the user can fix (bad workflow, missing file, server unreachable)."""


def load_api_workflow(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClientError(f"workflow {str(path)!r} does not exist") from None
    except json.JSONDecodeError as e:
        raise ClientError(f"workflow {str(path)!r} is not JSON ({e})") from None
    if "nodes" in data and "links" in data:
        raise ClientError(f"workflow {str(path)!r} is in ComfyUI's UI format; POST /prompt needs the API format "
                          "(workflows/api/<name>.json, or 'Export (API)' in ComfyUI)")
    if not all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        raise ClientError(f"workflow {str(path)!r} is not an API-format workflow ({{id: {{class_type, inputs}}}})")
    return data


def apply_overrides(workflow: dict, sets: list[str]) -> None:
    """``NODE.INPUT=VALUE`` overrides; VALUE is parsed as JSON when it can be (numbers, booleans)."""
    for item in sets:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot or node not in workflow:
            raise ClientError(f"--set {item!r}: write NODE_ID.INPUT=VALUE with a node id of the workflow")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        workflow[node]["inputs"][name] = parsed


class Comfy:
    """A ComfyUI server at ``host:port``."""

    def __init__(self, server: str, timeout: float = 600.0):
        self.host, _, port = server.replace("http://", "").rstrip("/").partition(":")
        self.port = int(port or 8188)
        self.base = f"http://{self.host}:{self.port}"
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    def _request(self, path: str, data: bytes | None = None, headers: dict | None = None) -> dict:
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")
            try:
                err = json.loads(body)
            except json.JSONDecodeError:
                err = {"error": body[:500]}
            raise ClientError(f"{path} answered HTTP {e.code}: {_describe_error(err)}") from None
        except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
            raise ClientError(f"ComfyUI is not reachable at {self.base} ({e}); start it or pass --server HOST:PORT") from None

    def upload_image(self, path: Path) -> str:
        if not Path(path).is_file():
            raise ClientError(f"image {str(path)!r} does not exist")
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{Path(path).name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + Path(path).read_bytes() + (
                f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n--{boundary}--\r\n"
                ).encode()
        answer = self._request("/upload/image", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]

    def queue(self, workflow: dict) -> str:
        answer = self._request("/prompt", json.dumps({"prompt": workflow, "client_id": self.client_id}).encode(),
                               {"Content-Type": "application/json"})
        return answer["prompt_id"]

    def history(self, prompt_id: str, wait: float = 10.0) -> dict:
        """The prompt's ``/history`` entry, waiting up to ``wait`` seconds for ComfyUI to write it."""
        deadline = time.monotonic() + wait
        while True:
            entry = self._request(f"/history/{prompt_id}").get(prompt_id, {})
            if entry or time.monotonic() > deadline:
                return entry
            time.sleep(0.1)

    def interrupt(self) -> None:
        self._request("/interrupt", b"{}", {"Content-Type": "application/json"})

    def websocket(self) -> "WebSocket":
        return WebSocket(self.host, self.port, f"/ws?clientId={self.client_id}", self.timeout)


def _describe_error(err: dict) -> str:
    e = err.get("error", err)
    text = e.get("message", str(e)) if isinstance(e, dict) else str(e)
    for node_id, info in (err.get("node_errors") or {}).items():
        for item in info.get("errors", []):
            text += f"; node {node_id} ({info.get('class_type')}): {item.get('message')} {item.get('details', '')}".rstrip()
    return text


class WebSocket:
    """The smallest RFC 6455 client that reads ComfyUI's messages (text and binary frames)."""

    def __init__(self, host: str, port: int, path: str, timeout: float):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ClientError("the websocket closed during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ClientError(f"websocket upgrade refused: {head.splitlines()[0].decode()}")

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ClientError("ComfyUI closed the websocket")
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
        try:
            self._send(8, b"")
        finally:
            self.sock.close()


def follow(ws: WebSocket, prompt_id: str, quiet: bool) -> str:
    """Print progress to stderr until the prompt ends; returns 'success', 'error' or 'interrupted'."""
    while True:
        opcode, payload = ws.receive()
        if opcode == 8:
            raise ClientError("ComfyUI closed the websocket before the prompt finished")
        if opcode == 2:  # binary: 4-byte event type; 3 = text shown on a node
            if len(payload) > 8 and struct.unpack(">I", payload[:4])[0] == 3 and not quiet:
                n = struct.unpack(">I", payload[4:8])[0]
                text = payload[8 + n:].decode("utf-8", "replace").replace("\n", "  ")
                sys.stderr.write(f"\r{text[:150]:<150}")
            continue
        msg = json.loads(payload)
        kind, data = msg.get("type"), msg.get("data", {})
        if data.get("prompt_id") not in (None, prompt_id):
            continue
        if kind == "execution_error":
            if not quiet:
                sys.stderr.write("\n")
            print(f"pez-client: node {data.get('node_id')} ({data.get('node_type')}) failed: "
                  f"{data.get('exception_message', '').strip()}", file=sys.stderr)
            return "error"
        if kind == "execution_interrupted":
            return "interrupted"
        if kind == "executing" and data.get("node") is None:  # sent after ComfyUI has written /history
            if not quiet:
                sys.stderr.write("\n")
            return "success"


def prompts_from_history(workflow: dict, entry: dict) -> dict[str, str]:
    """Learned prompts by node id, from the PEZ nodes' ``ui`` text in ``/history``."""
    out = {}
    for node_id, output in (entry.get("outputs") or {}).items():
        if workflow.get(node_id, {}).get("class_type") in PEZ_NODES and output.get("text"):
            out[node_id] = output["text"][0].split("\n\nsimilarity")[0]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pez_nodes.client", description=__doc__.split("\n\n")[0])
    ap.add_argument("workflow", type=Path, help="API-format workflow JSON (workflows/api/*.json)")
    ap.add_argument("--image", action="append", default=[], type=Path, help="image for the next LoadImage node (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", help="override an input (repeatable)")
    ap.add_argument("--server", default="127.0.0.1:8188", help="ComfyUI address (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the prompt (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print {prompt_id, status, prompts} as JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    try:
        workflow = load_api_workflow(args.workflow)
        apply_overrides(workflow, args.set)
        comfy = Comfy(args.server, args.timeout)
        loaders = sorted((k for k, v in workflow.items() if v["class_type"] == "LoadImage"), key=lambda k: int(k) if k.isdigit() else k)
        if len(args.image) > len(loaders):
            raise ClientError(f"{len(args.image)} images given but the workflow has {len(loaders)} LoadImage nodes")
        for node_id, path in zip(loaders, args.image):
            workflow[node_id]["inputs"]["image"] = comfy.upload_image(path)
        ws = comfy.websocket()
        try:
            prompt_id = comfy.queue(workflow)
            status = follow(ws, prompt_id, args.quiet)
        finally:
            ws.close()
        prompts = prompts_from_history(workflow, comfy.history(prompt_id))
    except ClientError as e:
        print(f"pez-client: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"prompt_id": prompt_id, "status": status, "prompts": prompts}))
    else:
        for node_id, text in prompts.items():
            print(text if len(prompts) == 1 else f"{node_id}: {text}")
    return 0 if status == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
