"""Zero-shot reasoning on a small hand-checkable movie graph: 1-, 2- and 3-hop answers and their paths.

Relation vectors are orthogonal unit vectors and a question is the normalised sum of the relations it
mentions, so the expected ranking follows from the algorithm alone; one test uses the real encoder.
"""

from __future__ import annotations

import pytest
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.inference.propagate import PathSearchConfig, length_penalties
from graphfuse.gnn.inference.reasoner import (
    Question,
    ReasonerConfig,
    ZeroShotReasoner,
    count_words,
    zero_shot_config,
)
from graphfuse.gnn.inference.relation_vectors import RelationVectors

TRIPLES = [
    ("Top Hat", "starred_actors", "Ginger Rogers"),
    ("Top Hat", "starred_actors", "Fred Astaire"),
    ("Top Hat", "directed_by", "Mark Sandrich"),
    ("Swing Time", "starred_actors", "Ginger Rogers"),
    ("Swing Time", "directed_by", "George Stevens"),
    ("Gunga Din", "directed_by", "George Stevens"),
    ("Gunga Din", "starred_actors", "Cary Grant"),
    ("Mark Sandrich", "born_in", "New York"),
    ("George Stevens", "born_in", "Oakland"),
]


@pytest.fixture(scope="module")
def graph() -> KnowledgeGraph:
    return KnowledgeGraph([], [TripleRecord(*t) for t in TRIPLES])


def relation_vectors(graph: KnowledgeGraph, dims: int = 8) -> torch.Tensor:
    return torch.eye(graph.num_relations, dims)


def ask(  # noqa: ANN201
    graph: KnowledgeGraph,
    topic: str,
    relations: list[str],
    max_hops: int = 3,
    top_k: int = 10,
    words: int = 0,
):
    vectors = relation_vectors(graph)
    q = sum(vectors[graph.relation_index[r]] for r in relations)
    question = Question(q / q.norm(), ((graph.entity_index[topic], 1.0),), top_k, max_hops, words=words)
    return ZeroShotReasoner().reason(graph, vectors, [question])[0]


def top_names(graph: KnowledgeGraph, reasoning, count: int) -> set[str]:  # noqa: ANN001
    return {graph.names[a.entity] for a in reasoning.answers[:count]}


def edges(graph: KnowledgeGraph, evidence) -> list[tuple[str, str, str, bool]]:  # noqa: ANN001
    return [
        (graph.entity_ids[h.head], graph.relation_ids[h.relation], graph.entity_ids[h.tail], h.reversed)
        for h in evidence.hops
    ]


def test_one_hop_answers_and_evidence(graph: KnowledgeGraph) -> None:
    result = ask(graph, "Ginger Rogers", ["starred_actors"])
    assert top_names(graph, result, 2) == {"Top Hat", "Swing Time"}
    first, second = result.answers[:2]
    # Top Hat is also reached through Fred Astaire (a longer path), so it may score a little higher.
    assert min(first.score, second.score) > result.answers[2].score
    assert first.hops == 1 and not first.inferred
    assert edges(graph, first.evidence[0]) == [
        (graph.entity_ids[first.entity], "starred_actors", "Ginger Rogers", True)
    ]
    assert "Ginger Rogers" not in {graph.names[a.entity] for a in result.answers}  # topic excluded


def test_two_hop_directors_of_an_actors_movies(graph: KnowledgeGraph) -> None:
    result = ask(graph, "Ginger Rogers", ["starred_actors", "directed_by"])
    assert top_names(graph, result, 2) == {"Mark Sandrich", "George Stevens"}
    answer = next(a for a in result.answers if graph.names[a.entity] == "Mark Sandrich")
    assert answer.hops == 2
    assert edges(graph, answer.evidence[0]) == [
        ("Top Hat", "starred_actors", "Ginger Rogers", True),
        ("Top Hat", "directed_by", "Mark Sandrich", False),
    ]


