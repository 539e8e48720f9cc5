"""Updates read through the delta beside the merged transitions: every read equals a graph built afresh."""

import random

import numpy as np
import pytest
import torch

import graphfuse.gnn.data.graph
from graphfuse.gnn.data.graph import KnowledgeGraph, StackedTransitions, merge_due_at
from graphfuse.gnn.data.records import EntityRecord, Retraction, TripleColumns, TripleRecord
from graphfuse.gnn.inference.subgraph import explore
from graphfuse.gnn.layers.transition import weighted_transition


def rebuilt(graph: KnowledgeGraph) -> KnowledgeGraph:
    """The same entities, relations and edges, with transitions built from scratch."""
    return KnowledgeGraph.from_tensors(graph.entity_ids, graph.relation_ids, *graph.edges)


def checked(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` rebuilt with torch's CSR invariant checks (raises on a malformed layout)."""
    return torch.sparse_csr_tensor(
        matrix.crow_indices(), matrix.col_indices(), matrix.values(), size=matrix.shape, check_invariants=True
    )


def dense_parts(stacked: StackedTransitions, n: int) -> torch.Tensor:
    """``(2R, N, N)`` dense transitions read from a stack (delta included, masked edges at 0)."""
    r2 = len(stacked.direction_offsets) - 1
    dense = torch.zeros(r2, n, n)
    for part in [stacked.merged] + ([stacked.delta] if stacked.delta is not None else []):
        for matrix in (part.matrix, part.transposed, part.membership):
            checked(matrix)
        assert torch.equal(checked(part.transposed).to_dense(), part.matrix.to_dense().T)
        source, direction, destination = part.edge_keys()
        dense.index_put_((direction, destination, source), part.matrix.values(), accumulate=True)
    return dense


def assert_same_reads(graph: KnowledgeGraph) -> None:
    fresh = rebuilt(graph)
    n, r2 = graph.num_entities, 2 * graph.num_relations
    stacked = graph.stacked_transitions()
    assert torch.equal(dense_parts(stacked, n), dense_parts(fresh.stacked_transitions(), n))
    eye = torch.eye(n)
    for d in range(r2):
        assert torch.equal(graph.transition(d).apply(eye), fresh.transition(d).apply(eye)), d
        for node in range(n):
            got = sorted(graph.transition(d).predecessors(node).tolist())
            assert got == fresh.transition(d).predecessors(node).tolist()
    assert torch.equal(checked(graph.out_degree()).to_dense(), fresh.out_degree().to_dense())
    x, weights = torch.rand(n, 3), torch.rand(3, r2)
    torch.testing.assert_close(
        weighted_transition(x, weights, stacked), weighted_transition(x, weights, fresh.stacked_transitions())
    )


def random_triples(rng: random.Random, count: int, entities: int, relations: int) -> list[TripleRecord]:
    """``count`` triples over ``e0..`` and ``r0..`` drawn from ``rng`` (repeats and self-loops allowed)."""
    return [
        TripleRecord(
            f"e{rng.randrange(entities)}", f"r{rng.randrange(relations)}", f"e{rng.randrange(entities)}"
        )
        for _ in range(count)
    ]


def update_batch(graph: KnowledgeGraph, rng: random.Random, step: int) -> list:
    """Random additions (some with new entities or relations), retractions and re-additions."""
    records: list = []
    heads, rels, tails = (c.tolist() for c in graph.edges)
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.35 and heads:
            i = rng.randrange(len(heads))
            records.append(
                Retraction(
                    graph.entity_ids[heads[i]], graph.relation_ids[rels[i]], graph.entity_ids[tails[i]]
                )
            )
        elif kind < 0.45:
            records.append(EntityRecord(f"loner{step}_{len(records)}"))
        else:
            relation = f"r{rng.randrange(graph.num_relations + 1)}" if rng.random() < 0.9 else f"new{step}"
            head = f"e{rng.randrange(graph.num_entities + 2)}"
            records.append(TripleRecord(head, relation, f"e{rng.randrange(graph.num_entities + 2)}"))
    if records and rng.random() < 0.3:  # retract something, then state it again
        last = records[-1]
        if isinstance(last, TripleRecord):
            records += [Retraction(last.head, last.relation, last.tail), last]
    return records


@pytest.mark.parametrize("seed", range(6))
def test_reads_after_updates_and_merges_equal_a_fresh_build(seed):
    rng = random.Random(seed)
    triples = random_triples(rng, 60, entities=20, relations=3)
    graph = KnowledgeGraph(triples=triples)
    assert_same_reads(graph)
    job = None
    for step in range(25):
        graph.add(update_batch(graph, rng, step))
        action = rng.random()
        if job is not None and action < 0.5:
            assert graph.finish_merge(job, job.build())
            job = None
        elif job is None and action < 0.25:
            job = graph.start_merge()  # built later: more updates arrive while it is in flight
        elif action < 0.35:
            graph.merge()
            job = None
        assert_same_reads(graph)
    assert graph.merges >= 2


def test_updates_are_read_from_the_delta_without_a_rebuild():
    graph = KnowledgeGraph(triples=[TripleRecord(f"e{i}", "r", f"e{i + 1}") for i in range(100)])
    merged = graph.stacked_transitions().matrix
    assert graph.merges == 1
    graph.add([TripleRecord("e0", "r", "e50"), TripleRecord("e200", "s", "e0"), Retraction("e1", "r", "e2")])
    stacked = graph.stacked_transitions()
    assert graph.merges == 1 and graph.delta_size == 3
    assert stacked.matrix.col_indices().data_ptr() == merged.col_indices().data_ptr()  # reused, not rebuilt
    assert stacked.delta is not None and stacked.delta.nnz == 4  # two new edges, both directions
    assert stacked.mask is not None and int((stacked.mask == 0).sum()) == 2  # one retraction, both directions
    assert stacked.nnz == merged.col_indices().numel() + 4
    assert graph.transition(0).predecessors(graph.entity_index["e50"]).tolist() == [
        graph.entity_index["e49"],
        graph.entity_index["e0"],
    ]
    assert graph.transition(0).predecessors(graph.entity_index["e2"]).tolist() == []
    assert not graph.merge_due()


def test_loading_and_background_merges_build_the_layouts_queries_read():
    graph = KnowledgeGraph(triples=[TripleRecord(f"e{i}", "r", f"e{i + 1}") for i in range(10)])
    graph.prepare()
    merges = graph.merges
    stacked = graph.stacked_transitions()
    assert "_stored_edge_block" in vars(stacked) and graph.merges == merges == 1
    graph.add([TripleRecord("x", "r", "y")])
    job = graph.start_merge()
    merged = job.build()  # on the merge thread
    assert "_stored_edge_block" in vars(merged.transitions)
    graph.finish_merge(job, merged)
    assert graph.stacked_transitions() is merged.transitions  # what the next query reads, already built


def test_merge_is_due_past_its_share_and_a_read_merges_past_the_limit(monkeypatch):
    graph = KnowledgeGraph(triples=[TripleRecord(f"e{i}", "r", f"e{i + 1}") for i in range(10)])
    graph.stacked_transitions()
    due = merge_due_at(graph.num_edges)
    graph.add([TripleRecord("x", "r", f"y{i}") for i in range(due - 1)])
    assert not graph.merge_due()
    graph.add([TripleRecord("x", "r", "last")])
    assert graph.merge_due()
    job = graph.start_merge()
    assert not graph.merge_due()  # one merge in flight at a time
    graph.finish_merge(job, job.build())
    assert graph.delta_size == 0 and not graph.merge_due()

    monkeypatch.setattr(graphfuse.gnn.data.graph, "SYNC_MERGE_MIN_EDGES", 2)
    monkeypatch.setattr(graphfuse.gnn.data.graph, "SYNC_MERGE_SHARE", 0.0)
    graph.add([TripleRecord("x", "r", f"z{i}") for i in range(2)])
    graph.stacked_transitions()
    assert graph.merges == 2 and graph.delta_size == 2  # at the limit: read through the delta
    graph.add([TripleRecord("x", "r", "z3")])
    graph.stacked_transitions()
    assert graph.merges == 3 and graph.delta_size == 0  # past it: the read merged


def test_a_superseded_merge_installs_nothing():
    graph = KnowledgeGraph(triples=[TripleRecord("a", "r", "b")])
    graph.stacked_transitions()
    first = graph.start_merge()
    graph.add([TripleRecord("b", "r", "c")])
    second = graph.start_merge()
    graph.add([Retraction("a", "r", "b")])
    assert not graph.finish_merge(first, first.build())
    assert graph.finish_merge(second, second.build())
    assert graph.delta_size == 1  # the retraction after the second snapshot
    assert_same_reads(graph)


def test_gradients_through_masked_and_delta_edges_match_a_fresh_build():
    rng = random.Random(3)
    graph = KnowledgeGraph(
        triples=[
            TripleRecord(f"e{rng.randrange(15)}", f"r{i % 2}", f"e{rng.randrange(15)}") for i in range(40)
        ]
    )
    graph.stacked_transitions()
    graph.add(
        update_batch(graph, rng, 0) + [Retraction(*(graph.entity_ids[0], graph.relation_ids[0], "e99"))]
    )
    heads, rels, tails = graph.edges
    graph.add(
        [
            Retraction(
                graph.entity_ids[int(heads[0])],
                graph.relation_ids[int(rels[0])],
                graph.entity_ids[int(tails[0])],
            )
        ]
    )
    graph.add([TripleRecord("e3", "r1", "e7"), TripleRecord("e30", "r0", "e3")])
    stacked, fresh = graph.stacked_transitions(), rebuilt(graph).stacked_transitions()
    assert stacked.delta is not None and stacked.mask is not None
    n, r2 = graph.num_entities, 2 * graph.num_relations

    def run(stack):
        x = torch.rand(n, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
        weights = torch.rand(4, r2, generator=torch.Generator().manual_seed(1), requires_grad=True)
        values = torch.ones(2, stack.nnz, requires_grad=True)  # two blocks of two columns
        (weighted_transition(x, weights, stack, values) ** 2).sum().backward()
        keys = dict(
            zip(
                zip(*(k.tolist() for k in stack.edge_keys()), strict=True),
                values.grad.T.tolist(),
                strict=True,
            )
        )
        return x.grad, weights.grad, values.grad, keys

    x_grad, w_grad, v_grad, by_key = run(stacked)
    fresh_x, fresh_w, _, fresh_by_key = run(fresh)
    torch.testing.assert_close(x_grad, fresh_x)
    torch.testing.assert_close(w_grad, fresh_w)
    own = stacked.matrix.col_indices().numel()
    assert torch.all(v_grad[:, :own][:, stacked.mask == 0] == 0)  # retracted edges get no credit
    for key, grad in fresh_by_key.items():
        torch.testing.assert_close(torch.tensor(by_key[key]), torch.tensor(grad))


def test_exploration_walks_the_delta():
    graph = KnowledgeGraph(triples=[TripleRecord(f"e{i}", "r", f"e{i + 1}") for i in range(6)])
    graph.stacked_transitions()
    graph.add([TripleRecord("e0", "s", "far"), Retraction("e3", "r", "e4")])
    got = explore(graph, [[0]], hops=2, restart=0.2)
    want = explore(rebuilt(graph), [[0]], hops=2, restart=0.2)
    assert graph.entity_index["far"] in got.entity.tolist()
    assert got.entity.tolist() == want.entity.tolist()
    torch.testing.assert_close(got.score, want.score)


@pytest.mark.parametrize("seed", range(2))
def test_chunks_of_triples_alone_update_the_graph_as_mixed_chunks_do(seed):
    """Triples alone take a faster path (keys searched and added together, columns grown in place); a
    no-op entity record after them sends the same triples through the record-by-record path."""
    rng = random.Random(seed)
    fast, general = KnowledgeGraph(), KnowledgeGraph()
    jobs: list = [None, None]
    for step in range(20):
        batch = update_batch(general, rng, step)
        batch += [TripleRecord(t.head, t.relation, t.tail) for t in batch if isinstance(t, TripleRecord)][:2]
        runs: list[list] = []
        for record in batch:
            if not runs or isinstance(record, TripleRecord) != isinstance(runs[-1][0], TripleRecord):
                runs.append([])
            runs[-1].append(record)
        for run in runs:
            if isinstance(run[0], TripleRecord):
                got = fast.add(run)
                want = general.add([*run, EntityRecord(run[0].head)])
            else:
                got, want = fast.add(run), general.add(run)
            assert got == want
        assert fast.entity_ids == general.entity_ids and fast.relation_ids == general.relation_ids
        assert all(torch.equal(a, b) for a, b in zip(fast.edges, general.edges, strict=True))
        action = rng.random()
        installed = []
        for i, graph in enumerate((fast, general)):
            if jobs[i] is not None and action < 0.5:
                installed.append(graph.finish_merge(jobs[i], jobs[i].build()))
                jobs[i] = None
            elif jobs[i] is None and action < 0.3:
                jobs[i] = graph.start_merge()
        assert len(set(installed)) <= 1  # a merge installs on both or on neither
        assert_same_reads(fast)
        assert_same_reads(general)  # reads may merge: both graphs read alike
    assert fast.num_edges > 20 and fast.merges >= 1


@pytest.mark.parametrize("seed", range(3))
def test_kept_layouts_read_and_update_as_the_layouts_they_were_built_as(seed, monkeypatch):
    rng = random.Random(seed)
    triples = random_triples(rng, 120, entities=30, relations=4)
    built = KnowledgeGraph(triples=triples)
    phrases = built.relation_phrases(0)  # builds the index of edges by relation, kept with the rest
    kept = {name: array.copy() for name, array in built.built_layouts().items()}  # as a file gives them back
    assert {"heads_order", "rels_order"} <= kept.keys()
    graph = KnowledgeGraph.from_tensors(built.entity_ids, built.relation_ids, *built.edges, distinct=True)
    with monkeypatch.context() as patched:

        def sorted_again(*args):
            raise AssertionError("the kept layouts were built again")

        patched.setattr(graphfuse.gnn.data.graph, "build_transitions", sorted_again)
        graph.prepare(kept)
    assert {"heads", "rels"} <= graph._position_indexes.keys()
    assert graph.relation_phrases(0) == phrases
    for name, array in built.built_layouts().items():
        assert np.array_equal(graph.built_layouts()[name], array), name
    heads = torch.tensor([0, 3, 7])
    for got, expected in zip(graph.edges_of_heads(heads), built.edges_of_heads(heads), strict=True):
        assert torch.equal(got, expected)
    assert_same_reads(graph)
    for step in range(10):  # updates, then merges, over the installed layouts
        graph.add(update_batch(graph, rng, step))
        if step % 3 == 2:
            graph.merge()
        assert_same_reads(graph)


def test_layouts_kept_for_other_edges_are_refused_and_nothing_is_installed():
    triples = [TripleRecord(f"e{i}", f"r{i % 2}", f"e{i + 1}") for i in range(20)]
    kept = KnowledgeGraph(triples=triples).built_layouts()
    bigger = KnowledgeGraph(triples=[*triples, TripleRecord("e0", "r0", "e5")])
    with pytest.raises(ValueError, match="Expected layouts built for"):
        bigger.prepare(kept)
    moved = [TripleRecord(t.head, "r0" if i < 2 else t.relation, t.tail) for i, t in enumerate(triples)]
    same_sizes = KnowledgeGraph(triples=moved)  # one edge of r1 became r0
    with pytest.raises(ValueError, match="as many edges of each relation"):
        same_sizes.prepare(kept)
    assert same_sizes.merges == 0
    same_sizes.prepare()
    assert_same_reads(same_sizes)
    damaged = {**kept, "pull_col": kept["pull_col"][:-1]}
    with pytest.raises(ValueError, match="Expected one block"):
        KnowledgeGraph(triples=triples).prepare(damaged)


@pytest.mark.parametrize("seed", range(3))
def test_triples_given_as_columns_update_the_graph_as_records_do(seed):
    rng = random.Random(seed)
    start = random_triples(rng, 40, entities=15, relations=3)
    as_records, as_columns = KnowledgeGraph(triples=start), KnowledgeGraph(triples=start)
    for step in range(12):
        records = update_batch(as_records, rng, step)
        triples = random_triples(rng, 8, entities=25, relations=4)
        kept = records if step % 3 else []  # triples alone, and after other records
        expected = as_records.add([*kept, *triples])
        got = as_columns.add(kept, TripleColumns.of(triples))
        assert got == expected
        assert (
            as_columns.entity_ids == as_records.entity_ids
            and as_columns.relation_ids == as_records.relation_ids
        )
        assert all(torch.equal(a, b) for a, b in zip(as_columns.edges, as_records.edges, strict=True))
    assert_same_reads(as_columns)
