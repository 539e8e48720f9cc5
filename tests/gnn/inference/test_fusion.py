import pytest

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.inference.evidence import Evidence, EvidenceHop
from graphfuse.gnn.inference.fusion import fuse_answer_text, path_text
from graphfuse.gnn.inference.reasoner import Answer

FILMS = [
    TripleRecord("Top_Hat", "starred_actors", "Ginger_Rogers"),
    TripleRecord("Top_Hat", "directed_by", "Mark_Sandrich"),
    TripleRecord("Swing_Time", "starred_actors", "Ginger_Rogers"),
    TripleRecord("Swing_Time", "directed_by", "George_Stevens"),
]
TOP_HAT, GINGER, MARK, SWING_TIME, GEORGE = range(5)
STARRED, DIRECTED = 0, 1


def hop(head: int, relation: int, tail: int, reversed: bool = False) -> EvidenceHop:
    return EvidenceHop(head, relation, tail, reversed)


# Ginger Rogers -> the films she starred in -> their directors
GINGER_TO_MARK = (hop(TOP_HAT, STARRED, GINGER, reversed=True), hop(TOP_HAT, DIRECTED, MARK))
GINGER_TO_GEORGE = (hop(SWING_TIME, STARRED, GINGER, reversed=True), hop(SWING_TIME, DIRECTED, GEORGE))


@pytest.fixture(scope="module")
def films() -> KnowledgeGraph:
    graph = KnowledgeGraph(triples=FILMS)
    graph.add([EntityRecord("Mark_Sandrich", "Mark Sandrich (director)")])  # an explicit name is shown
    assert graph.entity_ids[MARK] == "Mark_Sandrich"
    return graph


def answer(entity: int, score: float, *paths: tuple[EvidenceHop, ...]) -> Answer:
    evidence = tuple(Evidence(path, 1.0 / (i + 1)) for i, path in enumerate(paths))
    return Answer(entity, score, len(paths[0]) if paths else 0, evidence)


@pytest.mark.parametrize(
    ("hops", "text"),
    [
        ((), ""),
        ((hop(TOP_HAT, STARRED, GINGER),), "Top Hat -starred_actors-> Ginger Rogers"),
        ((hop(TOP_HAT, STARRED, GINGER, reversed=True),), "Ginger Rogers <-starred_actors- Top Hat"),
        (GINGER_TO_MARK, "Ginger Rogers <-starred_actors- Top Hat -directed_by-> Mark Sandrich (director)"),
        (
            (hop(TOP_HAT, STARRED, GINGER), hop(SWING_TIME, STARRED, GINGER, reversed=True)),
            "Top Hat -starred_actors-> Ginger Rogers <-starred_actors- Swing Time",
        ),
        (
            (hop(TOP_HAT, DIRECTED, MARK, reversed=True), hop(TOP_HAT, STARRED, GINGER)),
            "Mark Sandrich (director) <-directed_by- Top Hat -starred_actors-> Ginger Rogers",
        ),
    ],
)
def test_path_text(films, hops, text):
    assert path_text(films, hops) == text


def test_fused_text_names_answers_with_their_first_evidence_and_score(films):
    answers = [
        answer(MARK, 0.934, GINGER_TO_MARK, GINGER_TO_GEORGE),  # only the first evidence is shown
        answer(GEORGE, 0.5, GINGER_TO_GEORGE),
        answer(SWING_TIME, 0.0449),  # no evidence: name and score only
    ]
    assert fuse_answer_text(films, answers) == (
        "Mark Sandrich (director), via Ginger Rogers <-starred_actors- Top Hat -directed_by-> "
        "Mark Sandrich (director) (0.93); "
        "George Stevens, via Ginger Rogers <-starred_actors- Swing Time -directed_by-> George Stevens "
        "(0.50); "
        "Swing Time (0.04)"
    )


@pytest.mark.parametrize(
    ("score", "shown"), [(1.0, "1.00"), (0.999, "1.00"), (0.125, "0.12"), (1e-4, "0.00")]
)
def test_fused_score_has_two_decimals(films, score, shown):
    assert fuse_answer_text(films, [answer(TOP_HAT, score)]).endswith(f"Top Hat ({shown})")


def test_a_low_top_score_says_that_no_path_fits(films):
    assert fuse_answer_text(films, [answer(TOP_HAT, 0.9)]) == "Top Hat (0.90)"
    unsure = fuse_answer_text(films, [answer(TOP_HAT, 0.1)])
    assert unsure.startswith("No relation path of the graph fits this question well")
    assert unsure.endswith("the closest answers: Top Hat (0.10)")


def test_no_answer_sentence(films):
    assert fuse_answer_text(films, []) == "No answer found in the graph."
    assert fuse_answer_text(films, [], max_answers=5) == "No answer found in the graph."


@pytest.mark.parametrize(("max_answers", "shown"), [(1, 1), (2, 2), (3, 3), (4, 4), (10, 4)])
def test_max_answers(films, max_answers, shown):
    answers = [
        answer(entity, 0.9 - 0.1 * i) for i, entity in enumerate([GEORGE, TOP_HAT, GINGER, SWING_TIME])
    ]
    pieces = fuse_answer_text(films, answers, max_answers=max_answers).split("; ")
    expected = ["George Stevens (0.90)", "Top Hat (0.80)", "Ginger Rogers (0.70)", "Swing Time (0.60)"]
    assert pieces == expected[:shown]  # in the given order


def test_default_shows_three_answers(films):
    answers = [answer(entity, 0.5) for entity in range(5)]
    assert fuse_answer_text(films, answers).count("(0.50)") == 3
