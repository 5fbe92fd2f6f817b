"""The house rules of docs/architecture.md, checked on the code itself.

Imports are read from the source (every ``import`` statement, at module level or inside a
function), so a circle or an upward import fails here even when it is hidden in a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

CORE = REPO_ROOT / "fedopt_core"
DASHBOARD = REPO_ROOT / "fedopt_dashboard"

#: The base modules of fedopt_core (each may import the others).
BASE = {
    "_exports",
    "config",
    "db",
    "models",
    "migrations",
    "schema",
    "errors",
    "formatting",
    "csvfiles",
    "auth",
    "crypto",
    "overview",
}
#: Package -> the packages (and base) it may import besides itself.
MAY_IMPORT = {
    "base": {"base"},
    "catalog": {"base"},
    "runs": {"base", "catalog"},
    "prediction": {"base", "catalog", "runs"},
    "accounts": {"base", "catalog"},
    "planning": {"base", "catalog", "runs", "prediction", "accounts"},
    "cloud": {"base", "catalog", "accounts"},
    "testing": {"base", "catalog", "cloud"},
    "compat": {"base", "catalog", "runs", "prediction", "accounts", "planning", "cloud"},
    "cli": {"base", "catalog", "runs", "prediction", "accounts", "planning", "cloud", "compat", "testing"},
    "top": {"base", "catalog", "runs", "prediction", "accounts", "planning", "cloud", "compat"},
}
#: Modules allowed to exceed MAX_LINES because their docstring says why.
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(root: Path) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(root.rglob("*.py"))}


def _imports(path: Path, module: str) -> set[str]:
    """Every fedopt module ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import module` names a module; `from module import name` resolves to the module
            found.update(f"{base}.{a.name}" for a in node.names)
    return {name for name in found if name.split(".")[0] in {"fedopt_core", "fedopt_dashboard"}}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts == ["fedopt_core"]:
        return "top"
    second = parts[1]
    if second in BASE:
        return "base"
    return second


ALL = {**_sources(CORE), **_sources(DASHBOARD)}
MODULES = set(ALL)


def _resolve(name: str) -> str | None:
    """The fedopt module a dotted import name refers to (a name imported from a module maps to it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in ALL.items():
        targets = {_resolve(n) for n in _imports(path, module)}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def test_core_never_imports_streamlit_or_the_dashboard() -> None:
    for module, path in _sources(CORE).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            for name in names:
                assert name.split(".")[0] not in {"streamlit", "fedopt_dashboard", "pages"}, f"{module} imports {name}"


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong = []
    for module, targets in _graph().items():
        if not module.startswith("fedopt_core"):
            continue
        layer = _layer(module)
        for target in targets:
            if not target.startswith("fedopt_core"):
                wrong.append(f"{module} -> {target}")
                continue
            other = _layer(target)
            if other != layer and other not in MAY_IMPORT[layer]:
                wrong.append(f"{module} ({layer}) -> {target} ({other})")
    assert not wrong, "imports against the layering of docs/architecture.md:\n" + "\n".join(sorted(wrong))


def test_the_dashboard_imports_the_core_but_never_the_cli() -> None:
    for module, targets in _graph().items():
        if module.startswith("fedopt_dashboard"):
            assert not any(t.startswith("fedopt_core.cli") for t in targets), module


def test_there_is_no_import_circle() -> None:
    graph = _graph()
    # Importing a package runs its __init__, which imports its submodules: a package depends on them.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package's own __init__ importing its submodules is not a circle
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node)


def test_every_module_is_short_or_says_why_not() -> None:
    long = []
    for module, path in ALL.items():
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if "kept whole" not in doc and "one coherent" not in doc:
            long.append(f"{module}: {lines} lines")
    assert not long, f"modules over {MAX_LINES} lines without a reason in their docstring: {long}"


def test_every_package_says_what_lives_there() -> None:
    for init in [*CORE.rglob("__init__.py"), DASHBOARD / "__init__.py"]:
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "lives here" in doc.lower() or init.parent == CORE, f"{init}: the docstring should say what lives there"


@pytest.mark.parametrize(
    ("definition", "home"),
    [
        ("OBJECTIVES = ", "fedopt_core/planning/ranking.py"),
        ("def data_movement_s(", "fedopt_core/planning/movement.py"),
        ("def transfer_time_s(", "fedopt_core/planning/movement.py"),
        ("def task_on_platforms(", "fedopt_core/schema.py"),
        ("class FedoptInputError(", "fedopt_core/errors.py"),
        ("def duration(", "fedopt_core/formatting.py"),
        ("PRECISIONS = ", "fedopt_core/schema.py"),
        ("import csv\n", "fedopt_core/csvfiles.py"),
    ],
)
def test_a_concept_has_one_home(definition: str, home: str) -> None:
    homes = [str(p.relative_to(REPO_ROOT)) for p in ALL.values() if definition in p.read_text(encoding="utf-8")]
    assert homes == [home]
