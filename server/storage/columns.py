"""A graph's rows written and read as columns: bulk loads and restarts without a Python object per triple.

Writes insert entities and relations first, read their rowids back in one query, and insert the triples
sorted by the unique index's key, so that SQLite appends to that index instead of seeking through it, each
triple packed into one integer that SQLite unpacks. Reads fetch the triple rowids in blocks into integer
arrays and turn them into entity and relation positions with a sorted search.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from graphfuse.gnn.data.records import default_name
from graphfuse.gnn.formats.bulk import GraphColumns
from graphfuse.server.storage.edge_files import StoredEdges, StoredEntities

__all__ = ["INSERT_TRIPLE", "StoredColumns", "insert_columns", "insert_triples", "select_columns"]

_FETCH_ROWS = 1_000_000
_INSERT_ROWS = 100_000  # triples per INSERT statement
_PACKED_LIMIT = 2**63 - 1  # the largest packed triple SQLite's integers hold
INSERT_TRIPLE = "INSERT OR IGNORE INTO triples (graph_id, head, relation, tail) VALUES (?, ?, ?, ?)"
_INSERT_PACKED_TRIPLES = (
    "INSERT OR IGNORE INTO triples (graph_id, head, relation, tail) "
    "SELECT ?1, value / ?2, value / ?3 % ?4, value % ?3 FROM json_each(?5)"
)


@dataclass
class StoredColumns:
    """A stored graph: entity ``i`` (in insertion order) is ``entity_ids[i]`` with ``names[i]``,
    ``types[i]`` ("" when untyped) and ``aliases.get(i, ())``; relation ``r`` is ``relation_ids[r]``,
    numbered by first use in a triple (in insertion order; relations no triple uses are left out); edge
    ``j`` is ``(heads[j], rels[j], tails[j])``, in insertion order. ``stamp`` names this version of the
    graph (:meth:`GraphStore.read_layouts`): any write changes it."""

    stamp: tuple
    entity_ids: list[str]
    names: list[str]
    types: list[str]
    aliases: dict[int, tuple[str, ...]]
    relation_ids: list[str]
    heads: np.ndarray  # (E,) int64
    rels: np.ndarray
    tails: np.ndarray


def insert_columns(conn: sqlite3.Connection, graph_id: int, columns: GraphColumns) -> tuple[int, int, int]:
    """Insert ``columns`` into graph ``graph_id`` inside the caller's transaction; ``(new entities, new
    relations, new triples)``. Existing entities take the names and kinds given for them."""
    cursor = conn.cursor()
    had_entities = conn.execute("SELECT entities FROM graphs WHERE id = ?", (graph_id,)).fetchone()[0]
    ids, names, types = columns.entity_ids, columns.names, columns.types
    changes = conn.total_changes
    cursor.executemany(
        "INSERT OR IGNORE INTO entities (graph_id, entity_id, name, type) VALUES (?, ?, ?, ?)",
        (
            (graph_id, id, default_name(id) if name is None else name, type or "")
            for id, name, type in zip(ids.tolist(), names.tolist(), types.tolist(), strict=True)
        ),
    )
    new_entities = conn.total_changes - changes
    if had_entities:  # entities that existed take the names and kinds given now
        cursor.executemany(
            "UPDATE entities SET name = ?1 WHERE graph_id = ?2 AND entity_id = ?3 AND name IS NOT ?1",
            (
                (name, graph_id, id)
                for id, name in zip(ids.tolist(), names.tolist(), strict=True)
                if name is not None
            ),
        )
        cursor.executemany(
            "UPDATE entities SET type = ?1 WHERE graph_id = ?2 AND entity_id = ?3 AND type IS NOT ?1",
            (
                (type, graph_id, id)
                for id, type in zip(ids.tolist(), types.tolist(), strict=True)
                if type is not None
            ),
        )
    changes = conn.total_changes
    cursor.executemany(
        "INSERT OR IGNORE INTO relations (graph_id, name) VALUES (?, ?)",
        ((graph_id, relation) for relation in columns.relation_ids.tolist()),
    )
    new_relations = conn.total_changes - changes
    entity_rows = _rowids(conn, "SELECT id, entity_id FROM entities WHERE graph_id = ?", graph_id, ids)
    relation_rows = _rowids(
        conn, "SELECT id, name FROM relations WHERE graph_id = ?", graph_id, columns.relation_ids
    )
    heads, rels, tails = entity_rows[columns.heads], relation_rows[columns.rels], entity_rows[columns.tails]
    order = np.lexsort((tails, rels, heads))
    new_triples = insert_triples(cursor, graph_id, heads[order], rels[order], tails[order])
    conn.execute(
        "UPDATE graphs SET entities = entities + ?, relations = relations + ?, triples = triples + ?, "
        "updated_at = ? WHERE id = ?",
        (new_entities, new_relations, new_triples, time.time(), graph_id),
    )
    return new_entities, new_relations, new_triples


def insert_triples(
    cursor: sqlite3.Cursor, graph_id: int, heads: np.ndarray, rels: np.ndarray, tails: np.ndarray
) -> int:
    """Insert the triples of these entity and relation rowids in their order (a stored triple is left as it
    is); how many were new. Each triple travels as one integer, ``(head * relations + relation) * entities +
    tail``, in a JSON array that SQLite unpacks: no Python tuple per triple, where the rowids' spans fit in
    63 bits (else one tuple each)."""
    if not heads.size:
        return 0
    entities = int(max(heads.max(), tails.max())) + 1
    relations = int(rels.max()) + 1
    new = 0
    if entities * entities * relations > _PACKED_LIMIT:
        for start in range(0, heads.size, _INSERT_ROWS):
            part = slice(start, start + _INSERT_ROWS)
            rows = zip(
                [graph_id] * heads[part].size,
                heads[part].tolist(),
                rels[part].tolist(),
                tails[part].tolist(),
                strict=True,
            )
            cursor.executemany(INSERT_TRIPLE, rows)
            new += max(cursor.rowcount, 0)
        return new
    packed = (heads.astype(np.int64) * relations + rels) * entities + tails
    for start in range(0, packed.size, _INSERT_ROWS):
        text = f"[{','.join(map(str, packed[start : start + _INSERT_ROWS].tolist()))}]"
        cursor.execute(_INSERT_PACKED_TRIPLES, (graph_id, relations * entities, entities, relations, text))
        new += max(cursor.rowcount, 0)
    return new


def _rowids(conn: sqlite3.Connection, query: str, graph_id: int, wanted: np.ndarray) -> np.ndarray:
    """``(len(wanted),)`` the rowid of each wanted id."""
    rows = conn.execute(query, (graph_id,)).fetchall()
    rowids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    positions = pd.Index([row[1] for row in rows]).get_indexer(wanted)
    assert (positions >= 0).all(), "every id was inserted in this transaction"
    return rowids[positions]


def select_columns(
    conn: sqlite3.Connection, stamp: tuple, edges: StoredEdges | None = None
) -> tuple[StoredColumns, StoredEdges]:
    """The graph of ``stamp`` (its id first) as columns, inside the caller's transaction, and its edges as
    positions; ``edges`` (read from the graph's edge file) stand for the triples, which are then not read."""
    graph_id = stamp[0]
    entities = edges.entities if edges is not None else None
    if entities is None:
        entities = _select_entities(conn, graph_id)
    entity_rowids = entities.rowids
    alias_rows = conn.execute(
        "SELECT a.entity, a.alias FROM aliases AS a JOIN entities AS e ON e.id = a.entity "
        "WHERE e.graph_id = ? ORDER BY a.id",
        (graph_id,),
    ).fetchall()
    positions = np.searchsorted(entity_rowids, [entity for entity, _ in alias_rows]).tolist()
    aliases: dict[int, list[str]] = {}
    for position, (_, alias) in zip(positions, alias_rows, strict=True):
        aliases.setdefault(position, []).append(alias)
    relation_rows = conn.execute(
        "SELECT id, name FROM relations WHERE graph_id = ? ORDER BY id", (graph_id,)
    ).fetchall()
    if edges is None:
        relation_rowids = np.array([row[0] for row in relation_rows], dtype=np.int64)
        edges = _select_edges(conn, graph_id, entity_rowids, relation_rowids)
    if edges.entities is None:
        edges = dataclasses.replace(edges, entities=entities)  # kept with the edges from now on
    columns = StoredColumns(
        stamp,
        entities.ids,
        entities.names,
        entities.types,
        {i: tuple(a) for i, a in aliases.items()},
        [relation_rows[i][1] for i in edges.relations.tolist()],
        edges.heads,
        edges.rels,
        edges.tails,
    )
    return columns, edges


def _select_entities(conn: sqlite3.Connection, graph_id: int) -> StoredEntities:
    rows = conn.execute(
        "SELECT id, entity_id, name, type FROM entities WHERE graph_id = ? ORDER BY id", (graph_id,)
    ).fetchall()
    return StoredEntities(
        np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)),
        [row[1] for row in rows],
        [row[1] if row[2] == row[1] else row[2] for row in rows],  # a name that is the id: one string
        [row[3] for row in rows],
    )


