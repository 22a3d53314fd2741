"""What the README shows, a test runs: its Python example, on the toy model, with real pictures."""

import re
from pathlib import Path

from pez_nodes import toyworld as tw

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    section = README.read_text().split("## Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    for name, scene in {"photo.png": tw.Scene("ring", "orange", "large", "sand"),
                        "a.png": tw.Scene("cross", "blue", "small", "brick"),
                        "b.png": tw.Scene("cross", "red", "small", "brick")}.items():
        tw.render(scene, size=96, seed=0).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    result = scope["result"]
    assert result.text.startswith("a photo of") and len(result.candidates) == 5
    printed = capsys.readouterr().out
    assert printed.strip()  # the first example printed its prompt


ROOT = README.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
REPOSITORY = "https://github.com/pez-nodes/pez"
# words about the machines the project was built on, which mean nothing to a reader
BUILD_MACHINE = [r"\.\./shared", r"this machine", r"no GPU was lent", r"\blent\b"]


def _prose(text: str) -> str:
    """The Markdown without its fenced code blocks (a ``# comment`` there is no heading, a ``[x](y)`` no link)."""
    return re.sub(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", "", text, flags=re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, no punctuation but ``-`` and ``_``, spaces → ``-``."""
    text = re.sub(r"[`*]|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", _prose(path.read_text()), flags=re.M):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_readme_is_short_names_the_repository_and_says_nothing_about_build_machines():
    text = README.read_text()
    assert len(text.splitlines()) <= 220, "README.md is for users: move details into docs/"
    assert REPOSITORY in text
    for path in [README, *DOCS]:
        for word in BUILD_MACHINE:
            found = re.search(word, path.read_text(), flags=re.I)
            assert not found, f"{path.name}: {found.group()!r} is about the build machine, not for readers"


def test_the_test_command_ci_runs_is_between_its_markers():
    """``.ci/run`` runs the lines between the README's test-command markers, less the markers and fences."""
    block = README.read_text().split("<!-- test-command -->", 1)[1].split("<!-- /test-command -->", 1)[0]
    lines = [ln for ln in block.strip().splitlines() if not ln.startswith(("<!--", "```"))]
    assert lines == ["python -m pip install -e '.[test,generate,lm,ray]' && python -m pytest -q -rs"]


def test_every_relative_link_in_the_readme_and_docs_points_to_a_file_and_heading_that_exist():
    broken = []
    for path in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _prose(path.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{path.name}: {target} (no such heading in {dest.name})")
    assert not broken, "\n".join(broken)
