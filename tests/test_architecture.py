"""The package's structure (DESIGN.md, "The package: layers"), read from the source (fast):

- every import is resolved: absolute and relative, at module level and inside functions;
- no import cycle between modules;
- the layer table: an import only points down, and experiments import neither each other nor the machinery;
- no module reaches into another's private (`_name`) functions;
- no module is over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "icl_geometry"
MAX_LINES = 500

# Each layer and the layers it may import (besides itself). `experiments` may import only `experiments.base`
# of its own layer (checked separately); `bookkit` may import everything.
LAYERS = {
    "core": set(),
    "llm": {"core"},
    "tasks": {"llm", "core"},
    "toys": {"core"},
    "experiments": {"tasks", "toys", "llm", "core"},
    "bookkit": {"experiments", "tasks", "toys", "llm", "core"},
}


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("icl_geometry", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts).removesuffix(".__init__")
        out[name] = (path, ast.parse(path.read_text()))
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(name: str, path: Path, tree: ast.Module, modules: set[str]) -> set[str]:
    """Every package module `name` imports, anywhere in its source (relative imports resolved)."""
    here = name if _is_package(path) else name.rsplit(".", 1)[0]
    deps = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = base.rsplit(".", 1)[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("icl_geometry"):
                continue
            for alias in node.names:  # `from icl_geometry.core import stats` names a module; `from x.y import f` not
                sub = f"{target}.{alias.name}"
                deps.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name.startswith("icl_geometry")}
    return {d for d in deps if d in modules} - {name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, t, set(mods)) for m, (p, t) in mods.items()}


def layer(module: str) -> str | None:
    """The layer a module belongs to ('core', 'llm', ...), or None for the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_resolver_sees_relative_and_function_level_imports():
    src = "def f():\n    from . import b\n    from .c import d\n"
    mods = {"icl_geometry.x.a", "icl_geometry.x.b", "icl_geometry.x.c"}
    got = _imports("icl_geometry.x.a", Path("a.py"), ast.parse(src), mods)
    assert got == {"icl_geometry.x.b", "icl_geometry.x.c"}


def test_every_module_is_in_a_layer():
    loose = [m for m in _modules() if m != "icl_geometry" and layer(m) is None]
    assert not loose, f"modules outside the layer folders {sorted(LAYERS)}: {loose}"


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = path[path.index(d):] + [m, d] if d in path else [m, d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_imports_only_point_down_the_layers():
    bad = []
    for m, deps in _graph().items():
        mine = layer(m)
        if mine is None:
            continue
        for d in deps:
            theirs = layer(d)
            if theirs is None or theirs == mine:
                continue
            if theirs not in LAYERS[mine]:
                bad.append(f"{m} ({mine}) imports {d} ({theirs})")
    assert not bad, "\n".join(sorted(bad))


def test_experiments_import_neither_each_other_nor_the_machinery():
    bad = [f"{m} imports {d}" for m, deps in _graph().items() if layer(m) == "experiments"
           for d in deps if layer(d) == "experiments" and d not in ("icl_geometry.experiments",
                                                                   "icl_geometry.experiments.base")
           and m != "icl_geometry.experiments.base"]
    assert not bad, "\n".join(sorted(bad))


def test_no_module_uses_another_modules_private_names():
    offenders = []
    for name, (_, tree) in _modules().items():
        aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                   and ((n.module or "").startswith("icl_geometry") or n.level) for a in n.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and ((node.module or "").startswith("icl_geometry") or node.level):
                offenders += [f"{name}: from {node.module} import {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in aliases):
                offenders.append(f"{name}: {node.value.id}.{node.attr}")
    assert not offenders, offenders


def test_no_module_over_500_lines():
    long = {str(p.relative_to(PACKAGE)): n for p, _ in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
