"""The layering of docs/architecture.md, checked on the import graph of the project's packages
and on the relations between the apps' models.

Every import statement counts, a function-level one too (grimp reads the source, it does not
run it).
"""

import grimp
import pytest
from django.apps import apps

PAGES = frozenset({
    "orders.views", "orders.report_views", "orders.basket_views", "orders.bulk_views",
    "orders.admin", "orders.exports", "orders.webhooks",
    "portal.views", "portal.audit_views", "portal.twofactor_views", "vendors.admin",
})
COMMANDS = frozenset({"orders.services", "orders.pricing", "orders.fulfilment", "orders.dispatch",
                      "orders.lines", "orders.basket", "orders.bulk"})
# The order engine, bottom up: models, errors -> selectors -> pricing -> lines -> dispatch,
# fulfilment -> services. For each module, the engine modules it must never import.
ENGINE_FORBIDDEN = {
    "models": {"selectors", "pricing", "dispatch", "fulfilment", "services"},
    "errors": {"models", "selectors", "pricing", "dispatch", "fulfilment", "services"},
    "selectors": {"pricing", "dispatch", "fulfilment", "services"},
    "reports": {"pricing", "dispatch", "fulfilment", "services"},
    "pricing": {"lines", "dispatch", "fulfilment", "services"},
    "lines": {"dispatch", "fulfilment", "services"},
    "dispatch": {"pricing", "fulfilment", "services"},
    "fulfilment": {"dispatch", "services"},
    # Alerts are called by the ledger and by fulfilment, and queue their jobs by name.
    "alerts": {"ledger", "balances", "dispatch", "fulfilment", "services", "jobs"},
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("common", "portal", "vendors", "orders", "audit", cache_dir=None)


def imports(graph: grimp.ImportGraph, module: str) -> set[str]:
    return set(graph.find_modules_directly_imported_by(module))


def within(graph: grimp.ImportGraph, package: str) -> list[str]:
    return sorted(m for m in graph.modules if m == package or m.startswith(package + "."))


def offenders(graph, sources, allowed) -> list[str]:
    return [f"{source} imports {target}" for source in sources
            for target in sorted(imports(graph, source)) if not allowed(target)]


def test_it_keeps_the_leaf_helpers_free_of_the_rest_of_the_project(graph):
    leaf = within(graph, "common")
    assert {"common.crypto", "common.http", "common.money", "common.ratelimit"} <= set(leaf)
    assert offenders(graph, leaf, lambda target: target.startswith("common")) == []


def test_it_lets_adapters_import_only_each_other_and_the_leaf_helpers(graph):
    adapters = within(graph, "vendors.adapters")
    assert len(adapters) >= 5
    assert offenders(graph, adapters, lambda target: target.startswith("common")
                     or target in adapters) == []


def test_it_never_lets_vendors_import_orders(graph):
    assert offenders(graph, within(graph, "vendors"),
                     lambda target: not target.startswith("orders")) == []


def test_it_never_lets_a_vendors_model_point_at_orders():
    pointing = [f"{model.__name__}.{field.name}"
                for model in apps.get_app_config("vendors").get_models()
                for field in model._meta.get_fields()
                if field.concrete and field.is_relation
                and field.related_model._meta.app_label == "orders"]
    assert pointing == []


def test_it_lets_the_audit_trail_import_only_itself_and_the_leaf_helpers(graph):
    trail = within(graph, "audit")
    assert {"audit.models", "audit.services", "audit.receivers"} <= set(trail)
    assert offenders(graph, trail, lambda target: target.startswith(("audit", "common"))) == []


def test_it_keeps_the_parts_of_portal_the_apps_use_below_the_apps(graph):
    """portal is the top (urls, cron, the run command, its pages) and also holds what the apps
    share (access, roles, two-factor, sessions, paths, the worker): those import neither
    vendors nor orders (the audit trail sits below both)."""
    shared: set[str] = set()
    apps_modules = [m for package in ("vendors", "orders", "audit")
                    for m in within(graph, package)]
    todo = {t for m in apps_modules for t in imports(graph, m) if t.startswith("portal")}
    while todo:
        module = todo.pop()
        shared.add(module)
        todo |= {t for t in imports(graph, module) if t.startswith("portal")} - shared
    assert {"portal.access", "portal.twofactor"} <= shared
    assert offenders(graph, sorted(shared),
                     lambda target: not target.startswith(("orders", "vendors"))) == []


def test_it_never_lets_a_page_import_an_adapter(graph):
    pages = sorted(PAGES & set(graph.modules))
    assert pages == sorted(PAGES)
    assert offenders(graph, pages,
                     lambda target: not target.startswith("vendors.adapters")) == []


def test_it_never_lets_a_sandbox_import_an_adapter(graph):
    sandboxes = within(graph, "vendors.sandbox")
    assert len(sandboxes) >= 5
    assert offenders(graph, sandboxes,
                     lambda target: not target.startswith("vendors.adapters")) == []


def test_it_keeps_selectors_and_reports_to_reading(graph):
    assert offenders(graph, ["orders.selectors", "orders.reports"],
                     lambda target: target not in COMMANDS) == []


@pytest.mark.parametrize("module", sorted(ENGINE_FORBIDDEN))
def test_it_keeps_each_engine_module_below_those_that_use_it(graph, module):
    forbidden = {f"orders.{name}" for name in ENGINE_FORBIDDEN[module]}
    assert imports(graph, f"orders.{module}") & forbidden == set()


def test_it_has_no_import_cycle_in_the_orders_app(graph):
    modules = within(graph, "orders")
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for imported in sorted(imports(graph, module) & set(modules)):
            visit(imported, (*path, module))
        done.add(module)

    for module in modules:
        visit(module, ())
