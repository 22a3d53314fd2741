"""Test helper: a real Forge / AUTOMATIC1111 webui started headless on the CPU with this repository as an
extension (``FORGE_DIR`` / ``A1111_DIR`` name them; docs/testing.md says how to set one up)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = {  # a headless start on the CPU
    "forge": ["--always-cpu"],
    "a1111": ["--skip-torch-cuda-test", "--use-cpu", "all", "--no-half", "--precision", "full"],
}
NO_CHECKPOINT = {"forge": [], "a1111": ["--skip-load-model-at-start"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, path: str, body: dict | None = None, timeout: float = 300, auth: str | None = None,
         raw: bytes | None = None) -> tuple[int, dict]:
    """(status, JSON answer) of a GET (``body`` None) or POST; ``auth``: ``user:pass``; ``raw``: a body as sent."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        text = e.read() or b"{}"
        try:
            return e.code, json.loads(text)
        except json.JSONDecodeError:
            return e.code, {"raw": text.decode(errors="replace")}


@contextlib.contextmanager
def running_webui(name: str, folder: Path, log: Path, extra: list[str], env: dict | None = None,
                  start_s: float = 180, api: bool = True, auth: str | None = None, probe: bool = False):
    """The webui ``name`` at ``folder`` serving its API (``api``; with ``--api-auth auth`` when given) and page,
    with this repository linked into its ``extensions/`` (and ``probe``: the test probe ``tests/webui_probe``);
    yields its base URL. ``extra``: more launch flags. Stopped and unlinked afterwards."""
    link = folder / "extensions" / "pez-under-test"
    probe_link = folder / "extensions" / f"pez-probe-{os.getpid()}"
    for old in (link, probe_link):
        if old.is_symlink() or old.exists():
            old.unlink()
    link.symlink_to(ROOT, target_is_directory=True)
    if probe:
        probe_link.symlink_to(ROOT / "tests" / "webui_probe", target_is_directory=True)
    port = free_port()
    cmd = [str(folder / "venv" / "bin" / "python"), "launch.py", "--skip-prepare-environment", *FLAGS[name], *extra,
           *(["--api"] if api else []), *(["--api-auth", auth] if auth else []), "--skip-version-check", "--no-download-sd-model", "--server-name", "127.0.0.1",
           "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=folder, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": "", **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + start_s
        while time.time() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                # ready when the extension's routes answer (the page and /sdapi come up a moment before them);
                # without the API, when the extension has said so
                if api and call(base, "/sdapi/v1/scripts", timeout=5, auth=auth)[0] == 200 and \
                        call(base, "/pez/v1/distill", {}, timeout=5, auth=auth)[0] == 400:
                    break
                if not api and "[pez] the webui serves no API" in log.read_text() and \
                        call(base, "/internal/ping", timeout=5)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(1)
        else:
            raise AssertionError(f"{name} did not serve its API within {start_s:.0f} s:\n" + log.read_text()[-3000:])
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        link.unlink()
        if probe_link.is_symlink():
            probe_link.unlink()
