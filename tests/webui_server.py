"""Test helper: a real Forge / AUTOMATIC1111 webui started headless on the CPU with this repository as an
extension (``../shared/webui/prepare.sh`` lays them out; ``FORGE_DIR`` / ``A1111_DIR`` name them)."""

from __future__ import annotations

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
FLAGS = {  # ../shared/webui/prepare.sh's headless CPU start
    "forge": ["--always-cpu"],
    "a1111": ["--skip-torch-cuda-test", "--use-cpu", "all", "--no-half", "--precision", "full"],
}
NO_CHECKPOINT = {"forge": [], "a1111": ["--skip-load-model-at-start"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, path: str, body: dict | None = None, timeout: float = 300) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@contextlib.contextmanager
def running_webui(name: str, folder: Path, log: Path, extra: list[str], env: dict | None = None,
                  start_s: float = 180):
    """The webui ``name`` at ``folder`` serving its API (and page) with this repository linked into its
    ``extensions/``; yields its base URL. ``extra``: more launch flags. Stopped and unlinked afterwards."""
    link = folder / "extensions" / "pez-under-test"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(ROOT, target_is_directory=True)
    port = free_port()
    cmd = [str(folder / "venv" / "bin" / "python"), "launch.py", "--skip-prepare-environment", *FLAGS[name], *extra,
           "--api", "--skip-version-check", "--no-download-sd-model", "--server-name", "127.0.0.1",
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
                # ready when the extension's routes answer (the page and /sdapi come up a moment before them)
                if call(base, "/sdapi/v1/scripts", timeout=5)[0] == 200 and call(base, "/pez/v1/distill", {},
                                                                                  timeout=5)[0] == 400:
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
