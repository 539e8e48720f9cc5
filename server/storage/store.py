"""The durable graph store: graphs, their entities and triples, and cached text embeddings, in one SQLite
file.

``data_dir/graphfuse.db`` runs in WAL mode with ``synchronous=FULL``, so a chunk that :meth:`GraphStore.write`
has returned from survives a kill -9 of the process (and a power cut, as far as the disk honours fsync).
One connection serves every thread, guarded by a lock; each write is one ``BEGIN IMMEDIATE`` ... ``COMMIT``.

Schema (version :data:`SCHEMA_VERSION`, kept in ``PRAGMA user_version``; ``PRAGMA application_id`` marks
the file as ours):

- ``graphs``: one row per graph with its entity, relation and triple counts, kept current by every write so
  that :meth:`GraphStore.get_graph` never counts rows.
- ``entities`` / ``relations``: per-graph ids (text) with an integer rowid; the rowid is the insertion order.
- ``aliases``: entity rowid and alias, a set per entity, rowid in insertion order.
- ``relation_words``: the words :class:`~graphfuse.gnn.data.records.RelationRecord` records gave a relation
  (name, inverse name, description; NULL where none was given), one row per described relation, keyed by
  the relation's rowid (itself one per graph and relation id); ``relation_aliases``: its aliases, a set
  per relation, rowid in insertion order.
- ``triples``: (graph, head, relation, tail) as integer rowids of the two tables above, unique per graph,
  rowid in insertion order. Integers keep the table and its unique index small and the reads fast.
- ``embeddings``: (model, text) -> dimension and little-endian float32 bytes.

This module is plain Python and sqlite3 (numpy for vectors); it knows nothing of gRPC.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphfuse.gnn.data.records import (
    EntityRecord,
    Record,
    RelationRecord,
    Retraction,
    TripleColumns,
    TripleRecord,
    default_name,
)
from graphfuse.gnn.formats.bulk import GraphColumns
from graphfuse.server.storage import clean_close, edge_files
from graphfuse.server.storage.columns import (
    INSERT_TRIPLE,
    SELECT_TRIPLES,
    StoredColumns,
    insert_columns,
    select_columns,
)

__all__ = [
    "DB_FILENAME",
    "SCHEMA_VERSION",
    "GraphExistsError",
    "GraphMeta",
    "GraphNotFoundError",
    "GraphStore",
    "StoreCorruptError",
    "StoreError",
    "StoreVersionError",
    "WriteResult",
]

DB_FILENAME = "graphfuse.db"
SCHEMA_VERSION = 5  # 2: stream_positions; 3: entities.type; 4: relation_words, relation_aliases;
# 5: no triples_by_graph index (the unique index serves reads by graph; one index less per triple written)
APPLICATION_ID = 0x47465553  # "GFUS" in the SQLite header: this file is a graphfuse store
_SQLITE_MAGIC = b"SQLite format 3\x00"
_VECTOR_DTYPE = np.dtype("<f4")
_CHECKPOINT_PAGES = 16384  # 64 MiB of 4 KiB pages
_IN_CHUNK = 500  # texts per "IN (...)" lookup, well under SQLite's bound-parameter limit

# The last stream sequence applied per update stream, written in the same transaction as its records.
_STREAM_POSITIONS = """
CREATE TABLE stream_positions (
    stream TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL
) WITHOUT ROWID;
"""
# The words relation records give, by relation; NULL keeps what is stored, aliases accumulate.
_RELATION_WORDS = """
CREATE TABLE relation_words (
    relation INTEGER PRIMARY KEY REFERENCES relations(id) ON DELETE CASCADE,
    name TEXT,
    inverse_name TEXT,
    description TEXT
);
CREATE TABLE relation_aliases (
    id INTEGER PRIMARY KEY,
    relation INTEGER NOT NULL REFERENCES relations(id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    UNIQUE (relation, alias)
);
"""
_SCHEMA = (
    """
CREATE TABLE graphs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    entities INTEGER NOT NULL DEFAULT 0,
    relations INTEGER NOT NULL DEFAULT 0,
    triples INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE entities (
    id INTEGER PRIMARY KEY,
    graph_id INTEGER NOT NULL REFERENCES graphs(id) ON DELETE CASCADE,
    entity_id TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT '',
    UNIQUE (graph_id, entity_id)
);
CREATE INDEX entities_by_graph ON entities(graph_id);
CREATE TABLE aliases (
    id INTEGER PRIMARY KEY,
    entity INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    UNIQUE (entity, alias)
);
CREATE TABLE relations (
    id INTEGER PRIMARY KEY,
    graph_id INTEGER NOT NULL REFERENCES graphs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    UNIQUE (graph_id, name)
);
CREATE TABLE triples (
    id INTEGER PRIMARY KEY,
    graph_id INTEGER NOT NULL REFERENCES graphs(id) ON DELETE CASCADE,
    head INTEGER NOT NULL,
    relation INTEGER NOT NULL,
    tail INTEGER NOT NULL,
    UNIQUE (graph_id, head, relation, tail)
);
CREATE TABLE embeddings (
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, text)
) WITHOUT ROWID;
"""
    + "\n"
    + _STREAM_POSITIONS
    + "\n"
    + _RELATION_WORDS
)


# The rowids of a graph's entities or relations by id, for ids given as one JSON array.
_SELECT_ROWIDS = """
SELECT j.value, row.id FROM json_each(?2) AS j
CROSS JOIN {table} AS row ON row.graph_id = ?1 AND row.{key} = j.value
"""
_SELECT_ENTITY_ROWIDS = _SELECT_ROWIDS.format(table="entities", key="entity_id")
_SELECT_RELATION_ROWIDS = _SELECT_ROWIDS.format(table="relations", key="name")
_ADVANCE_POSITION = """
INSERT INTO stream_positions (stream, sequence) VALUES (?1, ?2)
ON CONFLICT (stream) DO UPDATE SET sequence = max(sequence, excluded.sequence)
"""
_DELETE_TRIPLE = """
DELETE FROM triples
WHERE graph_id = ?1
  AND head = (SELECT id FROM entities WHERE graph_id = ?1 AND entity_id = ?2)
  AND relation = (SELECT id FROM relations WHERE graph_id = ?1 AND name = ?3)
  AND tail = (SELECT id FROM entities WHERE graph_id = ?1 AND entity_id = ?4)
