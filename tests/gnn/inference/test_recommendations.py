"""Serving a recommender on a live graph: typed interaction pairs, each user's live items, node types, known
items excluded, calibration and cold items."""

from __future__ import annotations

import pytest
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, Retraction, TripleRecord
from graphfuse.gnn.inference.link_predictions import LinkPattern
from graphfuse.gnn.inference.recommendations import (
    Calibration,
    InteractionSchema,
    Recommendation,
    TextCalibration,
    interaction_pairs,
    profiles,
)
from graphfuse.gnn.models.graph_filter import GraphFilterRecommender

SCHEMA = InteractionSchema("bought", "user", "item")


def shop_graph() -> KnowledgeGraph:
    users = [EntityRecord(f"u{i}", type="user") for i in range(6)]
    items = [EntityRecord(f"i{i}", type="item") for i in range(6)]
    bought = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (3, 4), (4, 4), (4, 5), (5, 3)]
    triples = [TripleRecord(f"u{u}", "bought", f"i{i}") for u, i in bought]
    triples.append(TripleRecord("u0", "follows", "u1"))  # another relation: not an interaction
    return KnowledgeGraph(users + items, triples)


def fitted(graph: KnowledgeGraph, text: TextCalibration | None = None) -> Recommendation:
    users, items, user_entities, item_entities = interaction_pairs(graph, SCHEMA)
    model = GraphFilterRecommender.fit(users, items, user_entities.numel(), item_entities.numel())
    ids = graph.entity_ids
    return Recommendation(
        model,
        SCHEMA,
        [ids[e] for e in user_entities.tolist()],
        [ids[e] for e in item_entities.tolist()],
        Calibration(),
        "test",
        text,
    )


def recommend(graph: KnowledgeGraph, rec: Recommendation, user: str, top_k: int = 6, vectors=None):  # noqa: ANN001, ANN201
    pattern = LinkPattern(graph.entity_index[user], graph.relation_index["bought"], None, top_k)
    return rec.recommend_many(graph, [pattern], vectors)[0]


def test_interaction_pairs_index_users_and_items_of_their_types() -> None:
    graph = shop_graph()
    users, items, user_entities, item_entities = interaction_pairs(graph, SCHEMA)
    assert [graph.entity_ids[e] for e in user_entities.tolist()] == [f"u{i}" for i in range(6)]
    assert [graph.entity_ids[e] for e in item_entities.tolist()] == [f"i{i}" for i in range(6)]
    assert users.numel() == items.numel() == 12  # the follows edge is not an interaction
    assert (users[:2].tolist(), items[:2].tolist()) == ([0, 0], [0, 1])


def test_only_unknown_items_are_recommended_best_first_with_probabilities() -> None:
    graph = shop_graph()
    found = recommend(graph, fitted(graph), "u0")
    tails = [graph.entity_ids[t.tail] for t in found]
    assert set(tails) <= {"i2", "i3", "i4", "i5"} and tails[0] == "i2"  # bought by u0's co-buyers
    assert all(graph.types[t.tail] == "item" for t in found)  # never a user
    scores = [t.score for t in found]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    (path, *_) = found[0].evidence
    assert [graph.entity_ids[h.head] for h in path.hops][0] == "u0" and path.hops[1].reversed


def test_recommendations_batched_equal_one_at_a_time() -> None:
    graph = shop_graph()
    rec = fitted(graph)
    patterns = [
        LinkPattern(graph.entity_index[f"u{u}"], graph.relation_index["bought"], None, 4) for u in range(6)
    ]
    together = rec.recommend_many(graph, patterns)
    alone = [rec.recommend_many(graph, [p])[0] for p in patterns]
    for a, b in zip(together, alone, strict=True):  # tied items may swap places: compare as sets
        assert {t.tail for t in a} == {t.tail for t in b}
        assert [round(t.score, 4) for t in a] == [round(t.score, 4) for t in b]


