"""Capped subgraphs: neighbourhoods, the cap, induced subgraphs, reasoning mapped back to global indices."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.inference.evidence import Evidence, EvidenceHop
from graphfuse.gnn.inference.reasoner import Answer, Question, Reasoning, TrainedReasoner, ZeroShotReasoner
from graphfuse.gnn.inference.subgraph import (
    SubgraphConfig,
    capped_subgraph,
    explore,
    reason_capped,
    select_entities,
)
from graphfuse.gnn.models.question_reasoner import QuestionReasoner, QuestionReasonerConfig

# Undirected: 0-1, 1-2, 2-3, 3-4, 3-5, 6-7. Some edges point "backwards" so that a neighbourhood needs both
# directions: e1 reaches e0 and e2 only through inverse edges, e3 reaches e4 only through one.
CHAIN = [
    ("e0", "r0", "e1"),
    ("e2", "r1", "e1"),
    ("e2", "r0", "e3"),
    ("e4", "r1", "e3"),
    ("e3", "r0", "e5"),
    ("e6", "r1", "e7"),
]


def graph_of(triples: list[tuple[str, str, str]], num_entities: int) -> KnowledgeGraph:
    """Entities ``e{i}`` listed first, so that ``e{i}`` has index ``i``."""
    return KnowledgeGraph(
        [EntityRecord(f"e{i}") for i in range(num_entities)], [TripleRecord(*t) for t in triples]
    )


def regions(graph: KnowledgeGraph, seeds: list[list[int]], hops: int, max_edges: int = 0) -> list[set[int]]:
    found = explore(graph, seeds, hops, 0.15, max_edges)
    return [set(found.entity[found.question == b].tolist()) for b in range(len(seeds))]


@pytest.mark.parametrize(
    ("hops", "expected"),
    [
        (0, [{0}, {1}, {3}, {4}]),
        (1, [{0, 1}, {0, 1, 2}, {2, 3, 4, 5}, {3, 4}]),
        (2, [{0, 1, 2}, {0, 1, 2, 3}, {1, 2, 3, 4, 5}, {2, 3, 4, 5}]),
    ],
)
def test_neighbourhood_follows_every_relation_both_ways(hops: int, expected: list[set[int]]) -> None:
    graph = graph_of(CHAIN, 8)
    assert regions(graph, [[0], [1], [3], [4]], hops) == expected


def test_neighbourhood_of_several_seeds_and_scores() -> None:
    graph = graph_of(CHAIN, 8)
    found = explore(graph, [[0, 6], [0]], 1, 0.15)
    assert set(found.entity[found.question == 0].tolist()) == {0, 1, 6, 7}
    assert found.seed.tolist() == [e in (0, 6) for e in found.entity.tolist()]
    # Step 0 puts restart / |seeds| on each seed; step 1 moves the rest of the mass to the neighbours.
    assert found.score[(found.question == 1) & (found.entity == 0)].item() == pytest.approx(0.15)
    assert found.score[(found.question == 1) & (found.entity == 1)].item() == pytest.approx(0.15 * 0.85)
    assert found.followed_edges == 3  # e0 and e6 have one edge each, then e0 again for question 1


def test_cap_keeps_seeds_then_the_highest_scores() -> None:
    # s=0 has neighbours a=1 (two edges: more walk mass) and b=2 (one edge); a has leaves 3-6, b has leaf 7.
    triples = [("e0", "r0", "e1"), ("e1", "r1", "e0"), ("e0", "r0", "e2"), ("e2", "r0", "e7")]
    triples += [("e1", "r0", f"e{leaf}") for leaf in range(3, 7)]
    graph = graph_of(triples, 8)
    assert regions(graph, [[0]], 2) == [set(range(8))]
    for cap, kept in [(1, [0]), (2, [0, 1]), (3, [0, 1, 2]), (8, list(range(8)))]:
        entities, _ = select_entities(graph, [[0]], SubgraphConfig(max_entities=cap, hops=2))
        assert entities.tolist() == kept
    # Seeds stay even when they alone exceed the cap.
    entities, _ = select_entities(graph, [[3, 7]], SubgraphConfig(max_entities=1, hops=2))
    assert entities.tolist() == [3, 7]


def test_edge_budget_walks_from_the_highest_mass_per_edge_first() -> None:
    triples = [("e0", "r0", "e1"), ("e0", "r0", "e2"), ("e2", "r0", "e7")]
    triples += [("e1", "r0", f"e{leaf}") for leaf in range(3, 7)]
    graph = graph_of(triples, 8)
    assert regions(graph, [[0]], 2) == [set(range(8))]
    # Step 2 walks from a=1 (5 edges) and b=2 (2 edges): within 2 edges only b, which sends more per edge.
    assert regions(graph, [[0]], 2, max_edges=2) == [{0, 1, 2, 7}]
    assert regions(graph, [[0]], 2, max_edges=7) == [set(range(8))]


def test_batch_keeps_the_union_of_its_questions() -> None:
    graph = graph_of(CHAIN, 8)
    config = SubgraphConfig(max_entities=2, hops=2)
    assert select_entities(graph, [[0]], config)[0].tolist() == [0, 1]
    assert select_entities(graph, [[6]], config)[0].tolist() == [6, 7]
    assert select_entities(graph, [[0], [6]], config)[0].tolist() == [0, 1, 6, 7]


def test_seeds_are_checked() -> None:
    graph = graph_of(CHAIN, 8)
    with pytest.raises(ValueError, match="at least one seed"):
        explore(graph, [[0], []], 1, 0.15)
    with pytest.raises(ValueError, match=r"seed entities in \[0, 8\)"):
        explore(graph, [[8]], 1, 0.15)
    with pytest.raises(ValueError, match="restart"):
        SubgraphConfig(restart=1.0)


def random_graph(seed: int, num_entities: int = 40, num_edges: int = 160) -> KnowledgeGraph:
    generator = torch.Generator().manual_seed(seed)
    heads = torch.randint(num_entities, (num_edges,), generator=generator).tolist()
    tails = torch.randint(num_entities, (num_edges,), generator=generator).tolist()
    entities = [
        EntityRecord(f"e{i}", f"entity {i}", (f"alias {i}",) if i % 3 == 0 else (), "even" if i % 2 else None)
        for i in range(num_entities)
    ]
    triples = [
        TripleRecord(f"e{h}", f"r{i % 3}", f"e{t}") for i, (h, t) in enumerate(zip(heads, tails, strict=True))
    ]
    return KnowledgeGraph(entities, triples)


def dense_transition(graph: KnowledgeGraph, d: int) -> torch.Tensor:
    """``(N, N)`` 0/1 matrix of directed relation ``d``."""
    return graph.transition(d).apply(torch.eye(graph.num_entities))


@pytest.mark.parametrize("seed", [0, 1])
def test_induced_subgraph_keeps_exactly_the_edges_inside(seed: int) -> None:
    graph = random_graph(seed)
    entities = torch.randperm(graph.num_entities, generator=torch.Generator().manual_seed(seed))[:15]
    entities = entities.sort().values
    sub = graph.subgraph(entities)
    kept = entities.tolist()
    assert sub.relation_ids == graph.relation_ids and sub.relation_index == graph.relation_index
    assert sub.entity_ids == [graph.entity_ids[i] for i in kept]
    assert sub.names == [graph.names[i] for i in kept] and sub.types == [graph.types[i] for i in kept]
    assert {sub.entity_ids[i]: a for i, a in sub.aliases.items()} == {
        graph.entity_ids[i]: graph.aliases[i] for i in kept if i in graph.aliases
    }
    heads, rels, tails = graph.edges
    inside = [
        (kept.index(h), r, kept.index(t))
        for h, r, t in zip(heads.tolist(), rels.tolist(), tails.tolist(), strict=True)
        if h in kept and t in kept
    ]
    assert list(zip(*(column.tolist() for column in sub.edges), strict=True)) == inside  # in order
    for d in range(2 * graph.num_relations):  # forward and inverse transitions
        expected = dense_transition(graph, d)[entities][:, entities]
        assert torch.equal(dense_transition(sub, d), expected)
    assert all(sub.has_edge(h, r, t) for h, r, t in inside)
    degree = [dense_transition(graph, d)[entities][:, entities].sum(0) for d in range(2 * sub.num_relations)]
    assert torch.equal(sub.out_degree().to_dense(), torch.stack(degree))


def test_subgraph_is_an_ordinary_graph() -> None:
    graph = random_graph(0)
    sub = graph.subgraph(torch.tensor([1, 5, 9]))
    update = sub.add([TripleRecord("e1", "r0", "e9"), TripleRecord("e9", "new", "e42")])
    assert update.new_relations == [3] and sub.entity_ids[-1] == "e42"
    assert sub.has_edge(0, 0, 2) and sub.has_edge(2, 3, 3)
    assert graph.num_relations == 3  # the whole graph is untouched
    with pytest.raises(ValueError, match="distinct 'entities'"):
        graph.subgraph(torch.tensor([1, 1]))
    with pytest.raises(ValueError, match=r"'entities' in \[0, 40\)"):
        graph.subgraph(torch.tensor([40]))


def test_from_tensors_matches_records_and_drops_repeats() -> None:
    graph = random_graph(1)
    heads, rels, tails = graph.edges
    built = KnowledgeGraph.from_tensors(
        graph.entity_ids,
        graph.relation_ids,
        torch.cat([heads, heads[:5]]),
        torch.cat([rels, rels[:5]]),
        torch.cat([tails, tails[:5]]),
        names=graph.names,
        types=graph.types,
        aliases=graph.aliases,
    )
    assert all(torch.equal(a, b) for a, b in zip(built.edges, graph.edges, strict=True))
    assert built.entity_index == graph.entity_index and built.aliases == graph.aliases
    for d in range(2 * graph.num_relations):
        assert torch.equal(dense_transition(built, d), dense_transition(graph, d))
    with pytest.raises(ValueError, match=r"'tails' in \[0, 2\)"):
        KnowledgeGraph.from_tensors(
            ["a", "b"], ["r"], torch.tensor([0]), torch.tensor([0]), torch.tensor([2])
        )
    assert KnowledgeGraph.from_tensors(["a_b"], [], *[torch.empty(0, dtype=torch.long)] * 3).names == ["a b"]


# A movie graph (as in test_reasoner) after a distant block of 30 entities, so sub-indices differ from
# global ones, plus a far region that a 3-hop neighbourhood of the movies never reaches.
MOVIES = [
    ("Top_Hat", "starred_actors", "Ginger_Rogers"),
    ("Top_Hat", "starred_actors", "Fred_Astaire"),
    ("Top_Hat", "directed_by", "Mark_Sandrich"),
    ("Swing_Time", "starred_actors", "Ginger_Rogers"),
    ("Swing_Time", "directed_by", "George_Stevens"),
    ("Gunga_Din", "directed_by", "George_Stevens"),
    ("Gunga_Din", "starred_actors", "Cary_Grant"),
    ("Mark_Sandrich", "born_in", "New_York"),
    ("George_Stevens", "born_in", "Oakland"),
    ("Oakland", "located_in", "California"),
    ("California", "located_in", "USA"),
]
FAR = [(f"far{i}", "starred_actors" if i % 2 else "born_in", f"far{i + 1}") for i in range(30)]


@pytest.fixture(scope="module")
def movies() -> KnowledgeGraph:
    return KnowledgeGraph([], [TripleRecord(*t) for t in FAR + MOVIES])


def ask(graph: KnowledgeGraph, topic: str, relations: list[str], vectors: torch.Tensor) -> Question:
    q = sum(vectors[graph.relation_index[r]] for r in relations)
    return Question(q / q.norm(), ((graph.entity_index[topic], 1.0),), 5, 3)


def batch(graph: KnowledgeGraph, vectors: torch.Tensor) -> list[Question]:
    return [
        ask(graph, "Ginger_Rogers", ["starred_actors", "directed_by", "born_in"], vectors),
        ask(graph, "Gunga_Din", ["directed_by"], vectors),
        ask(graph, "Mark_Sandrich", ["directed_by", "starred_actors"], vectors),
    ]


def reasoners() -> list:
    torch.manual_seed(0)
    model = QuestionReasoner(QuestionReasonerConfig(text_dim=8, hops=3, dropout=0.0, token_attention=False))
    return [ZeroShotReasoner(), TrainedReasoner(model)]


@pytest.mark.parametrize("reasoner", reasoners(), ids=["zero_shot", "trained"])
def test_capped_answers_equal_whole_graph_answers(movies: KnowledgeGraph, reasoner) -> None:  # noqa: ANN001
    vectors = torch.eye(movies.num_relations, 8)
    questions = batch(movies, vectors)
    config = SubgraphConfig(max_entities=50, hops=3, whole_graph_fraction=1.0)
    sub = capped_subgraph(movies, [[e for e, _ in q.topics] for q in questions], config)
    assert sub is not None and sub.graph.num_entities < movies.num_entities - 20  # the far block is gone
    whole = reasoner.reason(movies, vectors, questions)
    capped = reason_capped(reasoner, movies, vectors, questions, config)
    assert any(r.answers for r in whole)
    for expected, got in zip(whole, capped, strict=True):
        # Entities of equal score may come in either order (top-k over tensors of other sizes).
        assert [a.score for a in got.answers] == pytest.approx([a.score for a in expected.answers], abs=1e-6)
        assert by_entity(got) == by_entity(expected)
        assert got.paths == expected.paths
    assert {a.entity for r in capped for a in r.answers} - set(range(sub.graph.num_entities))  # were mapped


def by_entity(reasoning: Reasoning) -> dict[int, tuple[float, int, tuple[Evidence, ...]]]:
    return {a.entity: (round(a.score, 5), a.hops, a.evidence) for a in reasoning.answers}


class Spy:
    """A reasoner that records its graph and answers with the last entity and an evidence path to it."""

    def __init__(self) -> None:
        self.graphs: list[KnowledgeGraph] = []
        self.entity_vectors: list[torch.Tensor | None] = []

    def reason(  # noqa: ANN001
        self, graph: KnowledgeGraph, relation_vectors: torch.Tensor, questions, entity_vectors=None
    ) -> list[Reasoning]:
        self.graphs.append(graph)
        self.entity_vectors.append(entity_vectors)
        results = []
        for question in questions:
            topic = question.topics[0][0]
            last = graph.num_entities - 1
            hop = EvidenceHop(topic, 0, last, False)
            evidence = (Evidence((hop, dataclasses.replace(hop, reversed=True)), 0.5),)
            results.append(Reasoning([Answer(last, 0.9, 1, evidence)], touched_entities=graph.num_entities))
        return results


def test_results_are_mapped_back_to_global_indices(movies: KnowledgeGraph) -> None:
    spy = Spy()
    vectors = torch.eye(movies.num_relations, 8)
    question = ask(movies, "Gunga_Din", ["directed_by"], vectors)
    config = SubgraphConfig(max_entities=3, hops=1, whole_graph_fraction=1.0)
    entity_vectors = torch.randn(movies.num_entities, 8)
    (result,) = reason_capped(spy, movies, vectors, [question], config, entity_vectors)
    (sub,) = spy.graphs
    kept = [movies.entity_ids.index(i) for i in sub.entity_ids]
    assert sorted(kept) == kept and len(kept) == 3  # Gunga_Din, George_Stevens, Cary_Grant
    torch.testing.assert_close(spy.entity_vectors[0], entity_vectors[kept])  # rows follow the subgraph
    last = kept[-1]
    answer = result.answers[0]
    assert answer.entity == last and movies.names[last] == sub.names[-1]
    gunga = movies.entity_index["Gunga_Din"]
    assert [(h.head, h.tail, h.reversed) for h in answer.evidence[0].hops] == [
        (gunga, last, False),
        (gunga, last, True),
    ]
    assert result.touched_entities == 3


def test_no_cap_or_a_large_union_reasons_on_the_whole_graph(movies: KnowledgeGraph) -> None:
    vectors = torch.eye(movies.num_relations, 8)
    questions = batch(movies, vectors)
    for config in (SubgraphConfig(max_entities=0), SubgraphConfig(max_entities=50, whole_graph_fraction=0.1)):
        spy = Spy()
        result = reason_capped(spy, movies, vectors, questions, config)
        assert spy.graphs == [movies]
        assert [a.entity for r in result for a in r.answers] == [movies.num_entities - 1] * 3
    assert capped_subgraph(movies, [[0]], SubgraphConfig(max_entities=0)) is None
    assert reason_capped(ZeroShotReasoner(), movies, vectors, [], SubgraphConfig(max_entities=5)) == []
