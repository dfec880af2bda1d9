"""The layout holds: no import cycle between the project's modules, ``shared/`` stays pure, and the gateway
never imports the cloud."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cloud", "edge", "shared", "provisioning")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports at its top level (``from cloud import db`` is ``cloud.db``)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                names.add(child if child in known else node.module)
    return {name for name in names if name in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_its_way_back_to_itself():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check itself
    assert cycles(graph()) == []


def test_shared_is_pure_and_the_gateway_never_loads_the_cloud():
    edges = graph()
    impure = {"socket", "sqlite3", "sqlite_utils", "aiohttp", "flask", "sqlalchemy", "pymodbus", "subprocess"}
    for name, path in modules().items():
        top = {alias.name.split(".")[0] for node in ast.parse(path.read_text(encoding="utf-8")).body
               if isinstance(node, ast.Import | ast.ImportFrom)
               for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        if name.startswith("shared"):
            assert not top & impure, f"{name} imports {top & impure}"
            assert not {t for t in edges[name] if not t.startswith("shared")}, name
        if name.startswith("edge"):
            assert not {t for t in edges[name] if t.startswith(("cloud", "provisioning"))}, name
