"""The DistMult message-passing layer and its sparse kernel against edge-list references."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import MessagePassing

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.formats.pyg import to_data
from graphfuse.gnn.layers import RelationalConv, weighted_transition
from graphfuse.gnn.layers.transition import directed_edge_index
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


def count_paths(layer: MessagePassing) -> dict[str, int]:
    """Calls of the fused path (``message_and_aggregate``) and of the per-edge one (``message``)."""
    calls = {"message_and_aggregate": 0, "message": 0}

    def counter(name: str):  # noqa: ANN202
        def hook(*args) -> None:  # noqa: ANN002
            calls[name] += 1

        return hook

    layer.register_message_and_aggregate_forward_hook(counter("message_and_aggregate"))
    layer.register_message_forward_hook(counter("message"))
    return calls


def test_relational_conv_is_a_fused_message_passing_layer() -> None:
    conv = RelationalConv(4)
    assert isinstance(conv, MessagePassing) and conv.fuse and conv.node_dim == 0
    # PyG's generated propagate: its fused path hands the sparse matrix on without reading its indices
    assert type(conv).propagate is not MessagePassing.propagate
    assert list(conv.state_dict()) == ["linear.weight", "linear.bias", "norm.weight", "norm.bias"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("grad", [True, False])
def test_stacked_transitions_and_pyg_edge_index_give_the_same_layer(seed: int, grad: bool) -> None:
    """The fused kernel over the stacked transitions against PyG's per-edge messages and sum over the same
    graph as a ``Data`` gives it (inverse edges added by the layer): outputs and all gradients."""
    graph = random_graph(seed)
    data = to_data(graph)
    torch.manual_seed(seed)
    conv = RelationalConv(4)
    calls = count_paths(conv)
    n, b = graph.num_entities, 3
    h, boundary = torch.randn(n, b, 4), torch.randn(n, b, 4)
    relation = torch.randn(b, 2 * graph.num_relations, 4)
    degree = torch.rand(n) * 5
    upstream = torch.randn(n, b, 4)

    def run(*graph_and_type: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        inputs = [t.clone().requires_grad_(grad) for t in (h, relation, boundary)]
        with torch.set_grad_enabled(grad):
            out = conv(graph_and_type[0], *inputs[:2], inputs[2], degree, edge_type=graph_and_type[1])
        if not grad:
            return out, []
        return out, list(torch.autograd.grad((out * upstream).sum(), inputs + list(conv.parameters())))

    fused, fused_grads = run(graph.stacked_transitions(), None)
    assert calls == {"message_and_aggregate": 1, "message": 0}
    per_edge, per_edge_grads = run(data.edge_index, data.edge_type)
    assert calls == {"message_and_aggregate": 1, "message": 1}
    torch.testing.assert_close(fused, per_edge, atol=1e-5, rtol=1e-5)
    assert len(fused_grads) == (7 if grad else 0)
    for got, want in zip(fused_grads, per_edge_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_edge_weights_match_the_stacked_values_of_the_same_edges() -> None:
    graph = random_graph(6)
    stacked = graph.stacked_transitions()
    heads, rels, tails = graph.edges
    n, r = graph.num_entities, graph.num_relations
    weights = torch.rand(heads.numel(), generator=torch.Generator().manual_seed(6))
    sources, directions, destinations = stacked.edge_keys()  # each stored value's edge, inverses mapped back
    forward = directions < r
    key = torch.where(
        forward,
        (sources * r + directions) * n + destinations,
        (destinations * r + directions - r) * n + sources,
    )
    order = torch.argsort((heads * r + rels) * n + tails)
    values = weights[order[torch.searchsorted(((heads * r + rels) * n + tails)[order], key)]]  # (nnz,)
    torch.manual_seed(6)
    conv = RelationalConv(4)
    h, relation, degree = torch.randn(n, 2, 4), torch.randn(2, 2 * r, 4), torch.rand(n)
    fused = conv(stacked, h, relation, h, degree, values)
    per_edge = conv(torch.stack([heads, tails]), h, relation, h, degree, weights, edge_type=rels)
    torch.testing.assert_close(fused, per_edge, atol=1e-5, rtol=1e-5)


def test_pyg_inputs_are_checked() -> None:
    graph = random_graph(0)
    data = to_data(graph)
    conv = RelationalConv(4)
    n, r = graph.num_entities, graph.num_relations
    h, relation, degree = torch.randn(n, 2, 4), torch.randn(2, 2 * r, 4), torch.rand(n)
    with pytest.raises(ValueError, match="Expected 'edge_type' of shape"):
        conv(data.edge_index, h, relation, h, degree)
    with pytest.raises(ValueError, match=r"Expected 'edge_type' in \[0, 2\)"):
        conv(data.edge_index, h, relation[:, :4], h, degree, edge_type=data.edge_type)
    with pytest.raises(ValueError, match="Expected 'values' of shape"):
        conv(data.edge_index, h, relation, h, degree, torch.ones(3), edge_type=data.edge_type)
    with pytest.raises(ValueError, match="Expected no 'edge_type'"):
        conv(graph.stacked_transitions(), h, relation, h, degree, edge_type=data.edge_type)


def test_directed_edge_index_orders_inverses_as_the_stacked_transitions() -> None:
    graph = random_graph(7)
    heads, rels, tails = graph.edges
    edge_index, edge_type = directed_edge_index(torch.stack([heads, tails]), rels, graph.num_relations)
    sources, directions, destinations = graph.stacked_transitions().edge_keys()
    assert sorted(zip(*edge_index.tolist(), edge_type.tolist(), strict=True)) == sorted(
        zip(sources.tolist(), destinations.tolist(), directions.tolist(), strict=True)
    )
