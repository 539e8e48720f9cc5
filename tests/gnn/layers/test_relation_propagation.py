"""The fused propagation layer against a per-relation reference, values and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.nn import MessagePassing

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.gnn.formats.pyg import to_data
from graphfuse.gnn.kernels import cpu as cpu_kernels
from graphfuse.gnn.layers import RelationPropagation
from graphfuse.gnn.layers.transition import Cells, Frontier


def random_graph(seed: int, nodes: int = 40, relations: int = 4, edges: int = 200) -> KnowledgeGraph:
    rng = torch.Generator().manual_seed(seed)
    heads = torch.randint(0, nodes, (edges,), generator=rng).tolist()
    tails = torch.randint(0, nodes, (edges,), generator=rng).tolist()
    rels = torch.randint(0, relations, (edges,), generator=rng).tolist()
    return KnowledgeGraph(
        [], [TripleRecord(f"e{h}", f"r{r}", f"e{t}") for h, r, t in zip(heads, rels, tails, strict=False)]
    )


def reference(graph: KnowledgeGraph, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(x)
    for d in range(2 * graph.num_relations):
        out = out + graph.transition(d).apply(x * weights[:, d])
    return out.clamp(max=1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch", [1, 5])
def test_matches_per_relation_products_and_their_gradients(seed: int, batch: int) -> None:
    graph = random_graph(seed)
    x = (
        torch.rand(graph.num_entities, batch, generator=torch.Generator().manual_seed(seed)) * 0.2
    ).requires_grad_()
    weights = torch.rand(batch, 2 * graph.num_relations).requires_grad_()
    fused = RelationPropagation()(graph, Frontier(x, 0.5), weights).mass
    expected = reference(graph, x, weights)
    torch.testing.assert_close(fused, expected)
    grads = torch.autograd.grad((fused * torch.arange(fused.numel()).view_as(fused)).sum(), [x, weights])
    expected_grads = torch.autograd.grad(
        (expected * torch.arange(fused.numel()).view_as(fused)).sum(), [x, weights]
    )
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_updates_are_seen_by_the_next_hop() -> None:
    graph = KnowledgeGraph([], [TripleRecord("a", "r", "b")])
    x = torch.zeros(graph.num_entities, 1)
    x[graph.entity_index["a"]] = 1.0
    weights = torch.ones(1, 2)
    assert RelationPropagation()(graph, Frontier(x, 0.5), weights).mass[graph.entity_index["b"], 0] == 1.0
    graph.add([TripleRecord("a", "r", "c")])
    x = torch.zeros(graph.num_entities, 1)
    x[graph.entity_index["a"]] = 1.0
    moved = RelationPropagation()(graph, Frontier(x, 0.5), weights).mass
    assert moved[graph.entity_index["c"], 0] == 1.0


def test_weight_shape_is_checked() -> None:
    graph = random_graph(0)
    with pytest.raises(ValueError, match="Expected 'weights' of shape"):
        RelationPropagation()(
            graph, Frontier(torch.zeros(graph.num_entities, 2), 0.5), torch.zeros(3, 2 * graph.num_relations)
        )


@pytest.mark.skipif(not cpu_kernels.available(torch.zeros(1)), reason="numba is not installed")
@pytest.mark.parametrize("columns", [1, 64, 70])
def test_fused_hops_match_torch_with_topics_excluded(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    """Three hops from topic cells, topics cleared at every hop: the fused kernel's mass, and the live
    directions read from its summary, equal torch's."""
    graph = random_graph(columns, nodes=60, relations=5, edges=400)
    generator = torch.Generator().manual_seed(columns)
    topics = torch.zeros(graph.num_entities, columns)
    topics[torch.randint(0, graph.num_entities, (columns,), generator=generator), torch.arange(columns)] = 1.0
    topics[torch.randint(0, graph.num_entities, (columns,), generator=generator), torch.arange(columns)] = 0.7
    weights = [torch.rand(columns, 2 * graph.num_relations, generator=generator) for _ in range(3)]

    def hops() -> tuple[list[torch.Tensor], list[torch.Tensor], Cells]:
        frontier, cells = Frontier.start(topics, 0.3)
        masses, lives = [], []
        with torch.inference_mode():
            for w in weights:
                lives.append(frontier.live_directions(graph.out_degree()))
                frontier = RelationPropagation()(graph, frontier, w * lives[-1], exclude=cells)
                masses.append(frontier.mass)
        return masses, lives, cells

    fused = hops()
    assert fused[0][-1].max() == 1.0 and fused[0][-1].min() == 0.0  # capped, and some mass is > 1 before
    monkeypatch.setattr(cpu_kernels, "available", lambda *tensors: False)
    expected = hops()
    for got, want in zip(fused[0], expected[0], strict=True):
        torch.testing.assert_close(got, want)
        assert not got[expected[2].nodes, expected[2].columns].any()
    for got, want in zip(fused[1], expected[1], strict=True):
        assert torch.equal(got, want)
    assert torch.equal(fused[2].nodes, expected[2].nodes) and torch.equal(
        fused[2].columns, expected[2].columns
    )


