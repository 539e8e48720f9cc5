"""The DistMult message-passing layer and its sparse kernel against edge-list references."""

from __future__ import annotations

import pytest
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.layers import RelationalConv, weighted_transition
from tests.gnn.layers.test_relation_propagation import random_graph


def edge_list_reference(graph: KnowledgeGraph, x: torch.Tensor, weights: torch.Tensor, values: torch.Tensor):
    """``sum over edges (u, d, v) of values_e * x[u] * w[:, d]`` by gather and index_add."""
    sources, directions, destinations = graph.stacked_transitions().edge_keys()
    messages = x[sources] * weights.T[directions] * values.unsqueeze(1)  # (nnz, C)
    return torch.zeros_like(x).index_add(0, destinations, messages)


@pytest.mark.parametrize("seed", [0, 1])
def test_transposed_matrix_is_the_transpose(seed: int) -> None:
    stacked = random_graph(seed).stacked_transitions()
    values = torch.rand(stacked.matrix.values().numel())
    masked = stacked.with_values(values)
    assert torch.equal(masked.transposed.to_dense(), masked.matrix.to_dense().T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_transition_matches_edge_list_with_gradients(seed: int) -> None:
    graph = random_graph(seed)
    stacked = graph.stacked_transitions()
    torch.manual_seed(seed)
    nnz = stacked.matrix.values().numel()
    x = torch.randn(graph.num_entities, 6, requires_grad=True)
    weights = torch.randn(6, 2 * graph.num_relations, requires_grad=True)
    values = (torch.rand(nnz) > 0.3).float().requires_grad_()
    upstream = torch.randn(graph.num_entities, 6)

    got = weighted_transition(x, weights, stacked, values)
    grads = torch.autograd.grad((got * upstream).sum(), (x, weights, values))
    want = edge_list_reference(graph, x, weights, values)
    want_grads = torch.autograd.grad((want * upstream).sum(), (x, weights, values))

    torch.testing.assert_close(got, want)
    for g, w in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)


def test_relational_conv_is_permutation_equivariant_over_queries() -> None:
    graph = random_graph(3)
    stacked = graph.stacked_transitions()
    torch.manual_seed(0)
    conv = RelationalConv(4)
    n, b = graph.num_entities, 5
    h, boundary = torch.randn(n, b, 4), torch.randn(n, b, 4)
    relation = torch.randn(b, 2 * graph.num_relations, 4)
    degree = torch.rand(n) * 5
    out = conv(stacked, h, relation, boundary, degree)
    perm = torch.randperm(b)
    permuted = conv(stacked, h[:, perm], relation[perm], boundary[:, perm], degree)
    assert out.shape == (n, b, 4)
    torch.testing.assert_close(permuted, out[:, perm])
    assert repr(conv) == "RelationalConv(4)"


def test_inference_in_chunks_matches_one_product(monkeypatch: pytest.MonkeyPatch) -> None:
    import graphfuse.gnn.layers.transition as transition

    graph = random_graph(4)
    stacked = graph.stacked_transitions()
    x = torch.randn(graph.num_entities, 3)
    weights = torch.randn(3, 2 * graph.num_relations)
    values = torch.rand(stacked.matrix.values().numel())
    with torch.no_grad():
        whole = weighted_transition(x, weights, stacked, values)
        monkeypatch.setattr(transition, "CHUNK_ELEMENTS", 7)  # two rows per chunk
        chunked = weighted_transition(x, weights, stacked, values)
    torch.testing.assert_close(chunked, whole)
    torch.testing.assert_close(whole, edge_list_reference(graph, x, weights, values))


def test_blocked_values_give_each_query_its_own_edge_gradients() -> None:
    graph = random_graph(5)
    stacked = graph.stacked_transitions()
    nnz = stacked.matrix.values().numel()
    torch.manual_seed(5)
    x = torch.randn(graph.num_entities, 2 * 3)  # two queries of three features
    weights = torch.randn(6, 2 * graph.num_relations)
    upstream = torch.randn(graph.num_entities, 6)
    blocked = torch.ones(2, nnz, requires_grad=True)
    (weighted_transition(x, weights, stacked, blocked) * upstream).sum().backward()
    for b in range(2):
        single = torch.ones(nnz, requires_grad=True)
        columns = slice(3 * b, 3 * b + 3)
        out = weighted_transition(x[:, columns], weights[columns], stacked, single)
        (out * upstream[:, columns]).sum().backward()
        torch.testing.assert_close(blocked.grad[b], single.grad)
