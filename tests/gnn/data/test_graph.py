import itertools

import numpy as np
import pytest
import torch

from graphfuse.gnn.data import graph as graph_module
from graphfuse.gnn.data.graph import GraphUpdate, KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, Retraction, TripleRecord
from graphfuse.gnn.data.relation_text import relation_words

# Entities in first-seen order: Top_Hat 0, Ginger_Rogers 1, Fred_Astaire 2, Mark_Sandrich 3, Swing_Time 4,
# George_Stevens 5. Relations: starred_actors 0, directed_by 1 (so R = 2 and d in [0, 4)).
FILMS = [
    TripleRecord("Top_Hat", "starred_actors", "Ginger_Rogers"),
    TripleRecord("Top_Hat", "starred_actors", "Fred_Astaire"),
    TripleRecord("Top_Hat", "directed_by", "Mark_Sandrich"),
    TripleRecord("Swing_Time", "starred_actors", "Ginger_Rogers"),
    TripleRecord("Swing_Time", "starred_actors", "Fred_Astaire"),
    TripleRecord("Swing_Time", "directed_by", "George_Stevens"),
]
TOP_HAT, GINGER, FRED, MARK, SWING_TIME, GEORGE = range(6)
STARRED, DIRECTED = 0, 1
STARRED_INV, DIRECTED_INV = 2, 3

NUM_NODES, NUM_RELATIONS, NUM_EDGES = 50, 4, 300


def random_triples(seed: int, num_nodes=NUM_NODES, num_relations=NUM_RELATIONS, num_edges=NUM_EDGES):
    """Random triples over ``e0..e{n-1}`` and ``r0..r{R-1}`` (self-loops allowed) plus 10 repeated ones."""
    generator = torch.Generator().manual_seed(seed)
    heads = torch.randint(num_nodes, (num_edges,), generator=generator).tolist()
    tails = torch.randint(num_nodes, (num_edges,), generator=generator).tolist()
    triples = [
        TripleRecord(f"e{h}", f"r{i % num_relations}", f"e{t}")
        for i, (h, t) in enumerate(zip(heads, tails, strict=True))
    ]
    return triples + triples[:10]


def random_graph(triples, num_nodes=NUM_NODES) -> KnowledgeGraph:
    """Entities ``e{i}`` listed first so that entity ``e{i}`` has index ``i``."""
    return KnowledgeGraph([EntityRecord(f"e{i}") for i in range(num_nodes)], triples)


def dense_transition(graph: KnowledgeGraph, triples, d: int) -> torch.Tensor:
    """The ``(N, N)`` transition of ``d`` built from the string triples: ``T[dst, src] = 1``."""
    r = graph.num_relations
    dense = torch.zeros(graph.num_entities, graph.num_entities)
    for triple in set(triples):
        h, t = graph.entity_index[triple.head], graph.entity_index[triple.tail]
        rel = graph.relation_index[triple.relation]
        if d == rel:
            dense[t, h] = 1.0  # forward: the head's mass moves to the tail
        elif d == rel + r:
            dense[h, t] = 1.0  # inverse: the tail's mass moves to the head
    return dense


def propagate(graph: KnowledgeGraph, x: torch.Tensor, directions) -> torch.Tensor:
    for d in directions:
        x = graph.transition(d).apply(x)
    return x


def same_direction(graph: KnowledgeGraph, other: KnowledgeGraph, d: int) -> int:
    """The direction of ``other`` that walks the same relation id the same way as ``d`` does in ``graph``."""
    relation, reverse = graph.relation_of(d)
    index = other.relation_index[graph.relation_ids[relation]]
    return index + other.num_relations if reverse else index


def assert_permutation_invariant(triples, perm: torch.Tensor, directions, x: torch.Tensor) -> None:
    """Relabelling entities by ``perm`` (copy node ``i`` is node ``perm[i]``) commutes with propagation.

    The copy also receives the triples in reverse order, so its relation indices may differ too.
    """
    graph = random_graph(triples, len(perm))
    permuted = KnowledgeGraph([EntityRecord(f"e{p}") for p in perm.tolist()], reversed(triples))
    assert [permuted.entity_ids[i] for i in range(len(perm))] == [graph.entity_ids[p] for p in perm.tolist()]
    assert permuted.num_edges == graph.num_edges
    expected = propagate(graph, x, directions)[perm]
    actual = propagate(permuted, x[perm], [same_direction(graph, permuted, d) for d in directions])
    torch.testing.assert_close(actual, expected)
    assert actual.abs().sum() > 0  # the walk reached something: the check is not vacuous
    rows = [same_direction(graph, permuted, d) for d in range(2 * graph.num_relations)]
    torch.testing.assert_close(permuted.out_degree().to_dense()[rows], graph.out_degree().to_dense()[:, perm])