def test_live_interactions_and_retractions_change_recommendations_at_once() -> None:
    graph = shop_graph()
    rec = fitted(graph)
    before = [t.tail for t in recommend(graph, rec, "u0")]
    graph.add([TripleRecord("u0", "bought", "i2")])
    after = [t.tail for t in recommend(graph, rec, "u0")]
    assert graph.entity_index["i2"] not in after and after != before
    graph.add([Retraction("u0", "bought", "i2")])
    assert [t.tail for t in recommend(graph, rec, "u0")] == before
    graph.add([EntityRecord("u9", type="user"), TripleRecord("u9", "bought", "i3")])  # unseen by the fit
    assert graph.entity_ids[recommend(graph, rec, "u9")[0].tail] in {"i4", "i5"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_recommending_on_cuda_equals_the_cpu() -> None:
    graph = shop_graph()
    on_cpu, on_cuda = fitted(graph), fitted(graph).to("cuda")
    assert on_cuda.model.vectors.device.type == "cuda"
    patterns = [
        LinkPattern(graph.entity_index[f"u{u}"], graph.relation_index["bought"], None, 4) for u in range(6)
    ]
    expected, found = on_cpu.recommend_many(graph, patterns), on_cuda.recommend_many(graph, patterns)
    for a, b in zip(expected, found, strict=True):
        assert {t.tail for t in a} == {t.tail for t in b}
        assert [round(t.score, 4) for t in a] == [round(t.score, 4) for t in b]
        assert [t.evidence for t in a] == [t.evidence for t in b]
    refreshed = on_cuda.refitted(*on_cuda.refit(graph))
    assert refreshed.model.vectors.device.type == "cuda"


def test_cold_items_compete_by_name_similarity() -> None:
    graph = shop_graph()
    rec = fitted(graph, TextCalibration(a=10.0, c=-5.0))
    graph.add([EntityRecord("i9", "fresh item", type="item")])
    vectors = torch.zeros(graph.num_entities, 2)
    vectors[graph.entity_index["i0"]] = torch.tensor([1.0, 0.0])
    vectors[graph.entity_index["i1"]] = torch.tensor([1.0, 0.0])
    vectors[graph.entity_index["i9"]] = torch.tensor([1.0, 0.0])  # just like u0's items
    found = recommend(graph, rec, "u0", vectors=vectors)
    cold = [t for t in found if graph.entity_ids[t.tail] == "i9"]
    assert cold and abs(cold[0].score - float(torch.sigmoid(torch.tensor(5.0)))) < 1e-5
    assert len(cold[0].evidence[0].hops) == 1  # the user's item with the most similar name
    assert all(graph.entity_ids[t.tail] != "i9" for t in recommend(graph, rec, "u0", vectors=None))


def test_calibration_falls_down_the_ranking_and_profiles_are_normalised() -> None:
    calibration = Calibration(a=3.0, b=-0.5, c=-2.0)
    scores = torch.tensor([[4.0, 3.0, 1.0]])
    probabilities = calibration(scores, scores[:, :1], torch.arange(3).unsqueeze(0))
    assert torch.all(probabilities[:, :-1] > probabilities[:, 1:])
    vectors = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    taste = profiles(vectors, [torch.tensor([0]), torch.tensor([], dtype=torch.long)])
    assert torch.allclose(taste, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_checkpoint_round_trip_keeps_ids_and_calibrations() -> None:
    graph = shop_graph()
    rec = fitted(graph, TextCalibration(2.0, -3.0))
    again = Recommendation.from_checkpoint(rec.checkpoint(), "again")
    assert (again.user_ids, again.item_ids, again.schema) == (rec.user_ids, rec.item_ids, rec.schema)
    assert (again.calibration, again.text) == (rec.calibration, rec.text)
    assert [t.tail for t in recommend(graph, again, "u1")] == [t.tail for t in recommend(graph, rec, "u1")]
