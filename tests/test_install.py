"""install.py (what ComfyUI-Manager runs): idempotent, never touches torch; packaging metadata agrees."""

import importlib.util
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

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


def test_constraints_file_is_removed_even_when_pip_fails(tmp_path, monkeypatch):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # fail fast and offline: the package does not exist anywhere
    req = tmp_path / "requirements.txt"
    req.write_text("pez-nonexistent-package-xyz==0.0.1\n")
    assert install.main(req) != 0
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("packaging", [True, False])
def test_open_clip_minimum_is_compared_as_versions(monkeypatch, packaging):
    """2.20.0 (what A1111 / Forge pin) satisfies the requirement; 2.3.0 and 2.19.9 do not — with or
    without the ``packaging`` module."""
    if not packaging:
        monkeypatch.setitem(sys.modules, "packaging.requirements", None)  # import fails: the fallback runs
    line = next(ln for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln.startswith("open_clip_torch"))
    assert line == "open_clip_torch>=2.20.0"
    for version, ok in (("2.20.0", True), ("3.3.0", True), ("2.24.0rc1", True), ("2.19.9", False), ("2.3.0", False)):
        monkeypatch.setattr(install.metadata, "version", lambda name, v=version: v)
        assert install._satisfied(line) is ok, version
