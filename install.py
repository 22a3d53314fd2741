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


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``"2.20.0"`` → ``(2, 20, 0)``, ``"2.24.0rc1"`` → ``(2, 24, 0)``."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def _plain_contains(specifier: str, installed: str) -> bool:
    """Without ``packaging``: compare numeric releases for simple specifiers such as ``>=2.20.0``
    (so 2.3 is older than 2.20); anything it cannot read counts as satisfied (presence is enough)."""
    have = _release(installed)
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        op, wanted = re.match(r"(~=|==|!=|<=|>=|<|>)?\s*(.*)", clause).groups()
        want = _release(wanted)
        if not want or op in (None, "~=") or "*" in wanted:
            continue
        width = max(len(have), len(want))
        a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        ok = {"==": a == b, "!=": a != b, "<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b}[op]
        if not ok:
            return False
    return True


def _satisfied(requirement: str) -> bool:
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip()
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return _plain_contains(requirement[len(name):].split(";")[0].strip(), installed)
    return Requirement(requirement).specifier.contains(installed, prereleases=True)


def missing_requirements(path: Path = HERE / "requirements.txt") -> list[str]:
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    reqs = [ln for ln in lines if ln and re.split(r"[<>=!~;\[ ]", ln, maxsplit=1)[0].lower() not in NEVER]
    return [r for r in reqs if not _satisfied(r)]


def _torch_pins() -> list[str]:
    """``name==version`` for each torch package installed, so pip keeps them as they are."""
    pins = []
    for name in sorted(NEVER):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return pins


def main(requirements: Path = HERE / "requirements.txt") -> int:
    """Install the missing lines of ``requirements`` under torch pins; the pins' temporary file is removed."""
    todo = missing_requirements(Path(requirements))
    if not todo:
        print("[pez] all requirements are installed")
        return 0
    pins = _torch_pins()
    with tempfile.NamedTemporaryFile("w", prefix="pez-constraints-", suffix=".txt", delete=False) as f:
        f.write("\n".join(pins) + "\n")
    try:
        print(f"[pez] installing {', '.join(todo)} (keeping {', '.join(pins) or 'no torch'})")
        return subprocess.call([sys.executable, "-m", "pip", "install", "-c", f.name, *todo])
    finally:
        Path(f.name).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
