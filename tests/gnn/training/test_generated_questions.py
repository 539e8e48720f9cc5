"""Generated questions: exact hop counts, complete answer sets, reproducible, two disjoint phrasing sets."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.gnn.training.generated_questions import EVAL_PHRASINGS, TRAIN_PHRASINGS, generate_questions

TRIPLES = [
    ("Top Hat", "starred_actors", "Ginger Rogers"),
    ("Top Hat", "starred_actors", "Fred Astaire"),
    ("Top Hat", "directed_by", "Mark Sandrich"),
    ("Swing Time", "starred_actors", "Ginger Rogers"),
    ("Swing Time", "directed_by", "George Stevens"),
    ("Gunga Din", "directed_by", "George Stevens"),
    ("Mark Sandrich", "born_in", "New York"),
    ("George Stevens", "born_in", "Oakland"),
]


@pytest.fixture(scope="module")
def graph() -> KnowledgeGraph:
    return KnowledgeGraph([], [TripleRecord(*t) for t in TRIPLES])


def reach(graph: KnowledgeGraph, topic: str, path: tuple[str, ...]) -> set[str]:
    x = torch.zeros(graph.num_entities, 1)
    x[graph.entity_index[topic]] = 1.0
    for step in path:
        relation = graph.relation_index[step.removesuffix("^-1")]
        d = relation + graph.num_relations if step.endswith("^-1") else relation
        x = graph.transition(d).apply(x).clamp(max=1.0)
    x[graph.entity_index[topic]] = 0.0
    return {graph.entity_ids[i] for i in x.flatten().nonzero().flatten().tolist()}


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_answers_are_everything_the_path_reaches(graph: KnowledgeGraph, hops: int) -> None:
    questions = generate_questions(graph, 5, hops, seed=hops)
    assert questions
    for q in questions:
        assert q.hops == hops == len(q.path)
        assert set(q.answers) == reach(graph, q.topic, q.path)
        assert graph.names[graph.entity_index[q.topic]] in q.question


def test_same_seed_same_questions(graph: KnowledgeGraph) -> None:
    assert generate_questions(graph, 4, 2, seed=3) == generate_questions(graph, 4, 2, seed=3)


def test_evaluation_phrasings_share_no_template_with_training() -> None:
    for field in fields(TRAIN_PHRASINGS):
        assert not set(getattr(TRAIN_PHRASINGS, field.name)) & set(getattr(EVAL_PHRASINGS, field.name))


def pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{e\}", ".+").replace(r"\{r\}", ".+"))


def test_phrasings_are_applied(graph: KnowledgeGraph) -> None:
    texts = [q.question for q in generate_questions(graph, 6, 1, seed=0, phrasings=EVAL_PHRASINGS)]
    patterns = [pattern(t) for t in EVAL_PHRASINGS.forward_1 + EVAL_PHRASINGS.reversed_1]
    assert texts and all(any(p.fullmatch(text) for p in patterns) for text in texts)


def test_zero_hops_is_rejected(graph: KnowledgeGraph) -> None:
    with pytest.raises(ValueError, match="'hops' >= 1"):
        generate_questions(graph, 1, 0)