def test_three_hop_birthplaces_of_directors(graph: KnowledgeGraph) -> None:
    # "Where were the directors of the films <topic> starred in born?": ten words as read
    result = ask(graph, "Ginger Rogers", ["starred_actors", "directed_by", "born_in"], words=10)
    assert top_names(graph, result, 2) == {"New York", "Oakland"}
    oakland = next(a for a in result.answers if graph.names[a.entity] == "Oakland")
    assert edges(graph, oakland.evidence[0]) == [
        ("Swing Time", "starred_actors", "Ginger Rogers", True),
        ("Swing Time", "directed_by", "George Stevens", False),
        ("George Stevens", "born_in", "Oakland", False),
    ]
    assert 0.0 < oakland.score <= 1.0


def test_max_hops_bounds_the_search(graph: KnowledgeGraph) -> None:
    result = ask(graph, "Ginger Rogers", ["starred_actors", "directed_by", "born_in"], max_hops=2)
    assert not {"New York", "Oakland"} & {graph.names[a.entity] for a in result.answers}
    assert all(len(p.directions) <= 2 for p in result.paths)


def test_a_longer_question_may_ask_along_a_longer_path(graph: KnowledgeGraph) -> None:
    """The same vector, mostly "starred" and partly "directed": a short question gets the one hop it names
    best (Ginger Rogers' films), a long one the two hops (their directors)."""
    vectors = relation_vectors(graph)
    q = (
        1.0 * vectors[graph.relation_index["starred_actors"]]
        + 0.6 * vectors[graph.relation_index["directed_by"]]
    )
    config = zero_shot_config().search
    assert config.penalty_per_word > 0

    def top(words: int) -> str:
        question = Question(q / q.norm(), ((graph.entity_index["Ginger Rogers"], 1.0),), 5, 2, words=words)
        return graph.names[ZeroShotReasoner().reason(graph, vectors, [question])[0].answers[0].entity]

    assert top(3) in {"Top Hat", "Swing Time"}
    assert top(14) in {"Mark Sandrich", "George Stevens"}


def test_length_penalty_falls_with_words_within_its_range() -> None:
    config = PathSearchConfig(
        length_penalty=0.2, penalty_per_word=0.05, reference_words=5, penalty_range=(0.05, 0.3)
    )
    penalties = length_penalties(config, [0, 5, 1, 7, 40]).tolist()
    assert penalties == pytest.approx([0.2, 0.2, 0.3, 0.1, 0.05])  # 0 words: unknown, the reference penalty
    assert count_words("Which films did  star in, in 1936?") == 6


def test_probabilities_form_a_distribution_over_paths_and_no_path_fits(graph: KnowledgeGraph) -> None:
    result = ask(graph, "Gunga Din", ["directed_by"])
    assert sum(p.probability for p in result.paths) == pytest.approx(1.0, abs=1e-3)  # an exact match
    assert result.answers[0].score == pytest.approx(max(a.score for a in result.answers))
    assert graph.names[result.answers[0].entity] == "George Stevens"


def test_a_question_no_relation_fits_gets_low_scores(graph: KnowledgeGraph) -> None:
    vectors = relation_vectors(graph)
    unrelated = torch.eye(8)[7]  # orthogonal to every relation
    question = Question(unrelated, ((graph.entity_index["Gunga Din"], 1.0),), 5, 2)
    result = ZeroShotReasoner().reason(graph, vectors, [question])[0]
    assert sum(p.probability for p in result.paths) < 0.01  # the mass stays on "no path fits"
    assert all(a.score < 0.2 for a in result.answers)
    fitting = ask(graph, "Gunga Din", ["directed_by"]).answers[0].score
    assert fitting > 0.5


def test_a_right_typed_answer_wins_over_a_wrong_typed_one() -> None:
    """Two relations leave a drug, worded alike; the question asks for a disease, which only one reaches."""
    kinds = [("aspirin", "Compound"), ("headache", "Disease"), ("stomach bleeding", "SideEffect")]
    records = [EntityRecord(e, type=k) for e, k in kinds]
    graph = KnowledgeGraph(
        records,
        [
            TripleRecord("aspirin", "treats", "headache"),
            TripleRecord("aspirin", "causes", "stomach bleeding"),
        ],
    )
    treats, causes = graph.relation_index["treats"], graph.relation_index["causes"]
    axes = torch.eye(8)
    names = torch.stack([axes[0], axes[0]])  # the words of both relations match the question equally
    answers = torch.zeros(4, 8)
    answers[treats] = axes[1]  # treats: its answers are diseases
    answers[causes] = axes[2]  # causes: side effects
    relations = RelationVectors.from_names(names)
    relations = RelationVectors(relations.names, relations.texts, relations.text_direction, answers)
    question = torch.nn.functional.normalize(axes[0] + 0.5 * axes[1], dim=0)  # "which disease ..."
    asked = Question(question, ((graph.entity_index["aspirin"], 1.0),), 5, 1)
    result = ZeroShotReasoner().reason(graph, relations, [asked])[0]
    assert [graph.entity_ids[a.entity] for a in result.answers][0] == "headache"
    assert result.answers[0].score > result.answers[1].score


def test_batch_gives_the_same_answers_as_single_questions(graph: KnowledgeGraph) -> None:
    vectors = relation_vectors(graph)
    reasoner = ZeroShotReasoner()
    cases = [
        ("Ginger Rogers", ["starred_actors"]),
        ("Gunga Din", ["directed_by", "born_in"]),
        ("Cary Grant", ["starred_actors", "directed_by"]),
    ]
    questions = []
    for topic, rels in cases:
        q = sum(vectors[graph.relation_index[r]] for r in rels)
        questions.append(Question(q / q.norm(), ((graph.entity_index[topic], 1.0),), 5, 3))
    batched = reasoner.reason(graph, vectors, questions)
    for question, together in zip(questions, batched, strict=True):
        alone = reasoner.reason(graph, vectors, [question])[0]
        assert [a.entity for a in alone.answers] == [a.entity for a in together.answers]
        assert [a.score for a in alone.answers] == pytest.approx([a.score for a in together.answers])


def test_no_topic_or_no_edges_gives_no_answers(graph: KnowledgeGraph) -> None:
    vectors = relation_vectors(graph)
    assert ZeroShotReasoner().reason(graph, vectors, [Question(vectors[0], (), 5, 3)])[0].answers == []
    lonely = KnowledgeGraph([EntityRecord("island")], [TripleRecord("a", "r", "b")])
    island = lonely.entity_index["island"]
    question = Question(torch.eye(1, 4)[0], ((island, 1.0),), 5, 3)
    result = ZeroShotReasoner().reason(lonely, torch.eye(1, 4), [question])[0]
    assert result.answers == [] and result.paths == []


def test_evidence_limit(graph: KnowledgeGraph) -> None:
    config = ReasonerConfig(evidence_per_answer=1)
    vectors = relation_vectors(graph)
    q = vectors[graph.relation_index["starred_actors"]]
    result = ZeroShotReasoner(config).reason(
        graph, vectors, [Question(q, ((graph.entity_index["Top Hat"], 1.0),), 5, 2)]
    )
    assert all(len(a.evidence) <= 1 for a in result[0].answers)


def test_wrong_relation_vector_count_is_rejected(graph: KnowledgeGraph) -> None:
    with pytest.raises(ValueError, match="relation vectors"):
        ZeroShotReasoner().reason(graph, torch.eye(2, 8), [Question(torch.eye(8)[0], ((0, 1.0),), 5, 1)])


def test_evidence_paths_never_pass_an_entity_twice(graph: KnowledgeGraph) -> None:
    result = ask(graph, "Ginger Rogers", ["starred_actors", "directed_by", "born_in"])
    walks = [e for a in result.answers for e in a.evidence]
    assert walks
    for evidence in walks:
        first = evidence.hops[0]
        visited = [first.tail if first.reversed else first.head]
        visited += [h.head if h.reversed else h.tail for h in evidence.hops]
        assert len(visited) == len(set(visited)), edges(graph, evidence)
