"""The packages are layers that only point down: no module imports from a layer above its own.

The order, lowest first (README, Layout): domain → texts and formats → storage → services →
client flows and firm handlers → wiring. Walking every import of every module, including
those inside functions and under TYPE_CHECKING, catches a cycle before it is written.
"""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Each folder (a package) and its layer; a module may import its own layer and those below.
LAYERS: dict[str, int] = {
    "bot.domain": 0,
    "conversations.texts": 1,
    "bot.formats": 1,
    "bot.storage": 2,
    "bot.services": 3,
    "conversations.flows": 4,
    "bot.handlers": 4,
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
            "import conversations.flows.router\n",
            "conversations.texts.guide",
            "conversations.flows.router",
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
