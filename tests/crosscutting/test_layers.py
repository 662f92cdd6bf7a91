"""The packages are layers that only point down: no module imports from a layer above its own.

The order, lowest first (README, Layout): domain → guide and formats → storage → services →
the conversations (the client's, the firm's) → wiring. `bot/` is what the conversations
stand on, and only its composition root (`bot.wiring`, `bot.__main__`) imports
`conversations/`. Every import of every module is walked, including those inside functions
and under TYPE_CHECKING, and no two modules may import each other, directly or around a loop.
"""

import ast
from pathlib import Path

import pytest

from tests.support.harness import ROOT

# Each folder (a package) and its layer; a module may import its own layer and those below.
LAYERS: dict[str, int] = {
    "bot.domain": 0,
    "bot.guide": 1,
    "bot.formats": 1,
    "bot.storage": 2,
    "bot.services": 3,
    "conversations.client": 4,
    "conversations.firm": 4,
    "bot.wiring": 5,
}
# The entry point `python -m bot` sits on top of everything.
TOP = {"bot.__main__": 6}


def layer_of(module: str) -> int | None:
    """Return the layer a dotted module name belongs to (None for a package's own __init__)."""
    if module in TOP:
        return TOP[module]
    for package, layer in LAYERS.items():
        if module == package or module.startswith(package + "."):
            return layer
    return None


def modules() -> list[tuple[str, Path]]:
    """Every module of the two packages, by dotted name."""
    found = []
    for package in ("bot", "conversations"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.append((name, path))
    return found


def imports_of(path: Path, name: str) -> set[str]:
    """Every module of ours that a file imports, resolving `from package import module`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # Relative imports would hide the layer in dots: the code has none.
            assert node.level == 0, f"{name}: relative import of {node.module}"
            base = node.module or ""
            found.add(base)
            # `from bot.services import polling` imports the module bot.services.polling.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in ("bot", "conversations")}


def test_every_module_is_in_a_layer() -> None:
    homeless = [
        name for name, path in modules() if layer_of(name) is None and path.name != "__init__.py"
    ]
    assert homeless == []


def test_no_module_imports_from_a_higher_layer() -> None:
    names = {name for name, _ in modules()}
    upward, seen = [], 0
    for name, path in modules():
        own = layer_of(name)
        if own is None:
            continue
        for imported in imports_of(path, name):
            if imported not in names:
                continue  # an attribute (`from bot.domain.rut import format_rut`), not a module
            seen += 1
            theirs = layer_of(imported)
            if theirs is not None and theirs > own:
                upward.append(f"{name} (layer {own}) imports {imported} (layer {theirs})")
    assert upward == []
    assert seen > 150  # the walk really followed the code's imports


@pytest.mark.parametrize(
    ("source", "module", "offending"),
    [
        ("from bot.wiring.assembly import assemble\n", "bot.domain.rut", "bot.wiring.assembly"),
        (
            "def f():\n    from bot.services import polling\n",
            "bot.storage.x",
            "bot.services.polling",
        ),
        (
            "import conversations.client.router\n",
            "bot.guide.guide",
            "conversations.client.router",
        ),
    ],
)
def test_the_walk_sees_every_kind_of_import(
    tmp_path: Path, source: str, module: str, offending: str
) -> None:
    path = tmp_path / "module.py"
    path.write_text(source, encoding="utf-8")
    imported = imports_of(path, module)
    assert offending in imported
    assert layer_of(offending) is not None and layer_of(offending) > (layer_of(module) or 0)


# The composition root: the only part of bot/ that may know the conversations.
COMPOSITION_ROOT = ("bot.wiring", "bot.__main__")


def import_graph() -> dict[str, set[str]]:
    """Each module of ours and the modules of ours it imports (attributes left out)."""
    names = {name for name, _ in modules()}
    return {name: imports_of(path, name) & names - {name} for name, path in modules()}


def test_only_the_composition_root_of_bot_imports_the_conversations() -> None:
    wrong = [
        f"{name} imports {imported}"
        for name, imported_set in import_graph().items()
        if name.startswith("bot.") and not name.startswith(COMPOSITION_ROOT)
        for imported in imported_set
        if imported.startswith("conversations")
    ]
    assert wrong == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each once, as the modules around it (Tarjan's strongly connected
    components of more than one module, or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    # A package's __init__ imports nothing of ours; within a package a cycle is as wrong.
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_cycle_finder_finds_loops(
    graph: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert cycles(graph) == expected


def test_a_type_checking_import_counts(tmp_path: Path) -> None:
    path = tmp_path / "module.py"
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from bot.services.polling import Poller\n"
    )
    path.write_text(source, encoding="utf-8")
    assert "bot.services.polling" in imports_of(path, "bot.services.deps")


def test_no_test_or_benchmark_imports_conftest() -> None:
    """Shared helpers live in tests/support; conftest.py only holds fixtures, which pytest
    hands out by name, so no module imports from it."""
    offenders = []
    for folder in ("tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                named = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                if any(name == "conftest" or name.endswith(".conftest") for name in named):
                    offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []
