import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import Retraction, TripleRecord
from graphfuse.gnn.inference.evidence import EvidenceHop, EvidenceWalker, path_walker


def graph_of(*triples: tuple[str, str, str]) -> KnowledgeGraph:
    return KnowledgeGraph(triples=[TripleRecord(*t) for t in triples])


def scores(graph: KnowledgeGraph, mass: dict[str, float]) -> torch.Tensor:
    """An ``(N, 1)`` column with ``mass`` on the named entities."""
    x = torch.zeros(graph.num_entities, 1)
    for name, value in mass.items():
        x[graph.entity_index[name], 0] = value
    return x


def named(graph: KnowledgeGraph, hops: tuple[EvidenceHop, ...]) -> list[tuple[str, str, str]]:
    ids = graph.entity_ids
    return [(ids[h.head], graph.relation_ids[h.relation], ids[h.tail]) for h in hops]


def walker(graph: KnowledgeGraph, levels: list[dict[str, float]], weights: list[dict[str, float]], start="t"):  # noqa: ANN001, ANN201
    """A walker from ``start`` over given level scores and per-hop weights by directed relation name
    (``"r"`` forward, ``"r^-1"`` reversed)."""
    r = graph.num_relations
    w = torch.zeros(len(weights), 2 * r)
    for hop, by_name in enumerate(weights):
        for name, value in by_name.items():
            base, reverse = name.removesuffix("^-1"), name.endswith("^-1")
            w[hop, graph.relation_index[base] + r * reverse] = value
    stacked = torch.stack([scores(graph, level) for level in levels])
    return EvidenceWalker(graph, scores(graph, {start: 1.0}), stacked, 0, w)


def test_paths_come_strongest_first_with_the_product_of_their_weights():
    graph = graph_of(("t", "r", "a"), ("t", "r", "b"), ("a", "s", "x"), ("b", "s", "x"), ("t", "q", "x"))
    walk = walker(graph, [{"a": 0.4, "b": 0.9, "x": 0.2}, {"x": 1.0}], [{"r": 0.8, "q": 0.2}, {"s": 0.5}])
    found = walk.walk(graph.entity_index["x"], 2, 5)
    assert [named(graph, e.hops) for e in found] == [
        [("t", "r", "b"), ("b", "s", "x")],  # b holds more mass than a: its path is tried first
        [("t", "r", "a"), ("a", "s", "x")],
    ]
    assert [round(e.weight, 6) for e in found] == [0.4, 0.4]
    assert [[round(h.weight, 6) for h in e.hops] for e in found] == [[0.8, 0.5], [0.8, 0.5]]  # each hop's own
    assert len(walk.walk(graph.entity_index["x"], 2, 1)) == 1  # the limit
    (direct,) = walk.walk(graph.entity_index["x"], 1, 5)  # one hop: x straight from the topic
    assert named(graph, direct.hops) == [("t", "q", "x")] and direct.weight == torch.tensor(0.2).item()


def test_weak_relations_only_where_no_strong_one_leads_back_and_zero_weight_never():
    graph = graph_of(("t", "strong", "x"), ("t", "weak", "x"), ("t", "weak", "y"), ("t", "never", "z"))
    walk = walker(graph, [{"x": 1.0, "y": 0.01, "z": 1.0}], [{"strong": 0.9, "weak": 0.005}])
    (at_x,) = walk.walk(graph.entity_index["x"], 1, 5)
    assert named(graph, at_x.hops) == [("t", "strong", "x")]
    (at_y,) = walk.walk(graph.entity_index["y"], 1, 5)
    assert named(graph, at_y.hops) == [("t", "weak", "y")]
    assert walk.walk(graph.entity_index["z"], 1, 5) == []


def test_a_path_through_one_entity_twice_is_skipped_and_reversed_edges_keep_their_stored_direction():
    graph = graph_of(("t", "r", "y"), ("y", "r", "y"), ("t", "r", "a"), ("y", "r", "a"))
    walk = walker(graph, [{"y": 1.0, "a": 1.0}, {"y": 1.0, "a": 1.0}], [{"r": 1.0}, {"r": 1.0, "r^-1": 1.0}])
    found = {tuple(named(graph, e.hops)): e for e in walk.walk(graph.entity_index["y"], 2, 5)}
    assert (("t", "r", "y"), ("y", "r", "y")) not in found  # through y twice
    back = found[("t", "r", "a"), ("y", "r", "a")]  # a -> y walks r backwards: the stored edge is y -r-> a
    assert [hop.reversed for hop in back.hops] == [False, True]


def test_edges_added_since_the_merge_are_walked_and_retracted_ones_are_not():
    graph = graph_of(("t", "r", "x"), ("t", "r", "old"))
    graph.stacked_transitions()
    graph.add([TripleRecord("t", "r", "new"), Retraction("t", "r", "old")])
    assert graph.stacked_transitions().delta is not None
    walk = walker(graph, [{"x": 1.0, "new": 1.0, "old": 1.0}], [{"r": 1.0}])
    (added,) = walk.walk(graph.entity_index["new"], 1, 5)
    assert named(graph, added.hops) == [("t", "r", "new")]
    assert walk.walk(graph.entity_index["old"], 1, 5) == []


def test_a_relation_path_walker_follows_its_directions():
    graph = graph_of(("t", "r", "a"), ("a", "s", "x"), ("t", "s", "x"))
    r, s = graph.relation_index["r"], graph.relation_index["s"]
    (found,) = path_walker(graph, scores(graph, {"t": 1.0})[:, 0], (r, s)).walk(graph.entity_index["x"], 2, 5)
    assert named(graph, found.hops) == [("t", "r", "a"), ("a", "s", "x")] and found.weight == 1.0
