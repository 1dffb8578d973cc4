"""The order engine's modules import one way: models, errors -> selectors -> pricing ->
dispatch, fulfilment -> services (each module's docstring states it)."""

import ast
from pathlib import Path

import pytest

ORDERS = Path(__file__).resolve().parent.parent / "orders"

# For each engine module, the engine modules it must never import.
FORBIDDEN = {
    "models": {"selectors", "pricing", "dispatch", "fulfilment", "services"},
    "errors": {"models", "selectors", "pricing", "dispatch", "fulfilment", "services"},
    "selectors": {"pricing", "dispatch", "fulfilment", "services"},
    "pricing": {"dispatch", "fulfilment", "services"},
    "dispatch": {"pricing", "fulfilment", "services"},
    "fulfilment": {"dispatch", "services"},
}


def engine_imports(module: str) -> set[str]:
    """The modules of the orders app that ``orders/<module>.py`` imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse((ORDERS / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "orders":
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("orders."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("orders.")}
    return names


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_it_keeps_each_engine_module_below_those_that_use_it(module):
    assert engine_imports(module) & FORBIDDEN[module] == set()


def test_it_has_no_import_cycle_in_the_orders_app():
    graph = {p.stem: engine_imports(p.stem) - {p.stem} for p in ORDERS.glob("*.py")}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