@pytest.fixture(scope="module")
def films() -> KnowledgeGraph:
    return KnowledgeGraph(triples=FILMS)


@pytest.fixture(scope="module")
def random_kg():
    triples = random_triples(seed=0)
    return random_graph(triples), triples


# ------------------------------------------------------------------------------------- indexing


def test_entities_and_relations_are_indexed_in_first_seen_order(films):
    assert films.entity_ids == [
        "Top_Hat",
        "Ginger_Rogers",
        "Fred_Astaire",
        "Mark_Sandrich",
        "Swing_Time",
        "George_Stevens",
    ]
    assert films.entity_index == {entity: i for i, entity in enumerate(films.entity_ids)}
    assert films.relation_ids == ["starred_actors", "directed_by"]
    assert films.relation_index == {"starred_actors": 0, "directed_by": 1}
    assert (films.num_entities, films.num_relations, films.num_edges) == (6, 2, 6)
    assert repr(films) == "KnowledgeGraph(entities=6, relations=2, edges=6)"


def test_edges_are_stored_in_insertion_order(films):
    heads, relations, tails = films.edges
    assert heads.tolist() == [TOP_HAT, TOP_HAT, TOP_HAT, SWING_TIME, SWING_TIME, SWING_TIME]
    assert relations.tolist() == [STARRED, STARRED, DIRECTED, STARRED, STARRED, DIRECTED]
    assert tails.tolist() == [GINGER, FRED, MARK, GINGER, FRED, GEORGE]
    assert heads.dtype == relations.dtype == tails.dtype == torch.int32  # 12 bytes an edge


def test_entity_records_come_before_triples(films):
    graph = KnowledgeGraph([EntityRecord("Swing_Time"), EntityRecord("Fred_Astaire")], FILMS)
    assert graph.entity_ids[:3] == ["Swing_Time", "Fred_Astaire", "Top_Hat"]
    assert graph.num_edges == films.num_edges


@pytest.mark.parametrize(
    ("entity_id", "name"),
    [
        ("Top_Hat", "Top Hat"),
        ("pharmacologic_substance", "pharmacologic substance"),
        ("_leading__and_trailing_", "leading and trailing"),
        ("already spaced", "already spaced"),
        ("m.0abc", "m.0abc"),
    ],
)
def test_names_default_to_ids_with_spaces(entity_id, name):
    from_record = KnowledgeGraph([EntityRecord(entity_id)])
    from_triple = KnowledgeGraph(triples=[TripleRecord(entity_id, entity_id, "other")])
    assert from_record.names == [name]
    assert from_triple.names == [name, "other"]
    assert from_triple.relation_text(0) == relation_words(entity_id)


def test_relation_text(films):
    assert [films.relation_text(r) for r in range(films.num_relations)] == ["starred actors", "directed by"]


def test_explicit_name_and_aliases():
    graph = KnowledgeGraph(
        [EntityRecord("m.0th", "Top Hat", ("Top Hat (1935)", "Top Hat")), EntityRecord("m.0gr")], FILMS[:1]
    )
    assert graph.names[:2] == ["Top Hat", "m.0gr"]
    assert graph.aliases == {0: ("Top Hat (1935)", "Top Hat")}


BASE = EntityRecord("x", "X", ("a", "b"))