# A graph's triples with their rowids, read from the covering unique index; readers put them in insertion
# (rowid) order themselves, as SQLite would sort them in a temporary B-tree on disk.
SELECT_TRIPLES = "SELECT id, head, relation, tail FROM triples WHERE graph_id = ?"


def _select_edges(
    conn: sqlite3.Connection, graph_id: int, entity_rowids: np.ndarray, relation_rowids: np.ndarray
) -> StoredEdges:
    cursor = conn.execute(SELECT_TRIPLES, (graph_id,))
    blocks = []
    while rows := cursor.fetchmany(_FETCH_ROWS):
        blocks.append(np.array(rows, dtype=np.int64).reshape(-1, 4))
    edges = np.concatenate(blocks) if blocks else np.empty((0, 4), dtype=np.int64)
    rowids = edges[:, 0]
    if not (rowids[1:] > rowids[:-1]).all():  # a bulk load inserts in index order: nothing to sort
        edges = edges[np.argsort(rowids, kind="stable")]
    edges = edges[:, 1:]
    heads = np.searchsorted(entity_rowids, edges[:, 0])
    tails = np.searchsorted(entity_rowids, edges[:, 2])
    stored_rels = np.searchsorted(relation_rowids, edges[:, 1])
    used, first = np.unique(stored_rels, return_index=True)
    numbering = used[np.argsort(first)]  # relations by first use; the relation records add the others
    renumber = np.full(relation_rowids.size, -1, dtype=np.int64)
    renumber[numbering] = np.arange(numbering.size)
    return StoredEdges(heads, renumber[stored_rels], tails, numbering)
