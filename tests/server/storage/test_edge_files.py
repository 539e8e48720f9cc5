"""A restart reads a graph's edges from its edge file while the file matches the database, and from the
database (writing the file again) once any write has changed the graph."""

from __future__ import annotations

import shutil
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
    (path,) = (store.data_dir / edge_files.FOLDER).glob(f"*.{edge_files.EDGES}/heads.npy")
    return path


def test_the_second_read_comes_from_the_edge_file(store: GraphStore, monkeypatch) -> None:
    first = triples(store)
    assert edge_file(store).exists()

    def no_triples(*args):
        raise AssertionError("the triples were read from the database")

    monkeypatch.setattr("graphfuse.server.storage.columns._select_edges", no_triples)
    monkeypatch.setattr("graphfuse.server.storage.columns._select_entities", no_triples)
    assert triples(store) == first
    assert store.read_columns("g").heads.dtype == np.int32  # positions stored narrow


def test_entities_read_from_the_file_are_those_of_the_database(store: GraphStore) -> None:
    store.write("g", [EntityRecord("ß1", "Straße ✓", ("Strasse",)), EntityRecord("z", type="Symptom")])
    from_database = store.read_columns("g")
    from_file = store.read_columns("g")
    for field in ("entity_ids", "names", "types", "aliases", "relation_ids"):
        assert getattr(from_file, field) == getattr(from_database, field), field
    db2 = from_file.entity_ids.index("db2")
    assert from_file.names[db2] is from_file.entity_ids[db2]  # a name that is the id: the id's own string


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
    assert not list((store.data_dir / edge_files.FOLDER).iterdir())
    store.create_graph("g")
    store.write("g", [TripleRecord("a", "r", "b")])
    assert triples(store) == [("a", "r", "b")]


def test_layouts_are_read_for_the_version_they_were_kept_for(store: GraphStore) -> None:
    stamp = store.read_columns("g").stamp
    layouts = {"order": np.arange(5, dtype=np.int32), "sizes": np.array([3, 1, 4])}
    store.keep_layouts(stamp, layouts)
    read = store.read_layouts(stamp)
    assert read is not None and read.keys() == layouts.keys()
    assert all(np.array_equal(read[name], layouts[name]) for name in layouts)
    store.write("g", [TripleRecord("d1", "presents", "s2")])
    assert store.read_columns("g").stamp != stamp
    assert store.read_layouts(store.read_columns("g").stamp) is None
    store.keep_layouts(store.read_columns("g").stamp, {"order": np.arange(2)})  # replaces the earlier set
    assert list(store.read_layouts(store.read_columns("g").stamp)) == ["order"]
    store.delete_graph("g")
    assert not list((store.data_dir / edge_files.FOLDER).iterdir())


def test_an_archive_of_an_earlier_version_is_replaced(store: GraphStore) -> None:
    folder = store.data_dir / edge_files.FOLDER
    folder.mkdir(exist_ok=True)
    graph_id = store.read_columns("g").stamp[0]
    for path in folder.iterdir():
        shutil.rmtree(path)
    (folder / f"{graph_id}.npz").write_bytes(b"an earlier version's archive")
    first = triples(store)
    assert first and not (folder / f"{graph_id}.npz").exists() and edge_file(store).exists()


def test_damaged_entity_rows_are_read_from_the_database(store: GraphStore) -> None:
    expected = store.read_columns("g").names
    folder = edge_file(store).parent
    np.save(folder / "entity_names.npy", np.frombuffer(b"\xff\xfe", dtype=np.uint8))  # not UTF-8
    assert store.read_columns("g").names == expected


def test_a_write_left_unfinished_is_cleared_by_the_next(store: GraphStore) -> None:
    triples(store)
    folder = edge_file(store).parent
    left = folder.with_name(f"{folder.name}.999.1.partial")
    left.mkdir()
    store.write("g", [TripleRecord("d1", "presents", "s2")])
    triples(store)  # stale: written again
    assert not left.exists() and edge_file(store).exists()
