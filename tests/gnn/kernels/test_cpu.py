"""The fused CPU kernels give what torch's sparse products give."""

import numpy as np
import pytest
import torch

import graphfuse.gnn.data.graph
from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import Retraction, TripleRecord
from graphfuse.gnn.kernels import cpu as cpu_kernels
from graphfuse.gnn.layers.transition import Frontier, fused_transition, live_directions, weighted_transition

pytestmark = pytest.mark.skipif(not cpu_kernels.available(torch.zeros(1)), reason="numba is not installed")


def updated_graph(seed: int) -> KnowledgeGraph:
    """A random graph read once, then updated: its transitions have a mask and a delta."""
    generator = torch.Generator().manual_seed(seed)
    heads, rels, tails = (torch.randint(0, size, (300,), generator=generator) for size in (60, 4, 60))
    graph = KnowledgeGraph(
        triples=[TripleRecord(f"e{h}", f"r{r}", f"e{t}") for h, r, t in zip(heads, rels, tails, strict=True)]
    )
    graph.stacked_transitions()
    h, r, t = (column[:20].tolist() for column in graph.edges)
    graph.add(
        [
            Retraction(graph.entity_ids[a], graph.relation_ids[b], graph.entity_ids[c])
            for a, b, c in zip(h, r, t, strict=True)
        ]
    )
    graph.add([TripleRecord(f"e{i}", "r5", f"new{i % 7}") for i in range(30)])
    return graph


def torch_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_kernels, "available", lambda *tensors: False)


@pytest.mark.parametrize("columns", [1, 7, 64, 70])
@pytest.mark.parametrize("seed", [0, 1])
def test_weighted_transition_matches_torch(monkeypatch, seed, columns):
    graph = updated_graph(seed)
    stacked = graph.stacked_transitions()
    assert stacked.mask is not None and stacked.delta is not None
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(graph.num_entities, columns, generator=generator)
    x[torch.rand(graph.num_entities, generator=generator) < 0.7] = 0.0  # rows without mass are skipped
    x[:, 0] -= 0.5  # signed inputs (link prediction's features) too
    weights = torch.rand(columns, 2 * graph.num_relations, generator=generator)
    values = torch.rand(stacked.nnz, generator=generator)
    fused = weighted_transition(x, weights, stacked), weighted_transition(x, weights, stacked, values)
    torch_only(monkeypatch)
    reference = weighted_transition(x, weights, stacked), weighted_transition(x, weights, stacked, values)
    for got, want in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("columns", [1, 63, 64, 65, 130])
def test_live_directions_match_the_degree_product(monkeypatch, columns):
    graph = updated_graph(columns)
    degree = graph.out_degree()
    assert bool((degree.values() == 0).any())  # retracted edges leave explicit zero counts
    generator = torch.Generator().manual_seed(columns)
    x = torch.rand(graph.num_entities, columns, generator=generator) * 0.4  # under the threshold
    x[torch.randint(0, graph.num_entities, (columns,), generator=generator), torch.arange(columns)] = 1.0
    fused = live_directions(degree, x, 0.5)
    torch_only(monkeypatch)
    reference = live_directions(degree, x, 0.5)
    assert fused.shape == (columns, 2 * graph.num_relations)
    assert torch.equal(fused, reference)
    assert fused.any() and not fused.all()


def test_a_last_hop_skips_the_threshold_and_still_answers_live_directions():
    """A frontier moved as the ``last`` hop has no per-column summary; asking it for live directions
    falls back to the degree product, with the same answer."""
    graph = updated_graph(5)
    degree, stacked = graph.out_degree(), graph.stacked_transitions()
    x = torch.rand(graph.num_entities, 5, generator=torch.Generator().manual_seed(1))
    weights = torch.ones(5, 2 * graph.num_relations)
    with torch.inference_mode():
        last = Frontier(x, 0.5).move(weights, stacked, last=True)
        other = Frontier(x, 0.5).move(weights, stacked)
    assert last.summary is not None and last.summary.alive.shape[1] == 0
    assert torch.equal(last.mass, other.mass)
    assert torch.equal(last.live_directions(degree), other.live_directions(degree))