@pytest.mark.parametrize(
    ("later", "name", "aliases", "changed"),
    [
        (EntityRecord("x"), "X", ("a", "b"), []),
        (EntityRecord("x", "X"), "X", ("a", "b"), []),
        (EntityRecord("x", aliases=("b", "a")), "X", ("a", "b"), []),
        (EntityRecord("x", "Y"), "Y", ("a", "b"), [0]),
        (EntityRecord("x", aliases=("c", "b", "c")), "X", ("a", "b", "c"), [0]),
        (EntityRecord("x", aliases=("A",)), "X", ("a", "b", "A"), [0]),
        (EntityRecord("x", "Y", ("d",)), "Y", ("a", "b", "d"), [0]),
    ],
)
def test_later_entity_record_renames_and_adds_aliases(later, name, aliases, changed):
    graph = KnowledgeGraph([BASE, EntityRecord("y")])
    update = graph.add([later])
    assert update == GraphUpdate(new_entities=[], changed_entities=changed, new_relations=[], new_edges=0)
    assert graph.names == [name, "y"]
    assert graph.aliases == {0: aliases}  # aliases accumulate as a set, first-seen order, never removed
    assert graph.entity_ids == ["x", "y"]


def test_entity_record_after_a_triple_names_its_entity():
    graph = KnowledgeGraph()
    update = graph.add(
        [FILMS[0], EntityRecord("Ginger_Rogers", "Ginger Rogers (actress)", ("Virginia McMath",))]
    )
    assert update == GraphUpdate(new_entities=[0, 1], changed_entities=[0, 1], new_relations=[0], new_edges=1)
    assert graph.names == ["Top Hat", "Ginger Rogers (actress)"]
    assert graph.aliases == {1: ("Virginia McMath",)}


def test_duplicate_triples_are_ignored(films):
    graph = KnowledgeGraph(triples=FILMS + FILMS[::-1] + FILMS[:2])
    assert graph.num_edges == films.num_edges
    for part, expected in zip(graph.edges, films.edges, strict=True):
        assert torch.equal(part, expected)
    assert graph.add(FILMS) == GraphUpdate(
        new_entities=[], changed_entities=[], new_relations=[], new_edges=0
    )
    assert graph.num_edges == 6


def test_graph_update_counts(films):
    graph = KnowledgeGraph(triples=FILMS)
    update = graph.add(
        [
            TripleRecord("Top_Hat", "released_in", "1935"),
            TripleRecord("Top_Hat", "released_in", "1935"),  # repeated within the batch
            TripleRecord("Top_Hat", "starred_actors", "Ginger_Rogers"),  # already stored
            TripleRecord("Swing_Time", "released_in", "1936"),
            TripleRecord("Swing_Time", "starred_actors", "Helen_Broderick"),
            EntityRecord("Top_Hat", "Top Hat"),  # same as its default name: not a change
            EntityRecord("Fred_Astaire", aliases=("Frederick Austerlitz",)),
        ]
    )
    assert update == GraphUpdate(
        new_entities=[6, 7, 8], changed_entities=[FRED, 6, 7, 8], new_relations=[2], new_edges=3
    )
    assert graph.entity_ids[6:] == ["1935", "1936", "Helen_Broderick"]
    assert graph.relation_ids == ["starred_actors", "directed_by", "released_in"]
    assert graph.num_edges == 9


# ------------------------------------------------------------------------------------- directions


@pytest.mark.parametrize(
    ("d", "inverse", "relation_of"),
    [(0, 2, (0, False)), (1, 3, (1, False)), (2, 0, (0, True)), (3, 1, (1, True))],
)
def test_inverse_and_relation_of(films, d, inverse, relation_of):
    assert films.inverse(d) == inverse
    assert films.inverse(films.inverse(d)) == d
    assert films.relation_of(d) == relation_of


# ------------------------------------------------------------------------------------- transitions


def one_hot(n: int, *nodes: int) -> torch.Tensor:
    """``(n, len(nodes))``: column ``j`` puts mass 1 on ``nodes[j]``."""
    x = torch.zeros(n, len(nodes))
    x[list(nodes), range(len(nodes))] = 1.0
    return x


@pytest.mark.parametrize(
    ("d", "start", "expected"),
    [
        (STARRED, TOP_HAT, {GINGER: 1.0, FRED: 1.0}),
        (STARRED, GINGER, {}),  # nothing leaves an actor forward
        (STARRED_INV, GINGER, {TOP_HAT: 1.0, SWING_TIME: 1.0}),
        (DIRECTED, SWING_TIME, {GEORGE: 1.0}),
        (DIRECTED_INV, MARK, {TOP_HAT: 1.0}),
        (DIRECTED_INV, TOP_HAT, {}),
    ],
)
def test_transition_moves_mass_along_the_direction(films, d, start, expected):
    y = films.transition(d).apply(one_hot(6, start))
    assert {i: v for i, v in enumerate(y[:, 0].tolist()) if v} == expected