@pytest.mark.parametrize("fused", [True, False])
def test_a_frontier_started_from_known_cells_is_the_one_read_from_the_block(
    monkeypatch: pytest.MonkeyPatch, fused: bool
) -> None:
    if not fused:
        monkeypatch.setattr(cpu_kernels, "available", lambda *tensors: False)
    graph = random_graph(3, nodes=50, relations=3, edges=300)
    mass = torch.zeros(graph.num_entities, 70)
    nodes, columns = torch.tensor([3, 3, 9, 20, 41]), torch.tensor([0, 65, 65, 7, 69])
    mass[nodes, columns] = torch.tensor([1.0, 0.4, 0.9, 0.2, 0.05])
    with torch.inference_mode():
        read, read_cells = Frontier.start(mass, 0.3)
        given, given_cells = Frontier.start(mass, 0.3, (nodes, columns))
        degree = graph.out_degree()
        assert torch.equal(read.live_directions(degree), given.live_directions(degree))
    assert sorted(zip(read_cells.nodes.tolist(), read_cells.columns.tolist(), strict=True)) == sorted(
        zip(nodes.tolist(), columns.tolist(), strict=True)
    )
    assert given_cells.by_node[0].tolist() == read_cells.by_node[0].tolist()
    if fused:
        assert np.array_equal(read.summary.active, given.summary.active)
        assert np.array_equal(read.summary.alive, given.summary.alive)


def test_is_a_fused_message_passing_layer() -> None:
    layer = RelationPropagation()
    assert isinstance(layer, MessagePassing) and layer.fuse and layer.node_dim == 0
    # PyG's generated propagate: its fused path hands the sparse matrix on without reading its indices
    assert type(layer).propagate is not MessagePassing.propagate
    assert repr(layer) == "RelationPropagation()"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("grad", [True, False])
def test_knowledge_graph_and_pyg_edge_index_move_the_same_mass(seed: int, grad: bool) -> None:
    """The fused path (``message_and_aggregate``: Frontier.move, the numba kernel without gradients) against
    PyG's per-edge messages and sum over the same graph as a ``Data`` gives it: capped, topics cleared."""
    graph = random_graph(seed, nodes=50, relations=4, edges=300)
    data = to_data(graph)
    generator = torch.Generator().manual_seed(seed)
    batch = 6
    mass = torch.rand(graph.num_entities, batch, generator=generator) * 1.5
    weights = torch.rand(batch, 2 * graph.num_relations, generator=generator)
    topics = torch.randint(0, graph.num_entities, (batch,), generator=generator)
    cells = Cells(topics, torch.arange(batch), graph.num_entities)
    frontier = Frontier.start(mass, 0.3)[0]
    layer = RelationPropagation()
    calls = {"message_and_aggregate": 0, "message": 0}
    layer.register_message_and_aggregate_forward_hook(lambda *args: calls.update(message_and_aggregate=1))
    layer.register_message_forward_hook(lambda *args: calls.update(message=1))
    with torch.set_grad_enabled(grad):
        fused = layer(graph, frontier, weights, exclude=cells)
        assert calls == {"message_and_aggregate": 1, "message": 0}
        assert (fused.summary is not None) == (not grad and cpu_kernels.available(mass))
        edge_index, edge_type = data.edge_index, data.edge_type
        per_edge = layer(edge_index, Frontier(mass, 0.3), weights, exclude=cells, edge_type=edge_type)
        assert calls == {"message_and_aggregate": 1, "message": 1}
    torch.testing.assert_close(fused.mass, per_edge.mass, atol=1e-5, rtol=1e-5)
    assert fused.mass.max() == 1.0 and not fused.mass[cells.nodes, cells.columns].any()
    assert per_edge.threshold == 0.3


def test_pyg_inputs_are_checked() -> None:
    graph = random_graph(0)
    data = to_data(graph)
    frontier = Frontier(torch.zeros(graph.num_entities, 2), 0.5)
    layer = RelationPropagation()
    weights = torch.zeros(2, 2 * graph.num_relations)
    with pytest.raises(ValueError, match="Expected 'weights' of shape"):
        layer(data.edge_index, frontier, torch.zeros(2, 7), edge_type=data.edge_type)
    with pytest.raises(ValueError, match="Expected 'edge_type' of shape"):
        layer(data.edge_index, frontier, weights)
    with pytest.raises(ValueError, match="only the fused CPU kernel mixes levels"):
        layer(data.edge_index, frontier, weights, mix_into=object(), edge_type=data.edge_type)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Expected no 'edge_type'"):
        layer(graph, frontier, weights, edge_type=data.edge_type)
