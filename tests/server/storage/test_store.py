"""Tests of the durable graph store: graphs, records, atomicity, durability, corruption and embeddings."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from graphfuse.gnn.data.records import EntityRecord, RelationRecord, Retraction, TripleColumns, TripleRecord
from graphfuse.server.storage.store import (
    DB_FILENAME,
    SCHEMA_VERSION,
    GraphExistsError,
    GraphNotFoundError,
    GraphStore,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    WriteResult,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

CHUNK = [
    TripleRecord("aspirin", "treats", "headache"),
    EntityRecord("aspirin", "Aspirin", ("ASA", "acetylsalicylic acid")),
    TripleRecord("aspirin", "is_a", "pharmacologic_substance"),
    TripleRecord("ibuprofen", "treats", "headache"),
    TripleRecord("aspirin", "treats", "headache"),  # repeated within the chunk
]


@pytest.fixture
def store(tmp_path: Path):
    with GraphStore(tmp_path / "data") as opened:
        yield opened


def _snapshot(store: GraphStore, name: str) -> tuple:
    meta = store.get_graph(name)
    return store.read_graph(name), (meta.entities, meta.relations, meta.triples, meta.updated_at)


# Graphs


def test_creates_data_dir_and_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    with GraphStore(data_dir) as store:
        assert store.path == data_dir / DB_FILENAME
        assert store.path.is_file()
        assert store.list_graphs() == []


def test_create_get_list_delete(store: GraphStore) -> None:
    created = store.create_graph("umls", "medical concepts")
    assert created.name == "umls" and created.description == "medical concepts"
    assert (created.entities, created.relations, created.triples) == (0, 0, 0)
    assert created.created_at == created.updated_at > 0
    assert store.get_graph("umls") == created
    store.create_graph("bio")
    store.create_graph("zoo", "animals")

    assert [meta.name for meta in store.list_graphs()] == ["bio", "umls", "zoo"]
    assert store.has_graph("zoo") and not store.has_graph("nope")

    store.write("umls", CHUNK)
    assert store.delete_graph("umls") is True
    assert not store.has_graph("umls")
    assert store.delete_graph("umls") is False
    assert [meta.name for meta in store.list_graphs()] == ["bio", "zoo"]
    # The name is free again and the new graph starts empty.
    store.create_graph("umls")
    assert store.read_graph("umls") == ([], [])
    assert store.get_graph("umls").triples == 0


def test_delete_keeps_other_graphs(store: GraphStore) -> None:
    store.create_graph("a")
    store.create_graph("b")
    store.write("a", CHUNK)
    store.write("b", CHUNK)
    before = store.read_graph("b")
    store.delete_graph("a")
    assert store.read_graph("b") == before
    with sqlite3.connect(store.path) as conn:
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("entities", "triples")]
        aliases = conn.execute("SELECT count(*) FROM aliases").fetchone()[0]
    assert counts == [4, 3] and aliases == 2  # only graph b's rows remain


def test_duplicate_and_missing_graph_errors(store: GraphStore) -> None:
    store.create_graph("umls")
    with pytest.raises(GraphExistsError) as exists:
        store.create_graph("umls")
    assert str(exists.value) == "graph 'umls' already exists"
    assert isinstance(exists.value, ValueError)

    for call in (
        lambda: store.get_graph("missing"),
        lambda: store.read_graph("missing"),
        lambda: store.write("missing", CHUNK),
    ):
        with pytest.raises(GraphNotFoundError) as missing:
            call()
        assert str(missing.value) == "graph 'missing' not found"
        assert isinstance(missing.value, LookupError)


# Records


def test_write_read_round_trip(store: GraphStore) -> None:
    store.create_graph("g")
    result = store.write("g", CHUNK)
    assert result == WriteResult(new_triples=3, new_entities=4)

    entities, triples = store.read_graph("g")
    assert entities == [
        EntityRecord("aspirin", "Aspirin", ("ASA", "acetylsalicylic acid")),
        EntityRecord("headache", "headache", ()),
        EntityRecord("pharmacologic_substance", "pharmacologic substance", ()),
        EntityRecord("ibuprofen", "ibuprofen", ()),
    ]
    assert triples == [
        TripleRecord("aspirin", "treats", "headache"),
        TripleRecord("aspirin", "is_a", "pharmacologic_substance"),
        TripleRecord("ibuprofen", "treats", "headache"),
    ]
    meta = store.get_graph("g")
    assert (meta.entities, meta.relations, meta.triples) == (4, 2, 3)
    assert meta.updated_at >= meta.created_at


def test_order_kept_across_chunks(store: GraphStore) -> None:
    store.create_graph("g")
    store.write("g", [TripleRecord("z", "r2", "y"), TripleRecord("b", "r1", "a")])
    store.write(
        "g", [TripleRecord("a", "r1", "c"), TripleRecord("z", "r2", "y"), TripleRecord("m", "r0", "b")]
    )
    entities, triples = store.read_graph("g")
    assert [e.id for e in entities] == ["z", "y", "b", "a", "c", "m"]
    assert [(t.head, t.relation, t.tail) for t in triples] == [
        ("z", "r2", "y"),
        ("b", "r1", "a"),
        ("a", "r1", "c"),
        ("m", "r0", "b"),
    ]


def test_entity_update_renames_and_adds_aliases_as_a_set(store: GraphStore) -> None:
    store.create_graph("g")
    store.write("g", [EntityRecord("c0001", "Fever", ("pyrexia",)), TripleRecord("c0001", "r", "c0002")])
    result = store.write(
        "g",
        [
            EntityRecord("c0001", None, ("pyrexia", "high temperature", "pyrexia")),
            EntityRecord("c0002", "Infection", ("infectious disease",)),
            EntityRecord("c0002", "Infectious process"),  # the last name given wins
        ],
    )
    assert result == WriteResult(new_triples=0, new_entities=0)
    entities, _ = store.read_graph("g")
    assert entities == [
        EntityRecord("c0001", "Fever", ("pyrexia", "high temperature")),  # name=None keeps the name
        EntityRecord("c0002", "Infectious process", ("infectious disease",)),
    ]
    meta = store.get_graph("g")
    assert (meta.entities, meta.relations, meta.triples) == (2, 1, 1)


def test_entity_record_alone_creates_entity(store: GraphStore) -> None:
    store.create_graph("g")
    assert store.write("g", [EntityRecord("lonely_one")]) == WriteResult(0, 1)
    assert store.read_graph("g") == ([EntityRecord("lonely_one", "lonely one", ())], [])


def test_relation_records_create_relations_and_their_words_merge(store: GraphStore) -> None:
    store.create_graph("g")
    store.write(
        "g",
        [
            TripleRecord("aspirin", "CtD", "headache"),
            RelationRecord("CtD", "treats", aliases=("cures",)),
            RelationRecord("P27", description="the country of a person"),  # creates the relation
            RelationRecord("CtD", None, "treated by", ("cures", "heals")),  # None keeps the name
        ],
    )
    assert store.read_relations("g") == [
        RelationRecord("CtD", "treats", "treated by", ("cures", "heals")),
        RelationRecord("P27", None, None, (), "the country of a person"),
    ]
    meta = store.get_graph("g")
    assert (meta.entities, meta.relations, meta.triples) == (2, 2, 1)
    before = _snapshot(store, "g"), store.read_relations("g")
    assert store.write("g", [RelationRecord("CtD", "treats", aliases=("heals",))]) == WriteResult(0, 0)
    assert (_snapshot(store, "g"), store.read_relations("g")) == before  # nothing new: not even updated_at
    store.write("g", [RelationRecord("CtD", "is a treatment for", aliases=("remedies",))])
    assert store.read_relations("g")[0] == RelationRecord(
        "CtD", "is a treatment for", "treated by", ("cures", "heals", "remedies")
    )
    assert store.read_graph("g")[1] == [TripleRecord("aspirin", "CtD", "headache")]


def test_relation_words_are_per_graph_and_deleted_with_it(store: GraphStore) -> None:
    for name in ("a", "b"):
        store.create_graph(name)
    store.write("a", [RelationRecord("r", "relates to", aliases=("links",))])
    store.write("b", [TripleRecord("x", "r", "y")])
    assert store.read_relations("b") == []  # a relation no record described has no words
    assert store.delete_graph("a")
    store.create_graph("a")
    assert store.read_relations("a") == []
    with store._transaction("count") as conn:
        assert conn.execute("SELECT count(*) FROM relation_aliases").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM relation_words").fetchone() == (0,)
    with pytest.raises(GraphNotFoundError):
        store.read_relations("missing")


def test_same_entity_ids_in_two_graphs_are_separate(store: GraphStore) -> None:
    store.create_graph("a")
    store.create_graph("b")
    store.write("a", [EntityRecord("x", "X in a", ("ax",)), TripleRecord("x", "r", "y")])
    assert store.write("b", [TripleRecord("x", "r", "y")]) == WriteResult(1, 2)
    assert store.read_graph("b")[0] == [EntityRecord("x", "x", ()), EntityRecord("y", "y", ())]
    assert store.read_graph("a")[0][0] == EntityRecord("x", "X in a", ("ax",))


def test_ids_of_any_text_are_looked_up_as_written(store: GraphStore) -> None:
    ids = ['say "hi"', "back\\slash", "Curaçao", "東京", "123", "1e5", "null", "[1]", "😀 x"]
    triples = [
        TripleRecord(head, "rel " + tail, tail) for head, tail in zip(ids, ids[1:] + ids[:1], strict=True)
    ]
    store.create_graph("g")
    assert store.write("g", triples[:4]) == WriteResult(new_triples=4, new_entities=5)
    assert store.write("g", triples) == WriteResult(new_triples=5, new_entities=4)  # the first four stored
    entities, stored = store.read_graph("g")
    assert [e.id for e in entities] == ids
    assert stored == triples


def test_write_is_idempotent(store: GraphStore) -> None:
    store.create_graph("g")
    assert store.write("g", CHUNK) == WriteResult(new_triples=3, new_entities=4)
    before = _snapshot(store, "g")
    assert store.write("g", CHUNK) == WriteResult(new_triples=0, new_entities=0)
    assert _snapshot(store, "g") == before  # nothing changed, not even updated_at


def test_empty_write(store: GraphStore) -> None:
    store.create_graph("g")
    assert store.write("g", []) == WriteResult(0, 0)
    assert store.read_graph("g") == ([], [])


def test_concurrent_writers_threads(store: GraphStore) -> None:
    store.create_graph("g")
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for step in range(20):
                store.write(
                    "g", [TripleRecord(f"w{worker}", "step", f"s{step}"), TripleRecord("hub", "r", "x")]
                )
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    meta = store.get_graph("g")
    assert meta.triples == 8 * 20 + 1
    assert meta.entities == 8 + 20 + 2
    assert len(store.read_graph("g")[1]) == meta.triples


# Atomicity


def test_failing_sqlite_statement_leaves_nothing(store: GraphStore) -> None:
    store.create_graph("g")
    store.write("g", [EntityRecord("x", "X", ("ex",)), TripleRecord("x", "r", "y")])
    before = _snapshot(store, "g")
    # A trigger in the database makes the relation insert fail after entities, renames and aliases went in.
    with sqlite3.connect(store.path) as other:
        other.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON relations WHEN NEW.name = 'explode' "
            "BEGIN SELECT RAISE(ABORT, 'relation refused'); END"
        )
    chunk = [
        EntityRecord("x", "Renamed", ("new alias",)),
        EntityRecord("fresh", "Fresh"),
        TripleRecord("x", "r", "z"),
        TripleRecord("x", "explode", "w"),
    ]
    with pytest.raises(StoreError, match="relation refused"):
        store.write("g", chunk)
    assert _snapshot(store, "g") == before
    with sqlite3.connect(store.path) as other:
        assert other.execute("SELECT count(*) FROM entities").fetchone()[0] == 2
        other.execute("DROP TRIGGER boom")
    # The store is usable afterwards and the same chunk now goes in whole.
    assert store.write("g", chunk) == WriteResult(new_triples=2, new_entities=3)
    assert store.read_graph("g")[0][0] == EntityRecord("x", "Renamed", ("ex", "new alias"))


def test_failure_midway_through_a_statement_leaves_nothing(store: GraphStore) -> None:
    store.create_graph("g")
    store.write("g", [TripleRecord("a", "r", "b")])
    before = _snapshot(store, "g")
    chunk = [
        TripleRecord("a", "r", "c"),
        EntityRecord("d", "D"),
        EntityRecord("e", object()),  # type: ignore[arg-type]  # SQLite cannot bind it: the insert fails here
        TripleRecord("c", "r", "d"),
    ]
    with pytest.raises(StoreError, match="write failed"):
        store.write("g", chunk)
    assert _snapshot(store, "g") == before


def test_unknown_record_type_is_rejected_before_writing(store: GraphStore) -> None:
    store.create_graph("g")
    with pytest.raises(
        TypeError, match="record 1 must be a TripleRecord, an EntityRecord or a RelationRecord"
    ):
        store.write("g", [TripleRecord("a", "r", "b"), ("a", "r", "c")])  # type: ignore[list-item]
    assert store.read_graph("g") == ([], [])


# Durability


def test_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    child = textwrap.dedent(
        """
        import os, signal, sys
        from graphfuse.gnn.data.records import EntityRecord, Retraction, TripleRecord
        from graphfuse.server.storage.store import GraphStore

        store = GraphStore(sys.argv[1])
        store.create_graph("g", "written by a process that dies")
        result = store.write("g", [EntityRecord("a", "Alpha", ("first",)), TripleRecord("a", "r", "b")])
        print(result.new_triples, result.new_entities, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(data_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.split() == ["1", "2"]
    # The process never closed the database: the chunk is in the WAL, recovered on open.
    assert (data_dir / f"{DB_FILENAME}-wal").exists()
    with GraphStore(data_dir) as reopened:
        assert reopened.get_graph("g").description == "written by a process that dies"
        assert reopened.read_graph("g") == (
            [EntityRecord("a", "Alpha", ("first",)), EntityRecord("b", "b", ())],
            [TripleRecord("a", "r", "b")],
        )


def test_reopen_after_close(tmp_path: Path) -> None:
    store = GraphStore(tmp_path)
    store.create_graph("g", "kept")
    store.write("g", [*CHUNK, RelationRecord("treats", "treats", "treated by", ("cures",), "a therapy")])
    before = store.read_graph("g"), store.read_relations("g"), store.get_graph("g")
    assert before[1] == [RelationRecord("treats", "treats", "treated by", ("cures",), "a therapy")]
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.get_graph("g")
    with GraphStore(tmp_path) as reopened:
        assert (reopened.read_graph("g"), reopened.read_relations("g"), reopened.get_graph("g")) == before
        assert reopened.write("g", CHUNK) == WriteResult(0, 0)


# Corruption and versions


def _real_db(tmp_path: Path) -> bytes:
    with GraphStore(tmp_path / "real") as store:
        store.create_graph("g")
        store.write("g", [TripleRecord(f"e{i}", f"r{i % 7}", f"e{i + 1}") for i in range(3000)])
    return (tmp_path / "real" / DB_FILENAME).read_bytes()


def test_garbage_file_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(StoreCorruptError) as error:
        GraphStore(tmp_path)
    message = str(error.value)
    assert str(tmp_path / DB_FILENAME) in message
    assert "not a SQLite database" in message and "move it away" in message


@pytest.mark.parametrize("fraction", [0.5, 0.05])
def test_truncated_database_is_corrupt(tmp_path: Path, fraction: float) -> None:
    data = _real_db(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / DB_FILENAME).write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(StoreCorruptError) as error:
        GraphStore(broken)
    message = str(error.value)
    assert str(broken / DB_FILENAME) in message
    assert "restore it from a backup" in message


def test_damaged_page_is_corrupt(tmp_path: Path) -> None:
    data = bytearray(_real_db(tmp_path))
    page_size = int.from_bytes(data[16:18], "big")
    data[3 * page_size : 4 * page_size] = b"\xa5" * page_size  # scribble over one page past the schema
    (tmp_path / "real" / DB_FILENAME).write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="damaged|unreadable"):
        GraphStore(tmp_path / "real")


def test_foreign_sqlite_database_is_rejected(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    with pytest.raises(StoreCorruptError, match="not a graphfuse store"):
        GraphStore(tmp_path)


def test_newer_schema_version_is_rejected(tmp_path: Path) -> None:
    with GraphStore(tmp_path) as store:
        store.create_graph("g")
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 4}")
    with pytest.raises(StoreVersionError) as error:
        GraphStore(tmp_path)
    assert isinstance(error.value, StoreCorruptError)
    message = str(error.value)
    assert f"schema version {SCHEMA_VERSION + 4}" in message and f"only version {SCHEMA_VERSION}" in message
    assert str(tmp_path / DB_FILENAME) in message


def test_retractions_apply_in_order_with_the_stream_position(store: GraphStore) -> None:
    store.create_graph("g")
    store.write("g", CHUNK)
    assert store.stream_position("updates") == 0
    result = store.write(
        "g",
        [
            Retraction("aspirin", "treats", "headache"),
            Retraction("aspirin", "treats", "nothing"),  # not stored: removes nothing
            TripleRecord("aspirin", "treats", "fever"),
            Retraction("ibuprofen", "treats", "headache"),
            TripleRecord("ibuprofen", "treats", "headache"),  # stated again after its retraction
        ],
        position=("updates", 17),
    )
    assert (result.new_triples, result.removed_triples) == (2, 2)
    _, triples = store.read_graph("g")
    assert set(triples) == {
        TripleRecord("aspirin", "is_a", "pharmacologic_substance"),
        TripleRecord("aspirin", "treats", "fever"),
        TripleRecord("ibuprofen", "treats", "headache"),
    }
    assert store.get_graph("g").triples == 3
    assert store.stream_position("updates") == 17


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_older_store_is_migrated(tmp_path: Path, version: int) -> None:
    with GraphStore(tmp_path) as store:
        store.create_graph("g")
        store.write("g", CHUNK)
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:  # as graphfuse wrote it before
        conn.execute("CREATE INDEX triples_by_graph ON triples(graph_id)")
        if version <= 3:
            conn.execute("DROP TABLE relation_aliases")
            conn.execute("DROP TABLE relation_words")
        if version <= 2:
            conn.execute("ALTER TABLE entities DROP COLUMN type")
        if version == 1:
            conn.execute("DROP TABLE stream_positions")
        conn.execute(f"PRAGMA user_version = {version}")
    with GraphStore(tmp_path) as store:
        assert store.get_graph("g").triples == 3 and store.stream_position("s") == 0
        assert store.read_relations("g") == []
        store.write(
            "g", [EntityRecord("aspirin", type="drug"), RelationRecord("is_a", "is a")], position=("s", 5)
        )
        assert store.stream_position("s") == 5
        entities = {e.id: e for e in store.read_graph("g")[0]}
        assert entities["aspirin"].type == "drug" and entities["ibuprofen"].type is None
        assert store.read_relations("g") == [RelationRecord("is_a", "is a")]
    with GraphStore(tmp_path) as store:  # migrated once: now the current version
        assert store.read_relations("g") == [RelationRecord("is_a", "is a")]
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "triples_by_graph" not in indexes
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_entity_types_are_stored_and_updated(store: GraphStore) -> None:
    store.create_graph("g")
    store.write("g", [EntityRecord("user:1", type="user"), TripleRecord("user:1", "rated", "item:9")])
    store.write("g", [EntityRecord("item:9", "Blue Bottle", type="item"), EntityRecord("user:1")])
    assert store.read_graph("g")[0] == [
        EntityRecord("user:1", "user:1", (), "user"),  # a record without a type keeps the stored one
        EntityRecord("item:9", "Blue Bottle", (), "item"),
    ]


def test_empty_file_becomes_a_new_store(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).write_bytes(b"")
    with GraphStore(tmp_path) as store:
        assert store.create_graph("g") == store.get_graph("g")


# Embeddings


def test_embeddings_round_trip(store: GraphStore) -> None:
    rng = np.random.default_rng(0)
    vectors = {"fever": rng.standard_normal(384).astype(np.float32), "héadache ⚕": rng.standard_normal(384)}
    store.put_embeddings("minilm", vectors)
    found = store.get_embeddings("minilm", ["fever", "unknown", "héadache ⚕", "fever"])
    assert set(found) == {"fever", "héadache ⚕"}
    for text, vector in found.items():
        assert vector.dtype == np.float32 and vector.shape == (384,)
        np.testing.assert_array_equal(vector, np.asarray(vectors[text], dtype=np.float32))
    found["fever"] *= 2  # a caller may change its copy in place
    np.testing.assert_array_equal(store.get_embeddings("minilm", ["fever"])["fever"], vectors["fever"])
    assert store.get_embeddings("minilm", []) == {}


def test_embeddings_are_per_model_and_replaced(store: GraphStore) -> None:
    store.put_embeddings("a", {"x": np.array([1.0, 2.0], dtype=np.float32)})
    store.put_embeddings("b", {"x": np.array([3.0, 4.0, 5.0], dtype=np.float32)})
    assert store.get_embeddings("c", ["x"]) == {}
    np.testing.assert_array_equal(store.get_embeddings("a", ["x"])["x"], [1.0, 2.0])
    np.testing.assert_array_equal(store.get_embeddings("b", ["x"])["x"], [3.0, 4.0, 5.0])
    store.put_embeddings("a", {"x": np.array([0.5], dtype=np.float32)})
    np.testing.assert_array_equal(store.get_embeddings("a", ["x"])["x"], [0.5])


def test_embeddings_many_texts_and_bad_shape(store: GraphStore) -> None:
    vectors = {f"t{i}": np.full(4, i, dtype=np.float32) for i in range(1500)}  # more than one IN (...) batch
    store.put_embeddings("m", vectors)
    found = store.get_embeddings("m", [f"t{i}" for i in range(0, 1600, 3)])
    assert len(found) == len(range(0, 1500, 3))
    np.testing.assert_array_equal(found["t999"], [999.0] * 4)
    with pytest.raises(ValueError, match="1-D"):
        store.put_embeddings("m", {"bad": np.zeros((2, 2), dtype=np.float32)})


# Size


def test_large_write_and_read(store: GraphStore) -> None:
    store.create_graph("big")
    records = [
        TripleRecord(f"e{i % 50_000}", f"r{i % 37}", f"e{(i * 7 + 1) % 50_000}") for i in range(200_000)
    ]
    assert store.write("big", records) == WriteResult(new_triples=200_000, new_entities=50_000)
    entities, triples = store.read_graph("big")
    assert len(entities) == 50_000
    assert triples[0] == records[0] and triples[-1] == records[-1] and triples[123_456] == records[123_456]
    meta = store.get_graph("big")
    assert (meta.entities, meta.relations, meta.triples) == (50_000, 37, 200_000)


def test_triples_given_as_columns_are_stored_as_records_are(tmp_path: Path) -> None:
    first = [EntityRecord("db1", "Aspirin"), TripleRecord("db1", "treats", "d1")]
    chunk = [
        TripleRecord("db2", "treats", "d1"),
        TripleRecord("db2", "treats", "d1"),  # repeated in the chunk
        TripleRecord("db1", "treats", "d1"),  # stored already
        TripleRecord("d1", "presents", "s1"),
    ]
    results = []
    for name, write in [
        ("records", lambda store: store.write("g", [EntityRecord("x"), *chunk])),
        ("columns", lambda store: store.write("g", [EntityRecord("x")], triples=TripleColumns.of(chunk))),
    ]:
        with GraphStore(tmp_path / name) as store:
            store.create_graph("g")
            store.write("g", first)
            written = write(store)
            meta = store.get_graph("g")
            results.append((written, store.read_graph("g"), (meta.entities, meta.relations, meta.triples)))
    assert results[0] == results[1]
    assert results[0][0].new_triples == 2 and results[0][0].new_entities == 3
