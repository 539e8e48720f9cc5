"""Ask's inferred answers: a link predictor's triples along the question's main one-hop reading."""

from __future__ import annotations

import dataclasses

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.inferred_answers import with_inferred_answers
from graphfuse.gnn.inference.pattern_links import PatternLinkInference
from graphfuse.gnn.inference.propagate import RelationPath
from graphfuse.gnn.inference.reasoner import Answer, Reasoning
from graphfuse.gnn.training.path_patterns import train_path_patterns
from tests.helpers.pharmacology import pharmacology


def setup() -> tuple[KnowledgeGraph, PatternLinkInference, Reasoning, int]:
    graph = KnowledgeGraph(*pharmacology())
    treats = graph.relation_index["treats"]
    predictor = PatternLinkInference(train_path_patterns(graph, [treats])[0], "test")
    topic = graph.entity_index["c3"]
    stored = graph.edges[2][graph.match_edges(topic, treats, None)].tolist()  # the tails c3 treats
    reasoning = Reasoning([Answer(t, 0.9, 1, ()) for t in stored], [RelationPath((treats,), 1.0, 0.8)])
    return graph, predictor, reasoning, topic


def test_inferred_answers_follow_the_stored_ones_of_the_same_reading() -> None:
    graph, predictor, reasoning, topic = setup()
    answers = with_inferred_answers(predictor, graph, reasoning, topic, 6)
    stored = {a.entity for a in reasoning.answers}
    assert len(answers) == 6 and {a.entity for a in answers[: len(stored)]} == stored
    inferred = answers[len(stored) :]
    assert inferred and all(a.inferred and a.evidence and a.score <= 0.8 for a in inferred)
    assert all(graph.types[a.entity] == "Disease" and a.entity not in stored for a in inferred)


def test_nothing_is_inferred_where_it_could_not_make_the_top_or_the_predictor_is_too_slow() -> None:
    graph, predictor, reasoning, topic = setup()
    full = Reasoning([Answer(i, 0.95, 1, ()) for i in range(6)], reasoning.paths)
    assert with_inferred_answers(predictor, graph, full, topic, 6) == full.answers  # above any inferred
    predictor.answers_questions = False
    assert with_inferred_answers(predictor, graph, reasoning, topic, 6) == reasoning.answers
    two_hops = dataclasses.replace(reasoning, paths=[RelationPath((0, 1), 1.0, 0.8)])
    assert with_inferred_answers(predictor, graph, two_hops, topic, 6) == reasoning.answers
