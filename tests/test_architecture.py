"""The house keeps its shape (docs/architecture.md): layers import only downward, no import
cycle, short modules and functions, and the architecture note names every module there is.

Read from the source with ``ast`` (every ``import``, also those inside functions), so a lazy
import cannot hide a dependency.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "osvos_pl"
DOC = PACKAGE.parent / "docs" / "architecture.md"

#: Subpackage → layer; a module imports from lower layers and from its own subpackage only.
#: The data, model, metrics and snapping layers are peers: none imports another. Anything at
#: the top of the package (the commands) and the command packages are the top layer.
LAYERS = {"utils": 0, "data": 1, "model": 1, "metrics": 1, "snapping": 1, "tasks": 2,
          "stages": 3, "runner": 4}
TOP = 5
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def _modules() -> dict[str, Path]:
    """``osvos_pl.x.y`` → its file (a package by its ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    if len(parts) == 1:
        return -1, ""  # the package root
    return LAYERS.get(parts[1], TOP), parts[1]


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The package's modules ``path`` imports (``from a import b`` counts ``a.b`` where that is a
    module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("osvos_pl")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("osvos_pl"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if f"{node.module}.{a.name}" in MODULES}
    return {m for m in found if m in MODULES}


def test_no_import_goes_up_a_layer_or_sideways_between_peers():
    wrong = []
    for module, path in MODULES.items():
        layer, package = _layer(module)
        for target in _imports(path):
            to_layer, to_package = _layer(target)
            if to_package == package or to_layer == -1:
                continue
            if to_layer > layer or (to_layer == layer and layer != TOP):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers (docs/architecture.md):\n" + "\n".join(wrong)


def test_no_import_cycle_at_module_level():
    graph = {m: _imports(p, top_level_only=True) for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path, module, target]
            if target not in state and (cycle := visit(target, [*path, module])):
                return cycle
        state[module] = 2
        return None

    for module in graph:
        if module not in state:
            cycle = visit(module, [])
            assert cycle is None, " -> ".join(cycle)


def test_modules_and_functions_are_short_enough_to_read_at_once():
    long_modules = [f"{m}: {n}" for m, p in MODULES.items()
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    long_functions = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long_functions.append(f"{module}.{node.name}: {lines}")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_the_architecture_note_names_every_module_and_only_those():
    text = DOC.read_text()
    named = set(re.findall(r"`(osvos_pl/[\w/]+\.py)`", text))
    files = {str(p.relative_to(PACKAGE.parent)) for p in MODULES.values()
             if p.name != "__init__.py"}
    assert not files - named, f"docs/architecture.md does not name: {sorted(files - named)}"
    assert not named - files, f"docs/architecture.md names modules that do not exist: " \
                              f"{sorted(named - files)}"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_every_layer_is_a_package_with_a_docstring(package):
    init = PACKAGE / package / "__init__.py"
    assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), init