def test_live_directions_follow_the_graph_as_it_changes(monkeypatch):
    graph = updated_graph(3)
    x = torch.zeros(graph.num_entities, 2)
    x[graph.entity_index["e1"], 0] = x[graph.entity_index["new1"], 1] = 1.0
    before = live_directions(graph.out_degree(), x, 0.5)
    graph.add([TripleRecord("new1", "r0", "e1")])  # new1 gains a way out; its degrees are read again
    after = live_directions(graph.out_degree(), x, 0.5)
    torch_only(monkeypatch)
    assert torch.equal(after, live_directions(graph.out_degree(), x, 0.5))
    r0 = graph.relation_index["r0"]
    assert not before[1, r0] and after[1, r0]


def test_kernels_are_not_used_where_gradients_are_needed():
    x = torch.rand(3, 2, requires_grad=True)
    assert not cpu_kernels.available(x)
    assert not cpu_kernels.available(torch.rand(3, 2, dtype=torch.float64))
    assert cpu_kernels.available(torch.rand(3, 2))


def test_single_direction_transition_matches_torch(monkeypatch):
    monkeypatch.setattr(graphfuse.gnn.data.graph, "FUSED_MIN_VALUES", 0)  # small directions too
    graph = updated_graph(5)
    x = torch.rand(graph.num_entities, 9, generator=torch.Generator().manual_seed(5))
    x[::3] = 0.0
    fused = [graph.transition(d).apply(x) for d in range(2 * graph.num_relations)]
    torch_only(monkeypatch)
    for d, got in enumerate(fused):
        torch.testing.assert_close(got, graph.transition(d).apply(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("columns", [1, 64, 70])
def test_push_and_pull_give_the_same_hop(monkeypatch, columns):
    """Pushing from the nodes with mass and pulling into every node give torch's capped hop, with the
    excluded cells cleared and the same summary, on a graph with a mask and a delta."""
    graph = updated_graph(columns)
    stacked = graph.stacked_transitions()
    generator = torch.Generator().manual_seed(columns)
    x = torch.zeros(graph.num_entities, columns)
    x[torch.randint(0, graph.num_entities, (columns,), generator=generator), torch.arange(columns)] = 0.9
    weights = torch.rand(columns, 2 * graph.num_relations, generator=generator) * 3
    cells = Frontier.start(x, 0.5)[1]
    degree = graph.out_degree()
    hops = {
        (push, live): fused_transition(
            x, weights, stacked, cap=1.0, exclude=cells.by_node, threshold=0.5, push=push, degree=live
        )
        for push in (True, False)
        for live in (None, degree)  # with the degree, the kernel records the live directions itself
    }
    torch_only(monkeypatch)
    reference = Frontier(x, 0.5).move(weights, stacked, cap=1.0, exclude=cells).mass
    assert reference.max() == 1.0  # the cap is reached
    for (_, live), (mass, summary) in hops.items():
        torch.testing.assert_close(mass, reference, rtol=1e-5, atol=1e-6)
        assert np.array_equal(summary.active, (reference != 0).any(1).numpy())
        assert (summary.live is not None) == (live is not None)
        assert torch.equal(
            cpu_kernels.live_directions(degree, summary), live_directions(degree, reference, 0.5)
        )
    assert not hops[True, None][0][cells.nodes, cells.columns].any()


@pytest.mark.parametrize("push", [True, False])
@pytest.mark.parametrize("earlier", [0, 2])
@pytest.mark.parametrize("with_held", [True, False])
def test_a_hop_mixes_the_levels_as_it_writes(push, earlier, with_held):
    """With ``mix_into``, a hop also writes the mix of the earlier levels and itself; rows an earlier level
    does not hold are never read."""
    graph = updated_graph(7)
    generator = torch.Generator().manual_seed(earlier)
    n = graph.num_entities
    x = torch.rand(n, 7, generator=generator) * (torch.rand(n, 7, generator=generator) < 0.3)
    weights = torch.rand(7, 2 * graph.num_relations, generator=generator)
    levels = torch.rand(earlier, n, 7, generator=generator) * (
        torch.rand(earlier, n, 1, generator=generator) < 0.5
    )
    held = tuple((level != 0).any(1).numpy() for level in levels) if with_held else None
    expected_levels = levels.clone()
    if with_held and earlier:  # what the kernel must not read
        levels[:, n // 2][~torch.from_numpy(np.stack(held))[:, n // 2]] = float("nan")
    attention = torch.rand(7, earlier + 1, generator=generator)
    mixed = torch.full((n, 7), float("nan"))
    stacked = graph.stacked_transitions()
    plain, _ = fused_transition(x, weights, stacked, cap=1.0, push=push)
    mix = cpu_kernels.HopMix(levels, attention, mixed, held)
    moved, _ = fused_transition(x, weights, stacked, cap=1.0, push=push, mix_into=mix)
    assert torch.equal(moved, plain)
    hops = torch.cat([expected_levels, moved[None]])
    torch.testing.assert_close(mixed, sum(hops[t] * attention[:, t] for t in range(earlier + 1)))
    with pytest.raises(ValueError, match="mixed"):
        fused_transition(
            x, weights, stacked, mix_into=cpu_kernels.HopMix(levels, attention, mixed[:-1], held)
        )
    with pytest.raises(ValueError, match="attention"):
        fused_transition(
            x, weights, stacked, mix_into=cpu_kernels.HopMix(levels, attention[:, :-1], mixed, held)
        )
    if earlier:
        short = tuple(rows[:-1] for rows in held or [np.ones(n, np.bool_)] * earlier)
        with pytest.raises(ValueError, match="held rows"):
            fused_transition(
                x, weights, stacked, mix_into=cpu_kernels.HopMix(levels, attention, mixed, short)
            )


def test_count_reached_matches_torch():
    generator = torch.Generator().manual_seed(0)
    levels = torch.rand(3, 70, 5, generator=generator) * (torch.rand(3, 70, 5, generator=generator) < 0.2)
    for hops in (1, 2, 3):
        expected = (levels[:hops] > 0).any(0).sum(0, dtype=torch.int32)
        assert torch.equal(cpu_kernels.count_reached(levels, hops), expected)


def test_read_words_matches_torchs_masked_attention():
    generator = torch.Generator().manual_seed(3)
    query, words = torch.randn(5, 8, generator=generator), torch.randn(5, 4, 8, generator=generator)
    mask = torch.tensor(
        [[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]], dtype=torch.bool
    )
    logits = (words @ query[:, :, None])[..., 0] * 0.5
    expected = torch.softmax(logits.masked_fill(~mask, float("-inf")), -1)[:, None] @ words
    got = cpu_kernels.read_words(query, words, mask, 0.5)
    torch.testing.assert_close(got[:4], expected[:4, 0])
    assert got[4].isnan().all()  # no word to read, as torch's softmax over nothing


def test_relation_softmax_matches_torchs_over_the_live_directions():
    generator = torch.Generator().manual_seed(4)
    columns, directions = 70, 6  # two words of live bits
    instruction, keys = (
        torch.randn(columns, 8, generator=generator),
        torch.randn(directions, 8, generator=generator),
    )
    live = torch.rand(columns, directions, generator=generator) < 0.5
    live[3] = False  # a question with nowhere to go
    logits = torch.nn.functional.normalize(instruction, dim=-1) @ keys.T
    expected = torch.softmax(logits.masked_fill(~live, float("-inf")), -1).nan_to_num(0.0)
    words = np.zeros((directions, 2), dtype=np.uint64)
    for c, d in live.nonzero().tolist():
        words[d, c // 64] |= np.uint64(1) << np.uint64(c % 64)
    got = cpu_kernels.relation_softmax(instruction, keys, words)
    torch.testing.assert_close(got, expected)
    assert not got[3].any()
