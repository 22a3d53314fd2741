"""ComfyUI-Manager runs this after installing the pack: install what is missing, never touch torch.

    python install.py            # idempotent: a second run installs nothing

Each line of requirements.txt that is not satisfied is installed with pip, under a constraints file
that pins the torch / torchvision already installed, so pip can never replace the user's torch.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEVER = {"torch", "torchvision", "torchaudio"}


def _satisfied(requirement: str) -> bool:
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip()
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    try:
        from packaging.requirements import Requirement
    except ImportError:  # without packaging, presence is enough
        return True
    return Requirement(requirement).specifier.contains(installed, prereleases=True)


def missing_requirements(path: Path = HERE / "requirements.txt") -> list[str]:
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    reqs = [ln for ln in lines if ln and re.split(r"[<>=!~;\[ ]", ln, maxsplit=1)[0].lower() not in NEVER]
    return [r for r in reqs if not _satisfied(r)]


def main() -> int:
    todo = missing_requirements()
    if not todo:
        print("[pez] all requirements are installed")
        return 0
    pins = []
    for name in sorted(NEVER):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(pins) + "\n")
    print(f"[pez] installing {', '.join(todo)} (keeping {', '.join(pins) or 'no torch'})")
    return subprocess.call([sys.executable, "-m", "pip", "install", "-c", f.name, *todo])


if __name__ == "__main__":
    sys.exit(main())
