"""The `exporter` package imports one way: no module imports, even lazily inside a function,
a module that imports it back (directly or through others)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "exporter"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports anywhere in its text
    (TYPE_CHECKING blocks and function bodies included: a lazy import is still a cycle)."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                # `from exporter import cli` imports the module cli (the package's __init__ runs
                # first, as for any submodule: not counted); `from exporter.cli import main`, cli.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

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
            group: list[str] = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_exporter_package_has_no_import_cycle() -> None:
    graph = import_graph()
    found = cycles(graph)
    detail = [
        " <-> ".join(group)
        + ": "
        + "; ".join(f"{a} imports {b}" for a in group for b in sorted(graph[a]) if b in group)
        for group in found
    ]
    assert not found, "import cycles in exporter/ (move the shared part to its own module):\n" + (
        "\n".join(detail)
    )


def test_the_cycle_finder_sees_a_cycle_through_a_lazy_import() -> None:
    # The check itself is proven on a known shape: a -> b -> c -> a, plus a separate d -> a.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert "exporter.cli" in import_graph()  # the walk reads the real package


def test_the_data_flows_one_way_between_the_main_rooms() -> None:
    """Upstream rooms never import downstream ones: config -> keys -> scheduler -> probes ->
    classify -> state -> metrics -> server. (keys is also the vocabulary config describes a
    key's source in, KeySource and its lint: config may import it, keys never imports config.)"""
    graph = import_graph()
    downstream = {
        "exporter.config": {"exporter.scheduler", "exporter.runner", "exporter.state"},
        "exporter.keys": {"exporter.config", "exporter.scheduler", "exporter.runner"},
        "exporter.scheduler": {"exporter.runner", "exporter.metrics", "exporter.server"},
        "exporter.result": {"exporter.state", "exporter.runner", "exporter.scheduler"},
        "exporter.state": {"exporter.metrics", "exporter.server", "exporter.runner"},
        "exporter.metrics": {"exporter.server", "exporter.service"},
    }
    wrong = {
        f"{module} imports {target}"
        for module, forbidden in downstream.items()
        for target in graph[module] & forbidden
    }
    assert not wrong, sorted(wrong)


# What two probes share lives in one of these modules of exporter/probes/, never in a probe.
PROBE_HELPERS = frozenset(
    {"common", "tls", "rest_answer", "rest_timing", "websocket_session", "http_sessions"}
)


def probe_to_probe_imports(graph: dict[str, set[str]]) -> set[str]:
    """Every import, inside exporter/probes/, of a module that is not a helper: a probe module
    (rest, realtime, live, inference, and any new one) is imported only from outside."""
    inside = {name for name in graph if name.startswith("exporter.probes.")}
    probes = inside - {f"exporter.probes.{helper}" for helper in PROBE_HELPERS}
    return {
        f"{module} imports {target}"
        for module in inside | {"exporter.probes"}
        for target in graph.get(module, set()) & probes
    }


def test_no_probe_imports_another_probe() -> None:
    graph = import_graph()
    wrong = probe_to_probe_imports(graph)
    assert not wrong, (
        "a probe imports another (move what they share to a helper module of exporter/probes/ "
        f"and add it to PROBE_HELPERS): {sorted(wrong)}"
    )
    helpers = {f"exporter.probes.{helper}" for helper in PROBE_HELPERS}
    assert helpers <= set(graph), sorted(helpers - set(graph))  # the list names real modules


def test_the_probe_rule_sees_one_probe_importing_another() -> None:
    graph = {
        "exporter.probes.live": {"exporter.probes.realtime", "exporter.probes.websocket_session"},
        "exporter.probes.realtime": {"exporter.probes.websocket_session", "exporter.result"},
        "exporter.probes.websocket_session": {"exporter.probes.common"},
        "exporter.probes.common": set(),
        "exporter.result": set(),
        "exporter.service": {"exporter.probes.live", "exporter.probes.realtime"},
    }
    assert probe_to_probe_imports(graph) == {
        "exporter.probes.live imports exporter.probes.realtime"
    }
