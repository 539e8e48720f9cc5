"""Degree-weighted walk counts and the pattern regression's checkpoint."""

from __future__ import annotations

import numpy as np
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.models.path_patterns import (
    DirectionMatrices,
    PathPatternConfig,
    PathPatternPredictor,
    RelationPatterns,
    candidates,
    reversed_pattern,
)


def small() -> KnowledgeGraph:
    triples = [("c1", "binds", "g1"), ("c1", "binds", "g2"), ("c2", "binds", "g2"), ("d1", "has", "g1")]
    triples += [("d1", "has", "g2"), ("d2", "has", "g2"), ("c1", "treats", "d1")]
    kinds = {"c": "Compound", "g": "Gene", "d": "Disease"}
    entities = [EntityRecord(e, None, (), kinds[e[0]]) for e in ("c1", "c2", "g1", "g2", "d1", "d2")]
    return KnowledgeGraph(entities, [TripleRecord(*t) for t in triples])


def test_walk_counts_weigh_each_edge_by_its_degrees() -> None:
    graph = small()
    matrices = DirectionMatrices(graph, damping=0.5)
    i = graph.entity_index
    binds, has = graph.relation_index["binds"], graph.relation_index["has"]
    pattern = (binds, has + graph.num_relations)  # compound -binds-> gene <-has- disease
    walks = matrices.walks(np.array([i["c1"]]), [pattern], np.array([i["d1"], i["d2"]]))
    # c1 binds 2 genes; g1 is bound once, g2 twice; g1 is had by 1 disease, g2 by 2; d1 has 2 genes, d2 one
    via_g1 = (2 * 1) ** -0.5 * (1 * 2) ** -0.5
    via_g2 = (2 * 2) ** -0.5 * (2 * 2) ** -0.5
    assert np.allclose(walks[0, 0], [via_g1 + via_g2, (2 * 2) ** -0.5 * (2 * 1) ** -0.5])


def test_a_pattern_walked_backwards_counts_the_same_walks() -> None:
    graph = small()
    matrices = DirectionMatrices(graph, damping=0.4)
    pattern = (graph.relation_index["binds"], graph.relation_index["has"] + graph.num_relations)
    starts, ends = np.arange(graph.num_entities), np.arange(graph.num_entities)
    forward = matrices.walks(starts, [pattern], ends)[0]
    backward = matrices.walks(ends, [reversed_pattern(pattern, graph.num_relations)], starts)[0]
    assert np.allclose(forward, backward.T)


def test_pairs_are_the_grid_entries() -> None:
    graph = small()
    matrices = DirectionMatrices(graph, damping=0.4)
    pattern = (graph.relation_index["binds"], graph.relation_index["has"] + graph.num_relations)
    starts, ends = np.array([0, 1]), np.array([4, 5])
    grid = matrices.walks(starts, [pattern], ends)[0]
    pairs = matrices.walks(starts, [pattern], ends, (np.array([1, 0, 0]), np.array([0, 1, 0])))[0]
    assert np.allclose(pairs, [grid[1, 0], grid[0, 1], grid[0, 0]])


def test_hidden_edges_leave_the_matrices() -> None:
    graph = small()
    treats = graph.relation_index["treats"]
    hidden = torch.tensor([[graph.entity_index["c1"], treats, graph.entity_index["d1"]]])
    assert DirectionMatrices(graph, 0.4)[treats].nnz == 1
    assert DirectionMatrices(graph, 0.4, hidden)[treats].nnz == 0


def test_candidates_by_kind_or_by_relations() -> None:
    graph = small()
    assert candidates(graph, ("Compound",), {}, 0.0).tolist() == [0, 1]
    binds = graph.relation_index["binds"]
    assert candidates(graph, (), {binds: 1.0}, 0.5).tolist() == [0, 1]  # untyped: who binds


def test_checkpoint_round_trip() -> None:
    fitted = RelationPatterns(
        "treats",
        [(("binds", False), ("has", True))],
        torch.tensor([0.5]),
        torch.zeros(3),
        torch.ones(3),
        torch.tensor([1.0, 0.2, 0.3]),
        -2.0,
        ("Compound",),
        ("Disease",),
        {},
        {("has", False): 1.0},
        0.0,
        0.5,
        (0.7, -0.4),
    )
    predictor = PathPatternPredictor([fitted], PathPatternConfig(damping=0.3))
    again = PathPatternPredictor.from_checkpoint(predictor.checkpoint())
    assert again.config == predictor.config
    restored = again.targets["treats"]
    assert restored.patterns == fitted.patterns and restored.tail_profile == fitted.tail_profile
    walks = np.array([[0.0, 1.0]], dtype=np.float32)
    degrees = np.array([1.0, 2.0])
    assert torch.equal(restored.logits(walks, degrees, degrees), fitted.logits(walks, degrees, degrees))
    raw = fitted.features(walks, degrees, degrees) @ fitted.weights + fitted.bias
    assert torch.allclose(fitted.logits(walks, degrees, degrees), 0.7 * raw - 0.4)  # Platt-scaled