def test_transition_sums_mass_over_predecessors_column_by_column(films):
    x = torch.tensor([[0.5, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.25, 1.0], [0.0, 0.0]])
    y = films.transition(STARRED).apply(x)
    assert y.tolist() == [[0, 0], [0.75, 2.0], [0.75, 2.0], [0, 0], [0, 0], [0, 0]]
    two_hops = propagate(films, one_hot(6, GINGER, FRED, MARK), [STARRED_INV, DIRECTED])
    assert two_hops[:, 0].tolist() == [0, 0, 0, 1, 0, 1]  # Ginger -> her films -> their directors
    assert torch.equal(two_hops[:, 1], two_hops[:, 0])
    assert two_hops[:, 2].tolist() == [0] * 6  # Mark directed nothing forward along starred_actors^-1


@pytest.mark.parametrize("columns", [1, 7])
@pytest.mark.parametrize("d", range(2 * NUM_RELATIONS))
def test_transition_matches_dense_reference(random_kg, d, columns):
    graph, triples = random_kg
    assert (graph.num_entities, graph.num_relations) == (NUM_NODES, NUM_RELATIONS)
    dense = dense_transition(graph, triples, d)
    x = torch.rand(NUM_NODES, columns, generator=torch.Generator().manual_seed(d))
    transition = graph.transition(d)
    y = transition.apply(x)
    assert y.shape == (NUM_NODES, columns)
    torch.testing.assert_close(y, dense @ x)
    assert transition.rows.tolist() == dense.sum(1).nonzero().flatten().tolist()  # receiving rows, sorted
    assert transition.matrix.shape == (len(transition.rows), NUM_NODES)


def test_stacked_transitions_hold_int32_indexes_and_build_the_rest_when_read(random_kg):
    graph, _ = random_kg
    stacked = graph.stacked_transitions()
    for matrix in (stacked.matrix, stacked.transposed):
        assert matrix.crow_indices().dtype == matrix.col_indices().dtype == torch.int32
    assert stacked.rows.dtype == stacked.directions.dtype == torch.int32
    assert not {"transpose_order", "row_of_value", "membership"} & set(vars(stacked))
    for matrix in (stacked.matrix, stacked.transposed):  # every value a view of one stored 1
        assert (
            matrix.values().untyped_storage().nbytes() == 4
            and matrix.values().tolist() == [1.0] * stacked.nnz
        )
    block = stacked.edge_block()
    assert (
        block.values.tolist() == block.source_values.tolist() == [1.0]
    )  # the kernels read it for every edge
    degree = graph.out_degree()  # the transitions' row lengths, against a count over the edges
    assert degree.crow_indices().dtype == degree.col_indices().dtype == torch.int32
    counted = graph_module.out_degree(*graph.edges, graph.num_entities, graph.num_relations)
    assert torch.equal(degree.to_dense(), counted.to_dense())
    membership = stacked.membership.to_dense()  # built when read: only gradients need it
    assert membership.sum(0).tolist() == [1.0] * stacked.rows.numel()
    assert membership.argmax(0).tolist() == stacked.directions.tolist()
    values = torch.rand(stacked.nnz, generator=torch.Generator().manual_seed(0))
    weighted = stacked.with_values(values)
    assert torch.equal(weighted.transposed.values(), values[stacked.transpose_order])
    dense = weighted.matrix.to_dense()
    rows, cols = stacked.row_of_value.long(), stacked.matrix.col_indices().long()
    assert torch.equal(dense[rows, cols], values)  # each value sits in its row
    torch.testing.assert_close(weighted.transposed.to_dense(), dense.T)
    assert all(key.dtype == torch.long for key in stacked.edge_keys())
    merged = graph._merged
    assert merged.row_keys.dtype == merged.value_keys.dtype == torch.long  # keys past 2**31 on large graphs


def test_transition_accepts_a_strided_block(random_kg):
    graph, triples = random_kg
    x = torch.rand(3, NUM_NODES, generator=torch.Generator().manual_seed(1)).T  # (N, 3), not contiguous
    assert not x.is_contiguous()
    torch.testing.assert_close(graph.transition(1).apply(x), dense_transition(graph, triples, 1) @ x)


