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
