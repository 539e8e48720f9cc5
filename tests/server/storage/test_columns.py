"""A bulk load stored as columns reads back as the same graph the record path stores, and restarts read it
as columns without an object per triple."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from graphfuse.gnn.data.records import EntityRecord, RelationRecord, Retraction, TripleRecord
from graphfuse.gnn.formats.bulk import columns_from_records
from graphfuse.server.storage import columns
from graphfuse.server.storage.store import GraphStore

RECORDS = [
    RelationRecord("CtD", name="treats", aliases=("cures",)),
    EntityRecord("db1", "Aspirin", ("ASA",), "Compound"),
    TripleRecord("db1", "CtD", "d1"),
    TripleRecord("db2", "CtD", "d1"),
    TripleRecord("d1", "presents", "s1"),
    TripleRecord("db1", "CtD", "d1"),
]


@pytest.fixture
def stores(tmp_path: Path):
    with GraphStore(tmp_path / "bulk") as bulk, GraphStore(tmp_path / "records") as records:
        for store in (bulk, records):
            store.create_graph("g")
        yield bulk, records


def as_set(store: GraphStore) -> tuple[list, set]:
    entities, triples = store.read_graph("g")
    return sorted(entities, key=lambda e: e.id), set(triples)


def test_a_bulk_load_stores_what_the_records_store(stores: tuple[GraphStore, GraphStore]) -> None:
    bulk, records = stores
    written = bulk.write_columns("g", columns_from_records(RECORDS))
    records.write("g", RECORDS)
    assert (written.new_triples, written.new_entities) == (3, 4)
    assert as_set(bulk) == as_set(records)
    assert bulk.read_relations("g") == records.read_relations("g")
    meta, expected = bulk.get_graph("g"), records.get_graph("g")
    assert (meta.entities, meta.relations, meta.triples) == (expected.entities, expected.relations, 3)


def test_a_second_load_adds_only_what_is_new_and_renames(stores: tuple[GraphStore, GraphStore]) -> None:
    bulk, _ = stores
    bulk.write_columns("g", columns_from_records(RECORDS))
    again = columns_from_records(
        [EntityRecord("d1", "Headache", (), "Disease"), TripleRecord("db3", "CtD", "d1")]
    )
    written = bulk.write_columns("g", again)
    assert (written.new_triples, written.new_entities) == (1, 1)
    entities = {e.id: e for e in bulk.read_graph("g")[0]}
    assert (entities["d1"].name, entities["d1"].type) == ("Headache", "Disease")
    assert bulk.get_graph("g").triples == 4


def test_read_columns_is_read_graph_as_arrays(stores: tuple[GraphStore, GraphStore]) -> None:
    _, store = stores
    store.write("g", RECORDS)
    store.write("g", [TripleRecord("s1", "symptom_of", "d2")])
    entities, triples = store.read_graph("g")
    columns = store.read_columns("g")
    assert columns.entity_ids == [e.id for e in entities] and columns.names == [e.name for e in entities]
    assert columns.types == [e.type or "" for e in entities]
    assert columns.aliases == {i: e.aliases for i, e in enumerate(entities) if e.aliases}
    assert columns.relation_ids == ["CtD", "presents", "symptom_of"]  # by first use
    assert columns.heads.dtype == np.int64
    read = [
        TripleRecord(columns.entity_ids[h], columns.relation_ids[r], columns.entity_ids[t])
        for h, r, t in zip(columns.heads.tolist(), columns.rels.tolist(), columns.tails.tolist(), strict=True)
    ]
    assert read == triples


def test_triples_read_back_in_the_order_they_were_written(stores: tuple[GraphStore, GraphStore]) -> None:
    """Reads go through the unique index (ordered by head, relation, tail rowids) and are put back in the
    order the triples were stored."""
    _, store = stores
    written = [TripleRecord("z", "r", "a"), TripleRecord("a", "s", "z"), TripleRecord("z", "s", "m")]
    store.write("g", written[:1])
    store.write("g", [TripleRecord("b", "r", "a")])
    store.write("g", written[1:])
    store.write("g", [Retraction("b", "r", "a")])
    assert store.read_graph("g")[1] == written
    columns = store.read_columns("g")
    assert [columns.entity_ids[h] for h in columns.heads.tolist()] == ["z", "a", "z"]  # index order: z, z, a


@pytest.mark.parametrize("packed", [True, False])
def test_triples_insert_in_order_as_packed_integers_or_one_row_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packed: bool
) -> None:
    """Large rowids (near the 63-bit span) unpack exactly; past it, triples go one row each."""
    if not packed:
        monkeypatch.setattr(columns, "_PACKED_LIMIT", 1)
    heads = np.array([3, 1, 3, 2_000_000, 1], dtype=np.int64)
    rels = np.array([7, 1, 7, 4_000, 1], dtype=np.int64)
    tails = np.array([2, 5, 2, 1_999_999, 6], dtype=np.int64)
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute(
        "CREATE TABLE triples (id INTEGER PRIMARY KEY, graph_id, head, relation, tail, "
        "UNIQUE (graph_id, head, relation, tail))"
    )
    with conn:
        new = columns.insert_triples(conn.cursor(), 9, heads, rels, tails)
        again = columns.insert_triples(conn.cursor(), 9, heads[:2], rels[:2], tails[:2])
    stored = conn.execute("SELECT graph_id, head, relation, tail FROM triples ORDER BY id").fetchall()
    assert (new, again) == (4, 0)  # the repeated (3, 7, 2) is stored once, and a second insert adds nothing
    assert stored == [(9, 3, 7, 2), (9, 1, 1, 5), (9, 2_000_000, 4_000, 1_999_999), (9, 1, 1, 6)]
