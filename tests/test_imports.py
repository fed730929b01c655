"""The package's modules import one way: every module imports on its own, and no chain of imports
inside ``samocta`` leads back to where it started.

The graph is read from the source, every ``import`` counted: at module level, inside functions
(the lazy imports that hide a circle at run time) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import samocta

PACKAGE = Path(samocta.__file__).parent


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its ``__init__``)."""
    found = {"samocta": PACKAGE / "__init__.py"}
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="samocta."):
        path = PACKAGE.joinpath(*info.name.split(".")[1:])
        found[info.name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return found


def import_graph(mods: dict[str, Path]) -> dict[str, dict[str, int]]:
    """``module -> {imported module: line}`` for every import of a module of the package."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                # "from samocta.data import folder" imports the module samocta.data.folder
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for target in targets:
                if target in mods and target != name:
                    edges.setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_path(graph, set(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """One closed path through a component: the circle to show in a failure."""
    start = min(component)
    path, seen = [start], {start}
    while True:
        step = next(w for w in sorted(graph[path[-1]]) if w in component and (w == start or w not in seen))
        path.append(step)
        if step == start or len(path) > len(component) + 1:
            return path
        seen.add(step)


def test_no_import_circles_inside_the_package():
    graph = import_graph(modules())
    assert len(graph) > 40  # the walk found the package, not an empty folder
    found = cycles(graph)
    shown = ["  " + " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(c, c[1:])) + f" -> {c[-1]}" for c in found]
    assert not found, "import circles:\n" + "\n".join(shown)


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_a_lazy_import_counts(tmp_path):
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "x.py").write_text("from p.y import f\n")
    (pkg / "y.py").write_text("def f():\n    from p import x\n")
    mods = {"p": pkg / "__init__.py", "p.x": pkg / "x.py", "p.y": pkg / "y.py"}
    assert cycles(import_graph(mods)) == [["p.x", "p.y", "p.x"]]


def test_every_module_imports():
    # __main__ is the command line's entry point: importing it runs the command
    for name in sorted(set(modules()) - {"samocta.__main__"}):
        importlib.import_module(name)