def test_transition_keeps_double_precision(films):
    x = one_hot(6, TOP_HAT).double()
    y = films.transition(STARRED).apply(x)
    assert y.dtype == torch.float64
    assert y[:, 0].tolist() == [0, 1, 1, 0, 0, 0]


@pytest.mark.parametrize(
    ("d", "node", "expected"),
    [
        (STARRED, GINGER, [TOP_HAT, SWING_TIME]),
        (STARRED, TOP_HAT, []),
        (STARRED_INV, TOP_HAT, [GINGER, FRED]),
        (STARRED_INV, GEORGE, []),
        (DIRECTED, GEORGE, [SWING_TIME]),
        (DIRECTED_INV, SWING_TIME, [GEORGE]),
    ],
)
def test_predecessors(films, d, node, expected):
    found = films.transition(d).predecessors(node)
    assert found.tolist() == expected
    assert found.dtype == torch.long


@pytest.mark.parametrize("d", range(2 * NUM_RELATIONS))
def test_predecessors_match_dense_reference(random_kg, d):
    graph, triples = random_kg
    dense = dense_transition(graph, triples, d)
    transition = graph.transition(d)
    for node in range(NUM_NODES):
        assert transition.predecessors(node).tolist() == dense[node].nonzero().flatten().tolist()


def test_out_degree_counts_edges_per_direction(films):
    degree = films.out_degree()
    assert degree.layout == torch.sparse_csr
    assert degree.to_dense().tolist() == [
        # Top_Hat, Ginger, Fred, Mark, Swing_Time, George
        [2, 0, 0, 0, 2, 0],  # starred_actors
        [1, 0, 0, 0, 1, 0],  # directed_by
        [0, 2, 2, 0, 0, 0],  # starred_actors^-1
        [0, 0, 0, 1, 0, 1],  # directed_by^-1
    ]


def test_out_degree_matches_dense_reference(random_kg):
    graph, triples = random_kg
    degree = graph.out_degree().to_dense()
    assert degree.shape == (2 * NUM_RELATIONS, NUM_NODES)
    for d in range(2 * NUM_RELATIONS):
        # column u of T_d holds the nodes u sends mass to along d
        assert degree[d].tolist() == dense_transition(graph, triples, d).sum(0).tolist()
    assert int(degree.sum()) == 2 * graph.num_edges == 2 * len(set(triples))


# ------------------------------------------------------------------------------------- match_edges


@pytest.mark.parametrize(
    ("head", "relation", "tail", "expected"),
    [
        (None, None, None, [0, 1, 2, 3, 4, 5]),
        (TOP_HAT, None, None, [0, 1, 2]),
        (None, STARRED, None, [0, 1, 3, 4]),
        (None, None, GINGER, [0, 3]),
        (SWING_TIME, STARRED, None, [3, 4]),
        (TOP_HAT, None, MARK, [2]),
        (None, DIRECTED, GEORGE, [5]),
        (SWING_TIME, STARRED, FRED, [4]),
        (SWING_TIME, DIRECTED, MARK, []),
        (GINGER, None, None, []),
    ],
)
def test_match_edges(films, head, relation, tail, expected):
    found = films.match_edges(head, relation, tail)
    assert found.tolist() == expected
    assert found.dtype == torch.long


def test_match_edges_matches_a_scan_for_every_combination(random_kg):
    graph, _ = random_kg
    heads, relations, tails = (part.tolist() for part in graph.edges)
    stored = list(zip(heads, relations, tails, strict=True))
    for edge in (stored[0], stored[-1], (7, 2, 11)):
        for given in itertools.product((False, True), repeat=3):
            query = [value if keep else None for value, keep in zip(edge, given, strict=True)]
            expected = [
                i
                for i, e in enumerate(stored)
                if all(q is None or q == v for q, v in zip(query, e, strict=True))
            ]
            assert graph.match_edges(*query).tolist() == expected, query


