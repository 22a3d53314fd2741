"""install.py (what ComfyUI-Manager runs): idempotent, never touches torch; packaging metadata agrees."""

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("pez_install", ROOT / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def test_second_run_installs_nothing():
    out = subprocess.run([sys.executable, str(ROOT / "install.py")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "all requirements are installed" in out.stdout


def test_torch_lines_are_never_installed_and_missing_ones_are_found(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("torch>=99\ntorchvision\nnumpy\nsurely-not-installed-pkg-xyz>=1\npillow>=1.0  # comment\n")
    assert install.missing_requirements(req) == ["surely-not-installed-pkg-xyz>=1"]


def test_requirements_and_pyproject_agree_and_leave_torch_alone():
    reqs = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln.strip()]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(reqs) == sorted(project["dependencies"])
    assert not any(r.split(">")[0].split("=")[0].strip().lower() in ("torch", "torchvision", "torchaudio") for r in reqs)
    assert all(not r.startswith("-") for r in reqs)  # ComfyUI-Manager pip-installs each line
    assert project["scripts"]["pez"] == "pez_nodes.cli:main"
