"""The import contract: which room may import which, read from the source with `ast` (every import
statement, including those inside functions and under TYPE_CHECKING)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).parents[1]
ROOMS = {"gnn": "graphfuse.gnn", "encoder": "graphfuse.encoder", "server": "graphfuse.server"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = ROOMS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def build_import_graph() -> nx.DiGraph:
    """graphfuse's modules, an edge from each to every graphfuse module or outside package it imports."""
    files = {module_name(path): path for room in ROOMS for path in (ROOT / room).rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t if t in files else node.module for t in targets]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph.add_edges_from((module, target) for target in targets if target != module)
    return graph


GRAPH = build_import_graph()


def imports_of(room: str) -> set[tuple[str, str]]:
    return {(a, b) for a, b in GRAPH.edges if a == room or a.startswith(room + ".")}


def under(module: str, *rooms: str) -> bool:
    return any(module == room or module.startswith(room + ".") for room in rooms)


def test_every_module_is_read():
    assert "graphfuse.server.core.service" in GRAPH and "graphfuse.gnn.kernels.cpu" in GRAPH
    assert GRAPH.out_degree("graphfuse.server.core.service") > 10


def test_no_import_cycle():
    modules = GRAPH.subgraph(n for n in GRAPH if n.startswith("graphfuse."))
    cycles = list(nx.simple_cycles(modules))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        ("graphfuse.gnn", ("graphfuse.server", "graphfuse.v1", "graphfuse.encoder", "grpc")),
        ("graphfuse.encoder", ("graphfuse.server", "graphfuse.v1", "graphfuse.gnn", "grpc")),
        ("graphfuse.gnn.kernels", ("graphfuse",)),  # arrays in, arrays out
        (
            "graphfuse.server.core",
            (
                "graphfuse.server.jobs",
                "graphfuse.server.transport",
                "graphfuse.server.replication",
                "graphfuse.server.cli",
                "graphfuse.server.app",
                "graphfuse.server.client",
                "graphfuse.v1",
                "grpc",
            ),
        ),
        (
            "graphfuse.server.storage",
            (
                "graphfuse.server.core",
                "graphfuse.server.jobs",
                "graphfuse.server.transport",
                "graphfuse.server.replication",
                "graphfuse.server.cli",
                "graphfuse.server.app",
                "grpc",
            ),
        ),
        (
            "graphfuse.server.jobs",
            ("graphfuse.server.transport", "graphfuse.server.cli", "graphfuse.server.app", "grpc"),
        ),
        ("graphfuse.server.replication", ("graphfuse.server.transport", "graphfuse.server.jobs")),
        (
            "graphfuse.server.transport",
            ("graphfuse.server.jobs", "graphfuse.server.cli", "graphfuse.server.app"),
        ),
        ("graphfuse.server.client", ("graphfuse.server.core", "graphfuse.server.transport", "torch")),
    ],
)
def test_room_never_imports(room, forbidden):
    bad = sorted((a, b) for a, b in imports_of(room) if under(b, *forbidden) and not under(b, room))
    assert not bad, f"{room} imports {bad}"