@pytest.mark.parametrize("unindexed", [4, 1_000])  # sorted again often / appended edges scanned
def test_match_edges_follows_additions_and_retractions(monkeypatch, unindexed):
    monkeypatch.setattr(graph_module, "UNINDEXED_EDGES", unindexed)
    generator = torch.Generator().manual_seed(unindexed)
    graph = KnowledgeGraph()

    def random_triples(count: int) -> list[TripleRecord]:
        parts = (torch.randint(0, size, (count,), generator=generator).tolist() for size in (12, 3, 12))
        return [TripleRecord(f"e{h}", f"r{r}", f"e{t}") for h, r, t in zip(*parts, strict=True)]

    for step in range(12):
        graph.add(random_triples(15))
        if step % 3 == 2:
            heads, relations, tails = (part.tolist() for part in graph.edges)
            picked = torch.randperm(graph.num_edges, generator=generator)[:6].tolist()
            names, relation_names = graph.entity_ids, graph.relation_ids
            graph.add(
                [Retraction(names[heads[i]], relation_names[relations[i]], names[tails[i]]) for i in picked]
            )
        stored = list(zip(*(part.tolist() for part in graph.edges), strict=True))
        for entity in range(graph.num_entities):
            for relation in (None, 0):
                for query in ((entity, relation, None), (None, relation, entity), (entity, relation, entity)):
                    expected = [
                        i
                        for i, e in enumerate(stored)
                        if all(q is None or q == v for q, v in zip(query, e, strict=True))
                    ]
                    assert graph.match_edges(*query).tolist() == expected, (step, query)
        heads = torch.randperm(graph.num_entities, generator=generator)  # many at once, in any order
        positions, which = graph.edges_of_heads(heads)
        for k, head in enumerate(heads.tolist()):
            assert positions[which == k].tolist() == graph.match_edges(head).tolist(), (step, head)


# ------------------------------------------------------------------------------------- updates


def test_add_rebuilds_adjacency():
    graph = KnowledgeGraph(triples=FILMS)
    assert graph.transition(STARRED).predecessors(GINGER).tolist() == [TOP_HAT, SWING_TIME]  # built, cached
    assert graph.out_degree().shape == (4, 6)
    graph.add(
        [
            TripleRecord("Roberta", "starred_actors", "Ginger_Rogers"),
            TripleRecord("Roberta", "released_in", "1935"),
        ]
    )
    roberta, year = 6, 7
    starred_inv, released = 3, 2  # one more relation: the inverse directions move up by one
    assert graph.inverse(STARRED) == starred_inv
    assert graph.transition(STARRED).predecessors(GINGER).tolist() == [TOP_HAT, SWING_TIME, roberta]
    y = graph.transition(starred_inv).apply(one_hot(8, GINGER))
    assert y[:, 0].tolist() == [1, 0, 0, 0, 1, 0, 1, 0]
    assert graph.transition(released).apply(one_hot(8, roberta))[:, 0].tolist() == [0] * 7 + [1]
    degree = graph.out_degree()
    assert degree.shape == (6, 8)
    assert degree.to_dense()[:, roberta].tolist() == [1, 0, 1, 0, 0, 0]
    assert degree.to_dense()[:, year].tolist() == [0, 0, 0, 0, 0, 1]


def test_renaming_keeps_adjacency(films):
    graph = KnowledgeGraph(triples=FILMS)
    before = graph.transition(STARRED)
    graph.add([EntityRecord("Top_Hat", "Top Hat (1935)")])
    assert graph.transition(STARRED) is before  # names do not touch the edges


@pytest.mark.parametrize("d", range(4))
def test_isolated_entity_has_empty_rows(d):
    graph = KnowledgeGraph([EntityRecord("Ginger_Rogers"), EntityRecord("loner", "Lone Entity")], FILMS)
    loner = graph.entity_index["loner"]
    assert loner == 1
    transition = graph.transition(d)
    assert loner not in transition.rows.tolist()
    assert transition.predecessors(loner).tolist() == []
    assert transition.apply(one_hot(7, loner)).abs().sum() == 0  # its mass goes nowhere
    everywhere = transition.apply(torch.ones(7, 2))
    assert everywhere[loner].tolist() == [0, 0]  # and nothing reaches it
    assert everywhere.sum() > 0
    assert graph.out_degree().to_dense()[d, loner] == 0
    assert graph.match_edges(head=loner).numel() == graph.match_edges(tail=loner).numel() == 0


