"""The package's shape: layers import downwards, the service never imports the tools, the
tools use public names only, no module over 500 lines (no import cycle: test_imports.py).

Read from the source with :mod:`ast` (nothing is imported), so a function-level
import counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 500
#: The wing that is not the service: the service must not import it.
TOOLING = ("guard.cmd", "guard.tools", "guard.testing", "guard.__main__")
#: The layers of the README's layout, top to bottom: a module imports only modules
#: of its own layer or of layers below it. A new module needs a place here.
LAYERS = (
    ("guard.cmd", "guard.tools", "guard.testing", "guard.__main__"),
    ("guard.wsgi", "guard.gunicorn_conf", "guard.gunicorn_errors"),
    ("guard.deploy",),
    ("guard.middleware", "guard.accesslog", "guard.authtoken"),
    ("guard.api",),
    ("guard.repository",),
    ("guard.policy", "guard.policies"),
    ("guard.db",),
    ("guard.audit", "guard.auditline", "guard.auditvalues", "guard.auditjson"),
    (
        "guard.logsetup",
        "guard.logformat",
        "guard.log",
        "guard.logscope",
        "guard.logfingerprints",
        "guard.logpatterns",
        "guard.logrecords",
    ),
    ("guard.context",),
    ("guard.conf", "guard.conffiles", "guard.confoptions"),
    ("guard.validation", "guard.exception"),
    ("guard",),
)


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


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    graph = import_graph()
    assert "guard.db.api" in graph["guard.cmd.db"] or "guard.db.migration" in graph["guard.cmd.db"]
    assert all(target in graph for targets in graph.values() for target in targets)


def test_the_service_never_imports_the_tools() -> None:
    graph = import_graph()
    service = [m for m in graph if not m.startswith(TOOLING)]
    wrong = {
        module: sorted(t for t in graph[module] if t.startswith(TOOLING))
        for module in service
        if any(t.startswith(TOOLING) for t in graph[module])
    }
    assert wrong == {}


def _layer(module: str) -> int | None:
    """Index in :data:`LAYERS` of the longest prefix naming ``module``'s room."""
    best: tuple[int, int] | None = None
    for index, rooms in enumerate(LAYERS):
        for room in rooms:
            if (module == room or module.startswith(room + ".")) and (
                best is None or len(room) > best[1]
            ):
                best = (index, len(room))
    return None if best is None else best[0]


def test_layers_import_downwards_only() -> None:
    graph = import_graph()
    placed = {module: _layer(module) for module in graph}
    assert [m for m, layer in placed.items() if layer is None] == []
    upwards = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if placed[target] < placed[module]
    )
    assert upwards == [], "a module imports a layer above it (README: Layout)"


def test_the_layer_check_sees_an_upward_import() -> None:
    assert _layer("guard.policy.enforcer") == _layer("guard.policy")
    assert _layer("guard.middleware") < _layer("guard.repository")
    assert _layer("guard.api.app") < _layer("guard.repository")


def _private_uses(path: Path) -> list[str]:
    """Private guard names a module imports or reads off an imported guard module."""
    tree = ast.parse(path.read_text("utf-8"))
    modules: set[str] = set()  # local names bound to guard modules
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("guard"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(f"{node.module}.{alias.name}")
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("guard"):
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_the_tools_use_public_names_only() -> None:
    wing = [ROOT / "guard" / "testing.py", *(ROOT / "guard" / "tools").rglob("*.py")]
    uses = {str(p.relative_to(ROOT)): u for p in wing if (u := _private_uses(p))}
    assert uses == {}


def test_the_private_name_check_sees_one(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from guard import repository\nfrom guard.db import _x\nrepository._SELECT\n")
    assert sorted(_private_uses(probe)) == ["guard.db._x", "repository._SELECT"]


def test_no_module_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "guard").rglob("*.py")
        if (n := len(path.read_text("utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
