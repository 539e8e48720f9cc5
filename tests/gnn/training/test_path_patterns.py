"""Relation-targeted link prediction from path patterns on a small hand-made pharmacology graph."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.gnn.inference.link_predictions import LinkPattern, infer_many
from graphfuse.gnn.inference.pattern_links import PatternLinkInference
from graphfuse.gnn.models.path_patterns import PathPatternConfig
from graphfuse.gnn.training.path_patterns import fit_relation, train_path_patterns
from tests.helpers.pharmacology import pharmacology


def held_out(typed: bool = True) -> tuple[KnowledgeGraph, list[TripleRecord]]:
    entities, triples = pharmacology(typed)
    treats = [t for t in triples if t.relation == "treats"]
    held = random.Random(1).sample(treats, len(treats) // 5)
    return KnowledgeGraph(entities, [t for t in triples if t not in held]), held


@pytest.mark.parametrize("typed", [True, False])
def test_held_out_treatments_rank_above_other_pairs(typed: bool) -> None:
    graph, held = held_out(typed)
    treats = graph.relation_index["treats"]
    predictor, reports = train_path_patterns(graph, [treats], PathPatternConfig(folds=3))
    assert reports[0].patterns > 0 and reports[0].auroc > 0.7
    inference = PatternLinkInference(predictor, "test")
    compounds = torch.tensor([graph.entity_index[f"c{i}"] for i in range(40)])
    diseases = torch.tensor([graph.entity_index[f"d{i}"] for i in range(15)])
    scores = inference.tail_probabilities(graph, compounds, torch.full((40,), treats))[:, diseases]
    truth = np.zeros((40, 15), dtype=bool)
    for t in held:
        truth[int(t.head[1:]), int(t.tail[1:])] = True
    known = np.array([[graph.has_edge(int(c), treats, int(d)) for d in diseases] for c in compounds])
    assert roc_auc_score(truth[~known], scores.numpy()[~known]) > 0.8
    genes = torch.tensor([graph.entity_index[f"g{i}"] for i in range(30)])
    all_scores = inference.tail_probabilities(graph, compounds, torch.full((40,), treats))
    assert float(all_scores[:, genes].max()) == 0.0  # genes are never candidate tails of treats


def test_probabilities_add_up_to_about_the_missing_edges() -> None:
    graph, held = held_out()
    treats = graph.relation_index["treats"]
    predictor, _ = train_path_patterns(graph, [treats], PathPatternConfig(folds=3))
    compounds = torch.tensor([graph.entity_index[f"c{i}"] for i in range(40)])
    diseases = torch.tensor([graph.entity_index[f"d{i}"] for i in range(15)])
    scores = PatternLinkInference(predictor, "test").tail_probabilities(
        graph, compounds, torch.full((40,), treats)
    )[:, diseases]
    known = np.array([[graph.has_edge(int(c), treats, int(d)) for d in diseases] for c in compounds])
    expected = float(scores.numpy()[~known].sum())
    # calibrated for a graph missing a fold (a third) of what it has; a fifth of the treatments is held out
    assert 0.6 * len(held) < expected < 1.5 * len(held)


def test_scores_do_not_depend_on_the_batch() -> None:
    graph, _ = held_out()
    treats = graph.relation_index["treats"]
    inference = PatternLinkInference(train_path_patterns(graph, [treats])[0], "test")
    alone = inference.tail_probabilities(graph, torch.tensor([3]), torch.tensor([treats]))
    together = inference.tail_probabilities(
        graph, torch.tensor([7, 3, 0]), torch.tensor([treats, treats, treats + graph.num_relations])
    )
    assert torch.allclose(alone[0], together[1])
    head_side = inference.tail_probabilities(
        graph, torch.tensor([graph.entity_index["d2"]]), torch.tensor([treats + graph.num_relations])
    )
    tail_side = inference.tail_probabilities(
        graph, torch.arange(graph.num_entities), torch.full((graph.num_entities,), treats)
    )[:, graph.entity_index["d2"]]
    assert torch.allclose(head_side[0], tail_side, atol=1e-6)  # (?, treats, d2) scores as (c, treats, d2)


def test_evidence_is_grouped_by_pattern_with_its_share() -> None:
    graph, held = held_out()
    treats = graph.relation_index["treats"]
    inference = PatternLinkInference(train_path_patterns(graph, [treats])[0], "test")
    head = graph.entity_index[held[0].head]
    found = infer_many(inference, graph, [LinkPattern(head, treats, None, 3)])[0]
    assert found and all(0.0 < t.score < 1.0 for t in found)
    evidence = [e for t in found for e in t.evidence]
    assert evidence
    shares: dict[str, float] = {}
    for e in evidence:
        assert e.pattern.startswith("Compound ") and 0.0 < e.weight <= 1.0
        assert e.hops[0].head == head or e.hops[0].tail == head
        shares.setdefault(e.pattern, e.weight)
    assert "Compound -binds-> Gene <-associates- Disease" in {e.pattern for e in evidence}
    for t in found:
        per_pattern = {e.pattern: e.weight for e in t.evidence}
        assert sum(per_pattern.values()) <= 1.0 + 1e-6


def test_a_relation_with_too_few_edges_is_refused() -> None:
    entities, triples = pharmacology()
    graph = KnowledgeGraph(entities, [*triples, TripleRecord("c0", "cures", "d0")])
    with pytest.raises(ValueError, match="'cures' has 1 edges"):
        fit_relation(graph, graph.relation_index["cures"], PathPatternConfig())