"""
_DESCRIBE_RELATION = """
INSERT INTO relation_words (relation, name, inverse_name, description)
SELECT id, ?3, ?4, ?5 FROM relations WHERE graph_id = ?1 AND name = ?2
ON CONFLICT (relation) DO UPDATE SET
    name = coalesce(excluded.name, name),
    inverse_name = coalesce(excluded.inverse_name, inverse_name),
    description = coalesce(excluded.description, description)
WHERE coalesce(excluded.name, name) IS NOT name
   OR coalesce(excluded.inverse_name, inverse_name) IS NOT inverse_name
   OR coalesce(excluded.description, description) IS NOT description
"""
_INSERT_RELATION_ALIAS = """
INSERT OR IGNORE INTO relation_aliases (relation, alias)
SELECT id, ?3 FROM relations WHERE graph_id = ?1 AND name = ?2
"""


class StoreError(RuntimeError):
    """The store failed to read or write; nothing of the failed operation was kept."""


class StoreCorruptError(StoreError):
    """The database is unreadable, truncated, not a graphfuse store, or of a schema version unknown here."""


class StoreVersionError(StoreCorruptError):
    """The database was written by a graphfuse with a schema this one does not know."""


class GraphExistsError(ValueError):
    """A graph of that name exists already."""


class GraphNotFoundError(LookupError):
    """No graph of that name exists."""


@dataclass(frozen=True)
class GraphMeta:
    """A graph's name, description, sizes and timestamps (seconds since the epoch)."""

    name: str
    description: str
    entities: int
    relations: int
    triples: int
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class WriteResult:
    """What one :meth:`GraphStore.write` changed: new triples, new entities (by record or by a triple), and
    triples removed by retractions."""

    new_triples: int
    new_entities: int
    removed_triples: int = 0