def test_entities_without_relations():
    graph = KnowledgeGraph([EntityRecord("a"), EntityRecord("b")])
    assert (graph.num_entities, graph.num_relations, graph.num_edges) == (2, 0, 0)
    assert graph.out_degree().shape == (0, 2)
    assert graph.match_edges().tolist() == []
    graph.add([EntityRecord("c")])
    assert graph.out_degree().shape == (0, 3)  # rebuilt for the new entity


# ------------------------------------------------------------------------------------- permutations


@pytest.mark.parametrize("directions", [(0,), (5,), (1, 6), (3, 7, 2), (4, 0, 4, 0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_propagation_is_permutation_invariant(seed, directions):
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(NUM_NODES, generator=generator)
    x = torch.rand(NUM_NODES, 3, generator=generator)
    assert_permutation_invariant(random_triples(seed), perm, directions, x)


def test_permutation_check_notices_a_wrong_relabelling():
    """The helper is not vacuous: a permutation applied on one side only is caught."""
    perm = torch.randperm(NUM_NODES, generator=torch.Generator().manual_seed(3))
    graph = random_graph(random_triples(3))
    x = torch.rand(NUM_NODES, 2, generator=torch.Generator().manual_seed(4))
    wrong = propagate(graph, x[perm], (0, 5))
    with pytest.raises(AssertionError):
        torch.testing.assert_close(wrong, propagate(graph, x, (0, 5))[perm])


def test_retractions_apply_in_order_and_rebuild_the_adjacency() -> None:
    graph = KnowledgeGraph(
        [], [TripleRecord("a", "r", "b"), TripleRecord("b", "r", "c"), TripleRecord("a", "s", "c")]
    )
    x = one_hot(3, graph.entity_index["a"])
    assert graph.transition(0).apply(x)[graph.entity_index["b"], 0] == 1
    update = graph.add([Retraction("a", "r", "b"), Retraction("a", "r", "zzz"), Retraction("a", "nope", "b")])
    assert (update.removed_edges, update.new_edges, graph.num_edges) == (1, 0, 2)
    assert not graph.has_edge(0, 0, 1) and graph.transition(0).apply(x).abs().sum() == 0
    assert graph.num_entities == 3 and graph.num_relations == 2  # entities and relations stay

    # in one chunk: add then retract is nothing; retract then add keeps the stored fact
    update = graph.add(
        [
            TripleRecord("c", "r", "a"),
            Retraction("c", "r", "a"),
            Retraction("b", "r", "c"),
            TripleRecord("b", "r", "c"),
        ]
    )
    assert (update.new_edges, update.removed_edges, graph.num_edges) == (0, 0, 2)
    assert graph.has_edge(1, 0, 2) and not graph.has_edge(2, 0, 0)
    heads, rels, tails = graph.edges
    assert sorted(zip(heads.tolist(), rels.tolist(), tails.tolist(), strict=True)) == [(0, 1, 2), (1, 0, 2)]


def test_edge_keys_stay_a_set_through_updates_and_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_module, "UNINDEXED_EDGES", 4)  # fold the added and removed keys early
    rng = np.random.default_rng(0)
    heads, rels, tails = (torch.from_numpy(rng.integers(0, n, 40)) for n in (9, 3, 9))
    graph = KnowledgeGraph.from_tensors([f"e{i}" for i in range(9)], ["a", "b", "c"], heads, rels, tails)
    expected = set(zip(*(c.tolist() for c in graph.edges), strict=True))
    keys = graph._edge_keys
    for _ in range(60):
        key = tuple(int(x) for x in (rng.integers(9), rng.integers(3), rng.integers(9)))
        if rng.random() < 0.5:
            keys.add(key)
            expected.add(key)
        else:
            keys.discard(key)
            expected.discard(key)
        assert len(keys) == len(expected)
    every = [(h, r, t) for h in range(9) for r in range(3) for t in range(9)]
    assert [key in keys for key in every] == [key in expected for key in every]
    assert graph.has_edges(every) == [key in expected for key in every]


def test_from_tensors_refuses_repeated_ids() -> None:
    edge = (torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"Expected distinct 'entity_ids' \(got 1 repeated\)"):
        KnowledgeGraph.from_tensors(["a", "b", "a"], ["r"], *edge)
    with pytest.raises(ValueError, match=r"Expected distinct 'relation_ids' \(got 2 repeated\)"):
        KnowledgeGraph.from_tensors(["a", "b"], ["r", "r", "r"], *edge)
