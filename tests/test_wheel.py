"""A non-editable install (a built wheel) carries the bundled toy model and loads it.

The wheel is built offline from a copy of the package (no build isolation, no dependencies), so the
repository's own tree gets no build/ or egg-info folders.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "pez_nodes" / "models" / "toy"
LOADER_READS = ("open_clip_config.json", "open_clip_model.safetensors", "pez_vocabulary.txt")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "pez_nodes", src / "pez_nodes", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
           "-w", str(out), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (found,) = out.glob("pez_hard_prompts-*.whl")
    return found


def test_wheel_holds_every_file_of_the_toy_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in LOADER_READS:
        assert (TOY / name).is_file(), name
    shipped = sorted(p.name for p in TOY.iterdir() if p.is_file())
    missing = [n for n in shipped if f"pez_nodes/models/toy/{n}" not in names]
    assert not missing, f"not in the wheel: {missing}"


def test_wheel_holds_the_reference_clip_the_toy_text_to_image_model_and_the_toy_lms(wheel):
    """``pez eval``, the demo's picture and the LM path need them, and they must stay small."""
    names = set(zipfile.ZipFile(wheel).namelist())
    models = ROOT / "pez_nodes" / "models"
    for folder, limit_mb in (("toy_reference", 16), ("toy_diffusion", 20), ("toy_lm_small", 9), ("toy_lm_large", 13)):
        files = [p for p in (models / folder).rglob("*") if p.is_file()]
        assert files and sum(p.stat().st_size for p in files) <= limit_mb * 2**20, folder
        missing = [str(p.relative_to(ROOT)) for p in files if str(p.relative_to(ROOT)) not in names]
        assert not missing, f"not in the wheel: {missing}"



def test_wheel_ships_no_test_harness(wheel):
    """The browser driver and the ComfyUI launcher are the tests' (``tests/harness/``), not the package's."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for gone in ("pez_nodes/browser.py", "pez_nodes/comfy/browser.py", "pez_nodes/comfy/launch.py"):
        assert gone not in names, gone
    assert not [n for n in names if n.startswith(("tests/", "harness/")) or "/harness/" in n], sorted(names)
    assert "pez_nodes/comfy/prompt_syntax.py" in names

def test_installed_wheel_loads_the_toy_model_with_its_declared_vocabulary(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs by unpacking
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1])\n"
        "import pez_nodes\n"
        "from pez_nodes.core import TOY_DIR, load_clip\n"
        "m = load_clip('toy', vocabulary='declared')\n"
        "print(json.dumps([pez_nodes.__file__, str(TOY_DIR), len(m.vocabulary_ids)]))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    package, toy_dir, words = json.loads(done.stdout.strip().splitlines()[-1])
    assert package.startswith(str(site)) and toy_dir.startswith(str(site)), (package, toy_dir)
    assert words >= 20
