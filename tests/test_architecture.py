"""The floors of ``ARCHITECTURE.md``, checked from the code's own imports (every ``import`` statement in the
shipped package, those inside functions included), so the picture there stays true:

* no file imports a file of a higher floor (core < capabilities < front ends);
* front ends do not import each other (the two documented client aliases aside);
* outside the core, only ``pez_nodes.core``'s public names are used, never its inner modules;
* inside the core, ``clip/`` (the frozen model) and ``optim/`` (Algorithm 1) do not import each other, and
  neither imports ``api.py`` or the core's face;
* no import circle between files.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pez_nodes"

FLOORS = {  # top-level room → floor (ARCHITECTURE.md)
    "core": 0,
    "toyworld": 1, "model_choices": 1, "batch": 1, "lm": 1, "generate": 1, "evaluate": 1,
    "cli": 2, "comfy": 2, "webui": 2, "clients": 2, "client": 2,
}
FRONT_END_OF = {"client": "clients"}  # ``python -m pez_nodes.client``: the ComfyUI client's documented name
ALIASES = {("pez_nodes.webui.client", "pez_nodes.clients.webui")}  # ``python -m pez_nodes.webui.client``
CORE_INNER = {"device": 0, "bundled": 0, "clip": 1, "optim": 1, "defaults": 2, "api": 3}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = ROOT / name.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """The pez_nodes modules ``path`` imports (a ``from X import name`` of a submodule counts as that submodule)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            subs = [f"{source}.{a.name}" for a in node.names if _is_module(f"{source}.{a.name}")]
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(source)
    return {name for name in found if name == "pez_nodes" or name.startswith("pez_nodes.")}


def _graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py") if "models" not in p.relative_to(PACKAGE).parts]
    return {_module_name(p): _imports(p) for p in files}


GRAPH = _graph()


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_room_of_the_package_has_a_floor():
    rooms = {_room(m) for m in GRAPH} - {""}
    assert rooms <= set(FLOORS), f"new rooms without a floor: {sorted(rooms - set(FLOORS))}; add them to " \
                                 "ARCHITECTURE.md and to FLOORS here"


def upward_or_sideways(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for src, targets in graph.items():
        for dst in targets:
            a, b = _room(src), _room(dst)
            if not a or not b or a == b or (src, dst) in ALIASES:
                continue
            if FLOORS[b] > FLOORS[a]:
                wrong.append(f"{src} (floor {FLOORS[a]}) imports {dst} (floor {FLOORS[b]})")
            elif FLOORS[a] == FLOORS[b] == 2 and FRONT_END_OF.get(a, a) != FRONT_END_OF.get(b, b):
                wrong.append(f"front end {src} imports front end {dst}")
    return wrong


def core_insides(graph: dict[str, set[str]]) -> list[str]:
    """Imports of the core's inner modules from outside, and imports across or up the core's inner floors."""
    wrong = []
    for src, targets in graph.items():
        if _room(src) != "core":
            wrong += [f"{src} imports {dst}; import the name from pez_nodes.core" for dst in targets
                      if dst.startswith("pez_nodes.core.")]
            continue
        if src == "pez_nodes.core":
            continue
        here = src.split(".")[2]
        for dst in targets:
            there = dst.split(".")[2] if dst.startswith("pez_nodes.core.") else None
            if dst == "pez_nodes.core" or (there and there != here and CORE_INNER[there] >= CORE_INNER[here]):
                wrong.append(f"{src} imports {dst}")
    return wrong


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of files that import each other (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1 or node in graph[node]:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_file_imports_a_higher_floor_and_front_ends_do_not_import_each_other():
    wrong = upward_or_sideways(GRAPH)
    assert not wrong, "\n".join(wrong)


def test_outside_the_core_only_its_public_names_and_inside_clip_and_optim_stand_apart_under_the_pipeline():
    wrong = core_insides(GRAPH)
    assert not wrong, "\n".join(wrong)


def test_no_import_circles_between_files():
    found = circles(GRAPH)
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_checks_find_what_they_look_for():
    """The checker on a made-up package: each kind of violation is reported, and a clean graph passes."""
    bad = {
        "pez_nodes.lm.tune": {"pez_nodes.cli.main", "pez_nodes.core.optim.loop"},
        "pez_nodes.webui.routes": {"pez_nodes.comfy.nodes"},
        "pez_nodes.core.optim.loop": {"pez_nodes.core.clip.backbone"},
        "pez_nodes.core.clip.loading": {"pez_nodes.core"},
        "pez_nodes.cli.main": {"pez_nodes.cli.common"}, "pez_nodes.cli.common": {"pez_nodes.cli.main"},
        "pez_nodes.comfy.nodes": set(), "pez_nodes.core.clip.backbone": set(), "pez_nodes.core": set(),
    }
    assert upward_or_sideways(bad) == ["pez_nodes.lm.tune (floor 1) imports pez_nodes.cli.main (floor 2)",
                                       "front end pez_nodes.webui.routes imports front end pez_nodes.comfy.nodes"]
    assert sorted(core_insides(bad)) == sorted([
        "pez_nodes.lm.tune imports pez_nodes.core.optim.loop; import the name from pez_nodes.core",
        "pez_nodes.core.optim.loop imports pez_nodes.core.clip.backbone",
        "pez_nodes.core.clip.loading imports pez_nodes.core"])
    assert circles(bad) == [["pez_nodes.cli.common", "pez_nodes.cli.main"]]
    clean = {"pez_nodes.cli.main": {"pez_nodes.core", "pez_nodes.lm.tune"}, "pez_nodes.lm.tune": {"pez_nodes.core"},
             "pez_nodes.core": {"pez_nodes.core.api"}, "pez_nodes.core.api": {"pez_nodes.core.clip.loading"},
             "pez_nodes.core.clip.loading": {"pez_nodes.core.device"}, "pez_nodes.core.device": set()}
    assert upward_or_sideways(clean) == core_insides(clean) == circles(clean) == []
