"""A restart reads a graph's edges from its edge file while the file matches the database, and from the
database (writing the file again) once any write has changed the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphfuse.gnn.data.records import EntityRecord, Retraction, TripleRecord
from graphfuse.server.storage import edge_files
from graphfuse.server.storage.store import GraphStore

RECORDS = [
    EntityRecord("db1", "Aspirin", ("ASA",), "Compound"),
    TripleRecord("db1", "treats", "d1"),
    TripleRecord("db2", "treats", "d1"),
    TripleRecord("d1", "presents", "s1"),
]


def triples(store: GraphStore) -> list[tuple[str, str, str]]:
    columns = store.read_columns("g")
    return [
        (columns.entity_ids[h], columns.relation_ids[r], columns.entity_ids[t])
        for h, r, t in zip(columns.heads.tolist(), columns.rels.tolist(), columns.tails.tolist(), strict=True)
    ]


@pytest.fixture
def store(tmp_path: Path):
    with GraphStore(tmp_path / "data") as store:
        store.create_graph("g")
        store.write("g", RECORDS)
        yield store


def edge_file(store: GraphStore) -> Path:
    (path,) = (store.data_dir / edge_files.FOLDER).glob("*.npz")
    return path


def test_the_second_read_comes_from_the_edge_file(store: GraphStore, monkeypatch) -> None:
    first = triples(store)
    assert edge_file(store).exists()

    def no_triples(*args):
        raise AssertionError("the triples were read from the database")

    monkeypatch.setattr("graphfuse.server.storage.columns._select_edges", no_triples)
    assert triples(store) == first
    assert store.read_columns("g").heads.dtype == np.int32  # positions stored narrow


@pytest.mark.parametrize(
    "change",
    [
        [TripleRecord("d1", "presents", "s2")],
        [Retraction("db2", "treats", "d1")],
        [EntityRecord("x9", "Unlinked")],
    ],
    ids=["added", "retracted", "entity"],
)
def test_any_write_makes_the_file_stale(store: GraphStore, change: list) -> None:
    triples(store)
    store.write("g", change)
    entities, expected = store.read_graph("g")
    assert triples(store) == [(t.head, t.relation, t.tail) for t in expected]
    assert triples(store) == [(t.head, t.relation, t.tail) for t in expected]  # the file written again


def test_a_damaged_file_is_ignored_and_replaced(store: GraphStore) -> None:
    first = triples(store)
    edge_file(store).write_bytes(b"not a numpy file")
    assert triples(store) == first
    assert triples(store) == first


def test_a_deleted_graph_leaves_no_file_for_a_new_one_of_the_same_name(store: GraphStore) -> None:
    triples(store)
    store.delete_graph("g")
    assert not list((store.data_dir / edge_files.FOLDER).glob("*.npz"))
    store.create_graph("g")
    store.write("g", [TripleRecord("a", "r", "b")])
    assert triples(store) == [("a", "r", "b")]
