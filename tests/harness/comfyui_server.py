"""Start a real ComfyUI with this pack linked into ``custom_nodes/`` — for host tests and benchmarks.

    with running_comfyui("/opt/ComfyUI") as server:      # server: a started ComfyProcess
        print(server.address, server.rss_mb())

Standard library only. ComfyUI runs on the CPU, on one OpenMP thread (two threads competing with
another busy process were ~60× slower on a 2-core machine), with the model hub switched off.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]  # tests/harness/comfyui_server.py -> the repository's root


def comfy_python(comfy_dir: str | Path) -> str:
    """``COMFYUI_PYTHON``, else ``COMFY/venv/bin/python`` if present, else this interpreter."""
    venv = Path(comfy_dir) / "venv" / "bin" / "python"
    return os.environ.get("COMFYUI_PYTHON") or (str(venv) if venv.exists() else sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyProcess:
    """A running ComfyUI server process and where it listens."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path, link: Path):
        self.proc, self.port, self.log, self.link = proc, port, log, link
        self.address = f"127.0.0.1:{port}"

    def rss_mb(self) -> float:
        """The server process's resident memory (Linux ``/proc``), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("VmRSS not found")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@contextmanager
def running_comfyui(comfy_dir: str | Path, log: Path, python: str | None = None, startup_s: float = 120,
                    extra_args: tuple[str, ...] = (), link_name: str | None = None):
    """Link the pack into ``comfy_dir/custom_nodes`` (as ``link_name``, default one per process), start
    ComfyUI (with ``extra_args``), wait for ``/system_stats``; stop on exit."""
    comfy = Path(comfy_dir)
    link = comfy / "custom_nodes" / (link_name or f"pez_host_test_{os.getpid()}")
    if not link.exists():
        link.symlink_to(PACK_ROOT, target_is_directory=True)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([python or comfy_python(comfy), "main.py", "--cpu", "--listen", "127.0.0.1",
                                 "--port", str(port), "--disable-auto-launch", *extra_args],
                                cwd=comfy, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = ComfyProcess(proc, port, log, link)
    try:
        deadline = time.monotonic() + startup_s
        while proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://{server.address}/system_stats", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ComfyUI did not start in {startup_s:.0f} s; log: {server.log_tail()}")
                time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited at start (status {proc.returncode}); log: {server.log_tail()}")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        link.unlink(missing_ok=True)
