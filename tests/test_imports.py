"""The package's shape holds: no import cycles, and the core never loads the TUI, rich or torch at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"
OUTSIDE_CORE = ("workbench.cli", "workbench.__main__", "workbench.console", "workbench.tui")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
# every core module: all of workbench/ but the CLI, its terminal layer and the TUI
CORE = sorted(m for m in MODULES if not m.startswith(OUTSIDE_CORE))


def _walk_runtime(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (imports for annotations only never run)."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        nodes.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(name: str, path: Path) -> set[str]:
    """Modules of workbench that ``name`` imports, at any depth in the file (lazy imports count too)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _walk_runtime(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from pkg import sub` names the submodule when there is one, else the package itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_between_modules() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert len(graph) > 40 and sum(map(len, graph.values())) > 100  # the walk sees the package
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# ARCHITECTURE.md's rules: what each part of the package may import (besides itself)
BASE = {"errors", "records", "outputs", "lazy", "printable"}
ALLOWED = {
    "errors": set(), "records": set(), "outputs": {"errors"}, "lazy": set(), "printable": set(),
    "recipe": {"errors"},
    "template": BASE,
    "data": BASE | {"template"},
    "checks": BASE | {"template"},
    "dedup": BASE | {"data"},
    "train": BASE | {"recipe", "template", "data", "report.figures"},
    "eval": BASE | {"recipe", "template", "data", "train"},
    "report": BASE | {"recipe", "eval"},
    "report.figures": BASE,
    "pipeline": BASE | {"recipe", "template", "data", "checks", "dedup", "train", "eval", "report", "version"},
}


def _part(module: str) -> str:
    parts = module.split(".")
    if module == "workbench":
        return "version"
    return "report.figures" if module == "workbench.report.figures" else parts[1]


def test_each_part_imports_only_what_architecture_md_allows() -> None:
    broken = []
    for name, path in MODULES.items():
        part = _part(name)
        if part not in ALLOWED:
            continue  # cli, console, tui: the top, may import anything
        for dep in _imports(name, path):
            target = _part(dep)
            if target != part and target not in ALLOWED[part] and not (part == "report" and target == "report.figures"):
                broken.append(f"{name} imports {dep}")
    assert broken == []


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_core_does_not_import_the_terminal_layers() -> None:
    bad = {m: sorted(t for t in _imports(m, MODULES[m]) if t.startswith(OUTSIDE_CORE)) for m in CORE}
    assert {m: t for m, t in bad.items() if t} == {}


def test_core_modules_do_not_import_textual_rich_or_torch() -> None:
    assert len(CORE) > 40
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}:\n"
        "    importlib.import_module(m)\n"
        "print(','.join(sorted(x for x in ('textual', 'rich', 'torch', 'transformers', 'datasets') if x in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_stage_packages_name_their_public_functions() -> None:
    import importlib

    for pkg in ("data", "template", "checks", "dedup", "train", "eval", "report"):
        mod = importlib.import_module(f"workbench.{pkg}")
        assert mod.__all__, pkg
        for name in mod.__all__:
            # a public name that is also a submodule's would be shadowed once that submodule is imported
            assert f"workbench.{pkg}.{name}" not in MODULES, f"workbench.{pkg}.{name} is a name and a module"
            assert getattr(mod, name) is not None, f"workbench.{pkg}.{name}"


def test_cli_module_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, workbench.cli\n"
        "print(','.join(sorted(x for x in ('textual', 'torch', 'transformers', 'datasets', 'polars') if x in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
