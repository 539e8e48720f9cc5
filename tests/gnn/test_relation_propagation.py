"""The fused propagation layer against a per-relation reference, values and gradients."""

from __future__ import annotations

import pytest
import torch

from gnn.graph import KnowledgeGraph
from gnn.layers import RelationPropagation
from gnn.records import TripleRecord


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
    fused = RelationPropagation()(graph, x, weights)
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
    assert RelationPropagation()(graph, x, weights)[graph.entity_index["b"], 0] == 1.0
    graph.add([TripleRecord("a", "r", "c")])
    x = torch.zeros(graph.num_entities, 1)
    x[graph.entity_index["a"]] = 1.0
    moved = RelationPropagation()(graph, x, weights)
    assert moved[graph.entity_index["c"], 0] == 1.0


def test_weight_shape_is_checked() -> None:
    graph = random_graph(0)
    with pytest.raises(ValueError, match="Expected 'weights' of shape"):
        RelationPropagation()(
            graph, torch.zeros(graph.num_entities, 2), torch.zeros(3, 2 * graph.num_relations)
        )
