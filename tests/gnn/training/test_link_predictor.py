"""Link prediction: filtered ranking, edge hiding, training on a rule, serving, explanations."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.inference.link_predictions import LinkInference, LinkPattern, infer_many
from graphfuse.gnn.models.link_predictor import LinkEnsemble, LinkPredictor
from graphfuse.gnn.training.link_predictor import (
    KnownAnswers,
    LinkTrainConfig,
    both_directions,
    calibrate,
    edge_value_keys,
    filtered_ranks,
    hide_edges,
    link_metrics,
    train_link_predictor,
)


def test_filtered_ranks_by_hand() -> None:
    # Entities 0..3, one relation (directions 0 = forward, 1 = inverse). Known: (0, r, 1) in train.
    known = KnownAnswers([torch.tensor([[0, 0, 1]]), torch.tensor([[0, 0, 2]])], num_relations=1)
    scores = {
        (0, 0): [0.1, 0.9, 0.5, 0.7],  # answer 2 scores 0.5; 1 scores more but is a known answer: filtered
        (2, 1): [0.8, 0.2, 0.0, 0.2],  # head query (?, r, 2) as (2, inverse, ?): answer 0 is best
    }

    def score(entities: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        return torch.tensor(
            [scores[(e, d)] for e, d in zip(entities.tolist(), directions.tolist(), strict=True)]
        )

    ranks = filtered_ranks(score, both_directions(torch.tensor([[0, 0, 2]]), 1), known, num_entities=4)
    assert ranks.tolist() == [2.0, 1.0]
    metrics = link_metrics(ranks)
    assert metrics.mrr == pytest.approx(0.75)
    assert (metrics.hits_at_1, metrics.hits_at_3, metrics.hits_at_10) == (0.5, 1.0, 1.0)


def test_ties_count_half_so_a_constant_scorer_earns_nothing() -> None:
    known = KnownAnswers([torch.tensor([[0, 0, 1]])], num_relations=1)
    ranks = filtered_ranks(
        lambda e, d: torch.zeros(e.numel(), 5), torch.tensor([[0, 0, 1]]), known, num_entities=5
    )
    assert ranks.tolist() == [3.0]  # the middle of 5 tied candidates


def test_hide_edges_hides_both_directions_of_the_given_triples_only() -> None:
    graph = KnowledgeGraph(
        [], [TripleRecord("a", "r", "b"), TripleRecord("b", "r", "c"), TripleRecord("a", "s", "c")]
    )
    keys = edge_value_keys(graph)
    values = hide_edges(graph, keys, torch.tensor([[0, 0, 1]]))  # a -r-> b
    sources, directions, destinations = graph.stacked_transitions().edge_keys()
    hidden = {
        (int(s), int(d), int(t))
        for s, d, t, v in zip(sources, directions, destinations, values, strict=True)
        if v == 0
    }
    assert hidden == {(0, 0, 1), (1, 2, 0)}  # a -r-> b, and b -r^-1-> a (direction R + 0 = 2)


def rule_graph(seed: int = 0, people: int = 30) -> tuple[KnowledgeGraph, torch.Tensor, torch.Tensor]:
    """``child_of`` is exactly the inverse of ``parent_of``; some ``child_of`` facts are held out."""
    rng = random.Random(seed)
    parent = {(rng.randrange(people), rng.randrange(people)) for _ in range(3 * people)}
    parent = sorted((a, b) for a, b in parent if a != b)
    child = [(b, a) for a, b in parent]
    rng.shuffle(child)
    held = child[: len(child) // 5]
    train = [TripleRecord(f"p{a}", "parent_of", f"p{b}") for a, b in parent] + [
        TripleRecord(f"p{a}", "child_of", f"p{b}") for a, b in child[len(held) :]
    ]
    graph = KnowledgeGraph([EntityRecord(f"p{i}") for i in range(people)], train)

    def index(triples: list[TripleRecord]) -> torch.Tensor:
        return torch.tensor(
            [
                [graph.entity_index[t.head], graph.relation_index[t.relation], graph.entity_index[t.tail]]
                for t in triples
            ]
        )

    test = index([TripleRecord(f"p{a}", "child_of", f"p{b}") for a, b in held])
    return graph, index(train), test


@pytest.fixture(scope="module")
def trained() -> tuple[KnowledgeGraph, torch.Tensor, torch.Tensor, LinkPredictor]:
    graph, train, test = rule_graph()
    config = LinkTrainConfig(epochs=8, batch_size=16, dim=16, layers=2, lr=1e-2)
    losses: list[float] = []
    model = train_link_predictor(graph, train, config, on_step=lambda step, total, loss: losses.append(loss))
    assert len(losses) == config.epochs * -(-train.shape[0] // config.batch_size)
    return graph, train, test, model


def test_training_learns_an_inverse_rule_from_hidden_edges(trained) -> None:
    graph, train, test, model = trained
    known = KnownAnswers([train, test], graph.num_relations)
    stacked = graph.stacked_transitions()
    with torch.no_grad():
        ranks = filtered_ranks(
            lambda e, d: model(stacked, graph.num_entities, e, d),
            both_directions(test, graph.num_relations),
            known,
            graph.num_entities,
        )
    untrained = LinkPredictor(model.config)
    with torch.no_grad():
        baseline = filtered_ranks(
            lambda e, d: untrained(stacked, graph.num_entities, e, d),
            both_directions(test, graph.num_relations),
            known,
            graph.num_entities,
        )
    assert link_metrics(ranks).mrr > 0.8
    assert link_metrics(ranks).mrr > 2 * link_metrics(baseline).mrr


def test_calibration_makes_scores_probabilities(trained) -> None:
    graph, train, test, model = trained
    known = KnownAnswers([train, test], graph.num_relations)
    stacked = graph.stacked_transitions()
    queries = both_directions(test, graph.num_relations)
    calibrate(
        model, lambda e, d: model(stacked, graph.num_entities, e, d), queries, known, graph.num_entities
    )
    entity, direction, answer = queries.unbind(1)
    with torch.no_grad():
        probabilities = model.probability(model(stacked, graph.num_entities, entity, direction))
    right = probabilities[torch.arange(answer.numel()), answer]
    assert float(right.mean()) > 0.5 > float(probabilities.mean())  # answers likely, the rest unlikely


def test_inference_scores_explains_and_survives_new_relations(trained) -> None:
    graph, _, test, model = trained
    inference = LinkInference(model, graph.relation_ids, "test")
    h, r, t = test[0].tolist()
    probabilities = inference.tail_probabilities(graph, torch.tensor([h]), torch.tensor([r]))
    assert probabilities.shape == (1, graph.num_entities)
    assert 0.0 <= float(probabilities.min()) <= float(probabilities.max()) <= 1.0

    evidence = inference.explain(graph, h, r, t)
    assert evidence, "an inferred child_of must be explained by the parent_of edge"
    first = evidence[0]
    assert sum(e.weight for e in evidence) == pytest.approx(1.0)
    walked = [hop.tail if hop.reversed else hop.head for hop in first.hops[:1]]
    assert walked == [h]
    last = first.hops[-1]
    assert (last.head if last.reversed else last.tail) == t
    assert any(graph.relation_ids[hop.relation] == "parent_of" for hop in first.hops)

    h2, r2, t2 = test[1].tolist()
    together = inference.explain_many(graph, [(h, r, t), (h2, r2, t2)])
    for joint, alone in zip(together, [evidence, inference.explain(graph, h2, r2, t2)], strict=True):
        assert [e.hops for e in joint] == [e.hops for e in alone]  # one pass, same explanations
        assert [e.weight for e in joint] == pytest.approx([e.weight for e in alone], abs=1e-6)

    patterns = [
        LinkPattern(h, r, None, 3),
        LinkPattern(None, r, t, 2, min_score=0.01),
        LinkPattern(h, None, t, 2),
    ]
    batched = infer_many(inference, graph, patterns)
    for pattern, together in zip(patterns, batched, strict=True):
        alone = infer_many(inference, graph, [pattern])[0]
        assert [(x.head, x.relation, x.tail) for x in together] == [
            (x.head, x.relation, x.tail) for x in alone
        ]
        assert [x.score for x in together] == pytest.approx([x.score for x in alone], abs=1e-5)
        assert all(not graph.has_edge(x.head, x.relation, x.tail) for x in together)  # never a stored fact
        assert all(x.evidence for x in together[:1])
    assert len(batched[0]) <= 3 and all(x.head == h and x.relation == r for x in batched[0])
    assert all(x.tail == t and x.score >= 0.01 for x in batched[1])

    relation_scores = inference.relation_probabilities(graph, h, t)
    assert relation_scores.shape == (graph.num_relations,)

    grown = KnowledgeGraph(
        [EntityRecord(e) for e in graph.entity_ids],
        [
            TripleRecord(graph.entity_ids[a], graph.relation_ids[b], graph.entity_ids[c])
            for a, b, c in zip(*graph.edges, strict=True)
        ]
        + [TripleRecord("p0", "friend_of", "newcomer")],
    )
    unknown = grown.relation_index["friend_of"]
    assert not inference.knows(grown, unknown)
    grown_probabilities = inference.tail_probabilities(grown, torch.tensor([h]), torch.tensor([r]))
    assert grown_probabilities.shape == (1, grown.num_entities)
    assert float(inference.relation_probabilities(grown, h, t)[unknown]) == 0.0
    with pytest.raises(ValueError, match="unknown to this link predictor"):
        inference.tail_probabilities(grown, torch.tensor([h]), torch.tensor([unknown]))


def test_an_ensemble_averages_its_members_answer_distributions_and_round_trips(trained) -> None:  # noqa: ANN001
    graph, train, _, model = trained
    other = LinkPredictor(model.config)
    ensemble = LinkEnsemble([model, other]).eval()
    stacked, heads, directions = graph.stacked_transitions(), train[:4, 0], train[:4, 1]
    with torch.no_grad():
        got = ensemble(stacked, graph.num_entities, heads, directions)
        members = [m(stacked, graph.num_entities, heads, directions).log_softmax(-1) for m in (model, other)]
        assert torch.allclose(got, (members[0] + members[1]) / 2, atol=1e-6)
        ensemble.calibration.copy_(torch.tensor([2.0, -1.0]))
        again = LinkEnsemble.from_checkpoint(ensemble.checkpoint())
        assert torch.allclose(again(stacked, graph.num_entities, heads, directions), got, atol=1e-6)
        assert torch.equal(again.calibration, ensemble.calibration)
    found = infer_many(
        LinkInference(again, graph.relation_ids, "ensemble"), graph, [LinkPattern(0, 0, None, 3)]
    )
    assert found[0] and all(0.0 <= t.score <= 1.0 for t in found[0])
    with pytest.raises(ValueError, match="same configuration"):
        LinkEnsemble([model, LinkPredictor(dataclasses.replace(model.config, dim=8))])