@dataclass
class _Chunk:
    """One write's records, reduced to what the SQL needs, each list in order of first appearance."""

    entities: dict[str, str | None]  # id -> explicit name (last one given wins) or None
    types: dict[str, str]  # id -> node type, where one is given (last one wins)
    aliases: list[tuple[str, str]]  # (entity id, alias), duplicates removed
    relations: list[str]
    triples: list[tuple[str, str, str]]  # duplicates removed
    # relation id -> (name, inverse name, description) of its relation records, merged (None: not given)
    relation_words: dict[str, tuple[str | None, str | None, str | None]]
    relation_aliases: list[tuple[str, str]]  # (relation id, alias), duplicates removed


def _prepare(records: Sequence[TripleRecord | EntityRecord | RelationRecord]) -> _Chunk:
    entities: dict[str, str | None] = {}
    types: dict[str, str] = {}
    aliases: dict[tuple[str, str], None] = {}
    relations: dict[str, None] = {}
    triples: dict[tuple[str, str, str], None] = {}
    words: dict[str, tuple[str | None, str | None, str | None]] = {}
    relation_aliases: dict[tuple[str, str], None] = {}
    for index, record in enumerate(records):
        if isinstance(record, TripleRecord):
            entities.setdefault(record.head, None)
            entities.setdefault(record.tail, None)
            relations[record.relation] = None
            triples[(record.head, record.relation, record.tail)] = None
        elif isinstance(record, EntityRecord):
            if record.name is not None:
                entities[record.id] = record.name
            else:
                entities.setdefault(record.id, None)
            if record.type is not None:
                types[record.id] = record.type
            for alias in record.aliases:
                aliases[(record.id, alias)] = None
        elif isinstance(record, RelationRecord):
            relations[record.id] = None
            name, inverse_name, description = words.get(record.id, (None, None, None))
            words[record.id] = (
                name if record.name is None else record.name,
                inverse_name if record.inverse_name is None else record.inverse_name,
                description if record.description is None else record.description,
            )
            for alias in record.aliases:
                relation_aliases[(record.id, alias)] = None
        else:
            raise TypeError(
                f"record {index} must be a TripleRecord, an EntityRecord or a RelationRecord "
                f"(got {type(record).__name__})"
            )
    return _Chunk(
        entities, types, list(aliases), list(relations), list(triples), words, list(relation_aliases)
    )


def _columns_chunk(triples: TripleColumns) -> _Chunk:
    """What :func:`_prepare` makes of ``triples.records()``, without an object per triple."""
    ends = itertools.chain.from_iterable(zip(triples.heads, triples.tails, strict=True))
    entities: dict[str, str | None] = dict.fromkeys(ends)  # in the order the graph numbers them
    relations = list(dict.fromkeys(triples.relations))
    distinct = list(dict.fromkeys(zip(triples.heads, triples.relations, triples.tails, strict=True)))
    return _Chunk(entities, {}, [], relations, distinct, {}, [])


def _json(ids: Iterable[str]) -> str:
    return json.dumps(list(ids), ensure_ascii=False)


def _entity_rows(conn: sqlite3.Connection, graph_id: int, chunk: _Chunk) -> tuple[dict[str, int], list[str]]:
    """The rowid of every entity of ``chunk``, the missing ones created (numbered in the chunk's order, with
    their names, or ``default_name``, and kinds); and those created. Looks each entity up once, where a
    statement per triple would look up its head and tail."""
    rows = dict(conn.execute(_SELECT_ENTITY_ROWIDS, (graph_id, _json(chunk.entities))))
    missing = [entity for entity in chunk.entities if entity not in rows]
    if missing:
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM entities").fetchone()[0]
        rows.update(zip(missing, range(first, first + len(missing)), strict=True))
        conn.executemany(
            "INSERT INTO entities (id, graph_id, entity_id, name, type) VALUES (?, ?, ?, ?, ?)",
            (
                (
                    rows[entity],
                    graph_id,
                    entity,
                    _name(entity, chunk.entities[entity]),
                    chunk.types.get(entity, ""),
                )
                for entity in missing
            ),
        )
    return rows, missing


def _name(entity: str, given: str | None) -> str:
    return default_name(entity) if given is None else given


