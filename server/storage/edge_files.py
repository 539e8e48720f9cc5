"""A stored graph's edge columns, and the layouts built from them, kept as NumPy files beside the database, so
that a restart reads its triples in one pass instead of decoding millions of SQLite rows, and its sorted
layouts instead of sorting the edges again.

Each set of arrays is a folder of ``.npy`` files (read at disk speed, unlike a zip archive's members) with
the stamp of the graph's row in the database (id, counts, creation and last-change times). Every write of a
triple changes that row, so a set whose stamp differs is stale: it is ignored, and the graph is read from the
database (or its layouts built) and the set written again. The database stays the only record; deleting the
folder costs one slower start.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FOLDER = "edge-columns"
EDGES = "edges"
LAYOUTS = "layouts"  # what a graph builds from its edges (KnowledgeGraph.built_layouts)
_STAMP = "stamp"


@dataclass(frozen=True)
class StoredEntities:
    """Entity position ``i`` is row ``rowids[i]`` of the entities table: ``ids[i]``, ``names[i]``,
    ``types[i]``."""

    rowids: np.ndarray  # (N,) int64, ascending
    ids: list[str]
    names: list[str]
    types: list[str]


@dataclass(frozen=True)
class StoredEdges:
    """Edge ``j`` is ``(heads[j], rels[j], tails[j])`` in entity and relation positions; relation position
    ``r`` is row ``relations[r]`` of the graph's relations in insertion order. ``entities`` (when kept) are
    the entities' rows, read with the edges instead of from the database."""

    heads: np.ndarray  # (E,) int32 when entity positions fit
    rels: np.ndarray  # (E,)
    tails: np.ndarray  # (E,)
    relations: np.ndarray  # (R_used,)
    entities: StoredEntities | None = None


def load(data_dir: Path, stamp: tuple) -> StoredEdges | None:
    """The edges stored for ``stamp`` (``stamp[0]`` is the graph's id), or None when there are none for it."""
    arrays = load_arrays(data_dir, stamp, EDGES)
    if arrays is None:
        return None
    try:
        edges = StoredEdges(arrays["heads"], arrays["rels"], arrays["tails"], arrays["relations"])
    except KeyError as error:
        log.warning("ignoring the stored edges of graph %d, which lack %s", stamp[0], error)
        return None
    rowids = arrays.get("entity_rowids")
    if rowids is None:
        return edges
    ids, names, types = (
        _lines(arrays.get(f"entity_{name}"), rowids.size) for name in ("ids", "names", "types")
    )
    if ids is None or names is None or types is None:
        return edges  # the entities are read from the database
    names = [i if n == i else n for i, n in zip(ids, names, strict=True)]  # a name that is the id: one string
    return dataclasses.replace(edges, entities=StoredEntities(rowids, ids, names, types))


def save(data_dir: Path, stamp: tuple, edges: StoredEdges) -> None:
    """Write ``edges`` for ``stamp``, replacing any earlier ones of the graph."""
    (data_dir / FOLDER / f"{stamp[0]}.npz").unlink(missing_ok=True)  # an earlier version kept one archive
    columns = {"heads": edges.heads, "rels": edges.rels, "tails": edges.tails}
    arrays = {**{k: _narrow(v) for k, v in columns.items()}, "relations": edges.relations}
    entities = edges.entities
    if entities is not None:
        texts = {"entity_ids": entities.ids, "entity_names": entities.names, "entity_types": entities.types}
        blobs = {name: _blob(lines) for name, lines in texts.items()}
        if all(blob is not None for blob in blobs.values()):
            arrays.update(blobs, entity_rowids=entities.rowids)  # type: ignore[arg-type]
    save_arrays(data_dir, stamp, EDGES, arrays)


def load_arrays(data_dir: Path, stamp: tuple, kind: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``kind`` kept for ``stamp``, or None when there are none for it (missing, stale or
    unreadable)."""
    folder = _folder(data_dir, stamp[0], kind)
    try:
        if np.load(folder / f"{_STAMP}.npy").tolist() != [float(value) for value in stamp]:
            return None
        return {path.stem: np.load(path) for path in folder.glob("*.npy") if path.stem != _STAMP}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as error:
        log.warning("ignoring the unreadable arrays in %s: %s", folder, error)
        return None


def save_arrays(data_dir: Path, stamp: tuple, kind: str, arrays: dict[str, np.ndarray]) -> None:
    """Keep ``arrays`` of ``kind`` for ``stamp``, replacing the graph's earlier ones (a failed write is
    logged: the next start reads the database, or builds the layouts, again)."""
    folder = _folder(data_dir, stamp[0], kind)
    for left in folder.parent.glob(f"{folder.name}.*.partial"):  # by a process that stopped mid-write
        _remove(left)
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        partial.mkdir(parents=True)
        for name, array in arrays.items():
            np.save(partial / f"{name}.npy", array)
        np.save(partial / f"{_STAMP}.npy", np.array(stamp, dtype=np.float64))  # last: marks the set whole
        _remove(folder)
        os.replace(partial, folder)
    except OSError as error:
        log.warning("could not keep %s: %s", folder, error)
        _remove(partial)


def remove(data_dir: Path, graph_id: int) -> None:
    """Forget a deleted graph's arrays."""
    for kind in (EDGES, LAYOUTS):
        _remove(_folder(data_dir, graph_id, kind))


def _folder(data_dir: Path, graph_id: int, kind: str) -> Path:
    return data_dir / FOLDER / f"{graph_id}.{kind}"


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _blob(lines: list[str]) -> np.ndarray | None:
    """``lines`` as the bytes of one UTF-8 text, a line each (read back in one split, not a row each); None
    when a line holds a line break (validation refuses them; the rows are then read from the database)."""
    text = "\n".join(lines)
    if text.count("\n") != max(len(lines) - 1, 0):
        return None
    return np.frombuffer(text.encode(), dtype=np.uint8)


def _lines(blob: np.ndarray | None, count: int) -> list[str] | None:
    """The ``count`` lines :func:`_blob` kept, or None when they are not there or not ``count``."""
    if blob is None or blob.dtype != np.uint8:
        return None
    try:
        lines = blob.tobytes().decode().split("\n") if count else []
    except UnicodeDecodeError:
        return None
    return lines if len(lines) == count else None


def _narrow(positions: np.ndarray) -> np.ndarray:
    return positions.astype(np.int32) if positions.size and positions.max() < 2**31 else positions
