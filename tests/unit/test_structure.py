"""The package's shape: no import cycle, the service never imports the tools, small modules.

Read from the source with :mod:`ast` (nothing is imported), so a cycle hidden
in a function-level import counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 500
#: The wing that is not the service: the service must not import it.
TOOLING = ("guard.cmd", "guard.tools", "guard.testing", "guard.__main__")
#: Cycles known when this test was written, being removed (issue 12 item 3).
#: Delete an entry when its cycle is gone; the test fails on any other cycle.
KNOWN_CYCLES = {("guard.gunicorn_conf", "guard.wsgi")}


def _modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for path in (ROOT / "guard").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the guard modules it imports anywhere in its source."""
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    imported.add(child if child in modules else base)
        graph[name] = {
            target
            for target in map(owner, (i for i in imported if i.split(".")[0] == "guard"))
            if target is not None and target != name
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[tuple[str, ...]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == {("a", "b", "c")}
    assert cycles({"a": {"b"}, "b": set()}) == set()


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    graph = import_graph()
    assert "guard.db.api" in graph["guard.cmd.db"] or "guard.db.migration" in graph["guard.cmd.db"]
    assert all(target in graph for targets in graph.values() for target in targets)


def test_no_import_cycle_in_guard() -> None:
    assert cycles(import_graph()) <= KNOWN_CYCLES


def test_the_service_never_imports_the_tools() -> None:
    graph = import_graph()
    service = [m for m in graph if not m.startswith(TOOLING)]
    wrong = {
        module: sorted(t for t in graph[module] if t.startswith(TOOLING))
        for module in service
        if any(t.startswith(TOOLING) for t in graph[module])
    }
    assert wrong == {}


def test_no_module_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "guard").rglob("*.py")
        if (n := len(path.read_text("utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