def _runs(records: Sequence[Record]) -> list[tuple[bool, list]]:
    """Consecutive records split into runs of additions and of retractions, in order."""
    runs: list[tuple[bool, list]] = []
    for record in records:
        retracting = isinstance(record, Retraction)
        if not runs or runs[-1][0] != retracting:
            runs.append((retracting, []))
        runs[-1][1].append(record)
    return runs


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Each statement of ``script`` in the open transaction (``executescript`` would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _check_file(db_path: Path) -> None:
    """Reject a file that is plainly not SQLite before SQLite sees it, with a message a person can act on."""
    try:
        with db_path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as error:
        raise StoreCorruptError(f"cannot read {db_path}: {error}") from error
    if header and header != _SQLITE_MAGIC:
        raise StoreCorruptError(
            f"{db_path} is not a SQLite database (its first bytes are {header!r}); "
            "move it away or point the server at another data directory"
        )


class GraphStore:
    """Graphs, their records and cached embeddings in ``data_dir/graphfuse.db``; shareable between threads.

    Args:
        data_dir: directory of the store, created (with the database) when missing.

    Raises:
        StoreCorruptError: the database is not SQLite, fails ``PRAGMA quick_check``, is not a graphfuse store,
            or has a schema version this code does not know (:class:`StoreVersionError`).
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILENAME
        self._lock = threading.Lock()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the data directory {self.data_dir}: {error}") from error
        _check_file(self.path)
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as error:
            raise StoreCorruptError(f"cannot open {self.path}: {error}") from error
        try:
            self._open()
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check`` of every page (skipped when the file is as a clean close left it)."""
        assert self._conn is not None
        try:
            problems = [row[0] for row in self._conn.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as error:
            raise self._corrupt(f"is unreadable ({error})") from error
        if problems != ["ok"]:
            shown = "; ".join(problems[:3]) + (
                f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            )
            raise self._corrupt(f"is damaged (quick_check: {shown})")

    def _corrupt(self, what: str) -> StoreCorruptError:
        return StoreCorruptError(
            f"{self.path} {what}; restore it from a backup, or move it away (with any "
            f"{DB_FILENAME}-wal file beside it) to start an empty store"
        )

    def _open(self) -> None:
        conn = self._conn
        assert conn is not None
        if not clean_close.take(self.path):
            self._check_integrity()
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA cache_size = -65536")  # 64 MiB
            # Checkpoint the WAL into the database every 64 MiB instead of SQLite's 4 MiB: a stream of
            # chunks rewrites the same index pages, and each checkpoint copies them again (1.2x on ingest).
            conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: SQLite refused WAL journaling (journal_mode is {mode!r})")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._check_or_create_schema(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise self._translate(error, "open") from error

    def _check_or_create_schema(self, conn: sqlite3.Connection) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id == 0 and version == 0 and tables == 0:
            _execute_script(conn, _SCHEMA)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        if app_id != APPLICATION_ID:
            raise self._corrupt(f"is a SQLite database but not a graphfuse store (application_id {app_id})")
        if version in (1, 2, 3, 4):
            if version == 1:
                _execute_script(conn, _STREAM_POSITIONS)
            if version <= 2:
                conn.execute("ALTER TABLE entities ADD COLUMN type TEXT NOT NULL DEFAULT ''")
            if version <= 3:
                _execute_script(conn, _RELATION_WORDS)
            conn.execute("DROP INDEX IF EXISTS triples_by_graph")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        if version != SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.path} has schema version {version}, but this graphfuse reads only version "
                f"{SCHEMA_VERSION}; run the graphfuse release that wrote it, or point the server at another "
                "data directory"
            )

    def _translate(self, error: sqlite3.Error, action: str) -> StoreError:
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return self._corrupt(f"is damaged ({action} failed: {error})")
        return StoreError(f"{action} failed on {self.path}: {error}")

    @contextmanager
    def _transaction(self, action: str, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one transaction; commit on success, roll back on any exception."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"the store at {self.path} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            except sqlite3.Error as error:
                raise self._translate(error, action) from error
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as error:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the error below says what went wrong; SQLite rolls back on its own
                if isinstance(error, sqlite3.Error):
                    raise self._translate(error, action) from error
                raise

    def close(self) -> None:
        """Close the database (checkpointing the WAL); later calls raise :class:`StoreError`. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                clean_close.mark(self.path)

    def backup(self, path: str | Path) -> None:
        """Copy the database to ``path`` as it stands after one committed transaction (SQLite's online backup
        API in one step, so one read transaction) on a connection of its own: writers go on meanwhile, and
        a stream position in the copy always matches the records in it.

        Raises:
            StoreError: the copy failed (a partial ``path`` may be left behind).
        """
        try:
            source = sqlite3.connect(self.path)
        except sqlite3.Error as error:
            raise self._translate(error, "backup") from error
        try:
            target = sqlite3.connect(path)
            try:
                source.backup(target)
            finally:
                target.close()
        except sqlite3.Error as error:
            raise self._translate(error, "backup") from error
        finally:
            source.close()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.data_dir)!r})"

    # Graphs

    @staticmethod
    def _graph_row(conn: sqlite3.Connection, name: str) -> tuple:
        row = conn.execute(
            "SELECT id, name, description, entities, relations, triples, created_at, updated_at "
            "FROM graphs WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            raise GraphNotFoundError(f"graph {name!r} not found")
        return row

    def create_graph(self, name: str, description: str = "") -> GraphMeta:
        """Create an empty graph. Raises :class:`GraphExistsError` when ``name`` is taken."""
        now = time.time()
        with self._transaction("create_graph") as conn:
            if conn.execute("SELECT 1 FROM graphs WHERE name = ?", (name,)).fetchone():
                raise GraphExistsError(f"graph {name!r} already exists")
            conn.execute(
                "INSERT INTO graphs (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (name, description, now, now),
            )
        return GraphMeta(name, description, 0, 0, 0, now, now)

    def delete_graph(self, name: str) -> bool:
        """Remove a graph with all its records; False when there was none of that name."""
        with self._transaction("delete_graph") as conn:
            row = conn.execute("SELECT id FROM graphs WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            graph_id = row[0]
            # Children first, set-wise; the cascades would do the same row by row.
            conn.execute(
                "DELETE FROM aliases WHERE entity IN (SELECT id FROM entities WHERE graph_id = ?)",
                (graph_id,),
            )
            for table in ("relation_aliases", "relation_words"):
                conn.execute(
                    f"DELETE FROM {table} WHERE relation IN (SELECT id FROM relations WHERE graph_id = ?)",
                    (graph_id,),
                )
            for table in ("triples", "relations", "entities"):
                conn.execute(f"DELETE FROM {table} WHERE graph_id = ?", (graph_id,))
            conn.execute("DELETE FROM graphs WHERE id = ?", (graph_id,))
        edge_files.remove(self.data_dir, graph_id)
        return True

    def has_graph(self, name: str) -> bool:
        with self._transaction("has_graph", immediate=False) as conn:
            return conn.execute("SELECT 1 FROM graphs WHERE name = ?", (name,)).fetchone() is not None

    def get_graph(self, name: str) -> GraphMeta:
        """A graph's metadata. Raises :class:`GraphNotFoundError`."""
        with self._transaction("get_graph", immediate=False) as conn:
            return GraphMeta(*self._graph_row(conn, name)[1:])

    def list_graphs(self) -> list[GraphMeta]:
        """Every graph's metadata, sorted by name."""
        with self._transaction("list_graphs", immediate=False) as conn:
            rows = conn.execute(
                "SELECT name, description, entities, relations, triples, created_at, updated_at "
                "FROM graphs ORDER BY name"
            ).fetchall()
        return [GraphMeta(*row) for row in rows]

    # Records

    def write(
        self,
        graph: str,
        records: Sequence[Record],
        position: tuple[str, int] | None = None,
        triples: TripleColumns | None = None,
    ) -> WriteResult:
        """Store one chunk of records, then ``triples``, in one transaction, durable when this returns.

        Records apply in order. Triples are a set: a repeated triple stores nothing, and a retraction of a
        triple that is not stored removes nothing. An :class:`EntityRecord` creates its entity or, when the
        entity exists, replaces its name (if given) and adds its new aliases; a :class:`RelationRecord`
        likewise creates its relation, replaces the words it gives and adds its new aliases. A triple's head
        or tail that is not an entity yet is created with ``default_name(id)``. Records are expected to be
        valid (:func:`graphfuse.gnn.data.records.validate_record`); a record of another type raises
        ``TypeError``.

        Args:
            position: ``(stream, sequence)``: the update stream position these records come from, stored in
                the same transaction (see :meth:`stream_position`).

        Raises:
            GraphNotFoundError: no graph ``graph``.
            StoreError: SQLite failed; the transaction was rolled back and nothing of the chunk is stored.
        """
        return self.write_chunks(graph, [(records, triples)], position)[0]

    def write_chunks(
        self,
        graph: str,
        chunks: Sequence[tuple[Sequence[Record], TripleColumns | None]],
        position: tuple[str, int] | None = None,
    ) -> list[WriteResult]:
        """Store several chunks of ``(records, triples)`` one after another in one transaction, each as
        :meth:`write` stores it, and what each changed: a group commit (one commit's page writes for all of
        them, where the triples' index makes a commit rewrite pages that every chunk touches).

        Raises:
            GraphNotFoundError: no graph ``graph``.
            StoreError: SQLite failed; nothing of any chunk is stored.
        """
        # additions reduced to what the SQL needs before the write lock is taken; the columns go last
        prepared = []
        for records, triples in chunks:
            runs = [(retracting, run if retracting else _prepare(run)) for retracting, run in _runs(records)]
            if triples:
                runs.append((False, _columns_chunk(triples)))
            prepared.append(runs)
        results = []
        with self._transaction("write") as conn:
            graph_id = self._graph_row(conn, graph)[0]
            for runs in prepared:
                new_triples = new_entities = removed = 0
                for retracting, run in runs:
                    if retracting:
                        removed += self._delete(conn, graph_id, run)
                    else:
                        added = self._insert(conn, graph_id, run)
                        new_triples += added.new_triples
                        new_entities += added.new_entities
                results.append(WriteResult(new_triples, new_entities, removed))
            if position is not None:
                conn.execute(_ADVANCE_POSITION, position)
        return results

    def write_columns(self, graph: str, columns: GraphColumns) -> WriteResult:
        """Store a bulk load (:func:`graphfuse.gnn.formats.bulk.read_columns`) in one transaction: its
        entities, relations and triples, then its records (relation words, aliases). All or nothing, as
        :meth:`write`; the columns are expected to be valid (every reader checks them).

        Raises:
            GraphNotFoundError: no graph ``graph``.
            StoreError: SQLite failed; nothing of the load is stored.
        """
        with self._transaction("bulk write") as conn:
            graph_id = self._graph_row(conn, graph)[0]
            new_entities, _, new_triples = insert_columns(conn, graph_id, columns)
            if columns.records:
                added = self._insert(conn, graph_id, _prepare(columns.records))
                new_entities += added.new_entities
        return WriteResult(new_triples=new_triples, new_entities=new_entities)

    def read_columns(self, name: str) -> StoredColumns:
        """A graph's entities, relations and triples as :class:`StoredColumns` (no object per triple): what
        :meth:`read_graph` returns, as a restart reads it.

        Raises:
            GraphNotFoundError: no graph ``name``.
        """
        with self._transaction("read_columns", immediate=False) as conn:
            row = self._graph_row(conn, name)
            stamp = (row[0], *row[3:])  # id, entities, relations, triples, created and last changed
            stored = edge_files.load(self.data_dir, stamp)
            columns, edges = select_columns(conn, stamp, stored)
        if stored is None:
            edge_files.save(self.data_dir, stamp, edges)
        return columns

    def read_layouts(self, stamp: tuple) -> dict[str, np.ndarray] | None:
        """The layouts kept by :meth:`keep_layouts` for the graph version ``stamp``
        (:attr:`StoredColumns.stamp`), or None when none are kept for it."""
        return edge_files.load_arrays(self.data_dir, stamp, edge_files.LAYOUTS)

    def keep_layouts(self, stamp: tuple, layouts: dict[str, np.ndarray]) -> None:
        """Keep what a graph built from the edges of version ``stamp`` beside the database, for the next start
        to read instead of building it again (stale, and ignored, once the graph is written to)."""
        edge_files.save_arrays(self.data_dir, stamp, edge_files.LAYOUTS, layouts)

    def set_stream_position(self, stream: str, sequence: int) -> None:
        """Record that ``stream`` was consumed up to ``sequence`` (positions only grow)."""
        with self._transaction("set_stream_position") as conn:
            conn.execute(_ADVANCE_POSITION, (stream, sequence))

    def stream_positions(self, prefix: str) -> dict[str, int]:
        """The last sequence of each stream whose name starts with ``prefix`` (a Kafka topic's partitions)."""
        with self._transaction("stream_positions", immediate=False) as conn:
            rows = conn.execute("SELECT stream, sequence FROM stream_positions").fetchall()
        return {name: sequence for name, sequence in rows if name.startswith(prefix)}

    def stream_position(self, stream: str) -> int:
        """The last sequence of ``stream`` whose records are stored (0 when none)."""
        with self._transaction("stream_position", immediate=False) as conn:
            row = conn.execute("SELECT sequence FROM stream_positions WHERE stream = ?", (stream,)).fetchone()
        return row[0] if row else 0

    @staticmethod
    def _delete(conn: sqlite3.Connection, graph_id: int, retractions: Sequence[Retraction]) -> int:
        cursor = conn.cursor()
        cursor.executemany(_DELETE_TRIPLE, ((graph_id, r.head, r.relation, r.tail) for r in retractions))
        removed = max(cursor.rowcount, 0)
        if removed:
            conn.execute(
                "UPDATE graphs SET triples = triples - ?, updated_at = ? WHERE id = ?",
                (removed, time.time(), graph_id),
            )
        return removed

    @staticmethod
    def _insert(conn: sqlite3.Connection, graph_id: int, chunk: _Chunk) -> WriteResult:
        changes_before = conn.total_changes
        cursor = conn.cursor()
        entity_rows, created = _entity_rows(conn, graph_id, chunk)
        new_entities = len(created)
        fresh = set(created)  # created with their names and kinds: only the others may change
        renamed = [(n, entity_rows[e]) for e, n in chunk.entities.items() if n is not None and e not in fresh]
        if renamed:
            cursor.executemany("UPDATE entities SET name = ?1 WHERE id = ?2 AND name IS NOT ?1", renamed)
        retyped = [(type, entity_rows[e]) for e, type in chunk.types.items() if e not in fresh]
        if retyped:
            cursor.executemany("UPDATE entities SET type = ?1 WHERE id = ?2 AND type IS NOT ?1", retyped)
        if chunk.aliases:
            cursor.executemany(
                "INSERT OR IGNORE INTO aliases (entity, alias) VALUES (?, ?)",
                ((entity_rows[e], a) for e, a in chunk.aliases),
            )
        new_relations = 0
        if chunk.relations:
            cursor.executemany(
                "INSERT OR IGNORE INTO relations (graph_id, name) VALUES (?, ?)",
                ((graph_id, relation) for relation in chunk.relations),
            )
            new_relations = max(cursor.rowcount, 0)
        if chunk.relation_words:
            cursor.executemany(
                _DESCRIBE_RELATION,
                ((graph_id, relation, *words) for relation, words in chunk.relation_words.items()),
            )
        if chunk.relation_aliases:
            cursor.executemany(_INSERT_RELATION_ALIAS, ((graph_id, r, a) for r, a in chunk.relation_aliases))
        new_triples = 0
        if chunk.triples:
            relation_rows = dict(conn.execute(_SELECT_RELATION_ROWIDS, (graph_id, _json(chunk.relations))))
            cursor.executemany(
                INSERT_TRIPLE,
                ((graph_id, entity_rows[h], relation_rows[r], entity_rows[t]) for h, r, t in chunk.triples),
            )
            new_triples = max(cursor.rowcount, 0)
        if conn.total_changes != changes_before:
            conn.execute(
                "UPDATE graphs SET entities = entities + ?, relations = relations + ?, "
                "triples = triples + ?, updated_at = ? WHERE id = ?",
                (new_entities, new_relations, new_triples, time.time(), graph_id),
            )
        return WriteResult(new_triples=new_triples, new_entities=new_entities)

    def read_graph(self, name: str) -> tuple[list[EntityRecord], list[TripleRecord]]:
        """Everything stored in a graph: entities (with names and aliases) and triples, in insertion order.

        Raises:
            GraphNotFoundError: no graph ``name``.
        """
        with self._transaction("read_graph", immediate=False) as conn:
            graph_id = self._graph_row(conn, name)[0]
            entity_rows = conn.execute(
                "SELECT id, entity_id, name, type FROM entities WHERE graph_id = ? ORDER BY id", (graph_id,)
            ).fetchall()
            alias_rows = conn.execute(
                "SELECT a.entity, a.alias FROM aliases AS a JOIN entities AS e ON e.id = a.entity "
                "WHERE e.graph_id = ? ORDER BY a.id",
                (graph_id,),
            ).fetchall()
            relation_ids = dict(
                conn.execute("SELECT id, name FROM relations WHERE graph_id = ?", (graph_id,)).fetchall()
            )
            triple_rows = sorted(conn.execute(SELECT_TRIPLES, (graph_id,)))  # by rowid
        aliases: dict[int, list[str]] = {}
        for entity, alias in alias_rows:
            aliases.setdefault(entity, []).append(alias)
        entity_ids = {rowid: entity for rowid, entity, _, _ in entity_rows}
        entities = [
            EntityRecord(entity, name, tuple(aliases.get(rowid, ())), type or None)
            for rowid, entity, name, type in entity_rows
        ]
        triples = [TripleRecord(entity_ids[h], relation_ids[r], entity_ids[t]) for _, h, r, t in triple_rows]
        return entities, triples

    def read_relations(self, name: str) -> list[RelationRecord]:
        """The words relation records gave a graph's relations: one merged record per described relation
        (``None`` where no record gave that word, aliases in the order they came), in the order the relations
        were created. Apply them after :meth:`read_graph`'s records to rebuild the graph as it was served.

        Raises:
            GraphNotFoundError: no graph ``name``.
        """
        with self._transaction("read_relations", immediate=False) as conn:
            graph_id = self._graph_row(conn, name)[0]
            word_rows = conn.execute(
                "SELECT r.id, r.name, w.name, w.inverse_name, w.description "
                "FROM relation_words AS w JOIN relations AS r ON r.id = w.relation "
                "WHERE r.graph_id = ? ORDER BY r.id",
                (graph_id,),
            ).fetchall()
            alias_rows = conn.execute(
                "SELECT a.relation, a.alias FROM relation_aliases AS a "
                "JOIN relations AS r ON r.id = a.relation WHERE r.graph_id = ? ORDER BY a.id",
                (graph_id,),
            ).fetchall()
        aliases: dict[int, list[str]] = {}
        for relation, alias in alias_rows:
            aliases.setdefault(relation, []).append(alias)
        return [
            RelationRecord(relation, name, inverse_name, tuple(aliases.get(rowid, ())), description)
            for rowid, relation, name, inverse_name, description in word_rows
        ]

    # Embeddings

    def get_embeddings(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors of ``model`` for those of ``texts`` that have one (float32, 1-D, own copies)."""
        wanted = list(dict.fromkeys(texts))
        found: dict[str, np.ndarray] = {}
        if not wanted:
            return found
        with self._transaction("get_embeddings", immediate=False) as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                part = wanted[start : start + _IN_CHUNK]
                rows = conn.execute(
                    f"SELECT text, dim, vector FROM embeddings WHERE model = ? "
                    f"AND text IN ({', '.join('?' * len(part))})",
                    (model, *part),
                ).fetchall()
                for text, dim, blob in rows:
                    if len(blob) != dim * _VECTOR_DTYPE.itemsize:
                        raise self._corrupt(
                            f"holds an embedding of {len(blob)} bytes for dimension {dim} "
                            f"(model {model!r}, text {text!r})"
                        )
                    found[text] = np.frombuffer(blob, dtype=_VECTOR_DTYPE).astype(np.float32)
        return found

    def put_embeddings(self, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Cache vectors of ``model`` by text, replacing older ones, in one transaction.

        Raises:
            ValueError: a vector is not one-dimensional.
        """
        rows = []
        for text, vector in vectors.items():
            array = np.asarray(vector, dtype=_VECTOR_DTYPE)
            if array.ndim != 1:
                raise ValueError(f"Expected a 1-D embedding for {text!r} (got shape {tuple(array.shape)})")
            rows.append((model, text, int(array.shape[0]), array.tobytes()))
        if not rows:
            return
        with self._transaction("put_embeddings") as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model, text, dim, vector) VALUES (?, ?, ?, ?)", rows
            )
