"""A stored graph's edge columns kept as a NumPy file beside the database, so that a restart reads its triples
in one pass instead of decoding millions of SQLite rows.

Each file carries the stamp of the graph's row in the database (id, counts, creation and last-change times).
Every write of a triple changes that row, so a file whose stamp differs is stale: it is ignored, and the
graph is read from the database and the file written again. The database stays the only record; deleting
the folder costs one slower start.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FOLDER = "edge-columns"


@dataclass(frozen=True)
class StoredEdges:
    """Edge ``j`` is ``(heads[j], rels[j], tails[j])`` in entity and relation positions; relation position
    ``r`` is row ``relations[r]`` of the graph's relations in insertion order."""

    heads: np.ndarray  # (E,) int32 when entity positions fit
    rels: np.ndarray  # (E,)
    tails: np.ndarray  # (E,)
    relations: np.ndarray  # (R_used,)


def _path(data_dir: Path, graph_id: int) -> Path:
    return data_dir / FOLDER / f"{graph_id}.npz"


def load(data_dir: Path, stamp: tuple) -> StoredEdges | None:
    """The edges stored for ``stamp`` (``stamp[0]`` is the graph's id), or None when there are none for it."""
    path = _path(data_dir, stamp[0])
    try:
        with np.load(path) as stored:
            if stored["stamp"].tolist() != [float(value) for value in stamp]:
                return None
            return StoredEdges(stored["heads"], stored["rels"], stored["tails"], stored["relations"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as error:
        log.warning("ignoring unreadable edge file %s: %s", path, error)
        return None


def save(data_dir: Path, stamp: tuple, edges: StoredEdges) -> None:
    """Write ``edges`` for ``stamp``, replacing any earlier file of the graph at once (a failed write is
    logged: the next start reads the database again)."""
    path = _path(data_dir, stamp[0])
    partial = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        path.parent.mkdir(exist_ok=True)
        with open(partial, "wb") as out:
            np.savez(
                out,
                stamp=np.array(stamp, dtype=np.float64),
                heads=_narrow(edges.heads),
                rels=_narrow(edges.rels),
                tails=_narrow(edges.tails),
                relations=edges.relations,
            )
        os.replace(partial, path)
    except OSError as error:
        log.warning("could not write the edge file %s: %s", path, error)
        partial.unlink(missing_ok=True)


def remove(data_dir: Path, graph_id: int) -> None:
    """Forget a deleted graph's file."""
    _path(data_dir, graph_id).unlink(missing_ok=True)


def _narrow(positions: np.ndarray) -> np.ndarray:
    return positions.astype(np.int32) if positions.size and positions.max() < 2**31 else positions
