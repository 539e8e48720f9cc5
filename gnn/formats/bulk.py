"""Graph files as columns: the additions of a whole file as entity and relation id arrays and edge index
arrays, for bulk loads that must not make a Python object per edge.

``head<TAB>relation<TAB>tail`` files (``.tsv``, ``.txt``, optionally ``.gz``) are parsed by pandas' C reader
in chunks and their ids factorised; every other format, and a TSV file the fast reader cannot take whole
(a line with too many fields, bytes that are not UTF-8), goes through :func:`iter_records`, so the rules
and the ``file:line`` of the first error are the same either way.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from graphfuse.gnn.data.distinct import first_appearances
from graphfuse.gnn.data.records import (
    MAX_ID_CHARS,
    EntityRecord,
    Record,
    RelationRecord,
    Retraction,
    TripleRecord,
)
from graphfuse.gnn.formats.loaders import (
    _HEADER,
    InteractionLayout,
    LoadError,
    _triple,
    detect_format,
    iter_lines,
    iter_records,
)

__all__ = ["GraphColumns", "columns_from_records", "read_columns"]

_CHUNK_ROWS = 2_000_000


@dataclass
class GraphColumns:
    """A graph's additions as columns.

    Entity ``i`` is ``entity_ids[i]``; ``names[i]`` is its name or None (not given: the store derives one),
    ``types[i]`` its kind or None. Edge ``j`` is ``(heads[j], rels[j], tails[j])`` into ``entity_ids`` and
    ``relation_ids``, each edge once. ``records`` are what columns do not hold (relation records, entity
    records with aliases), applied after the columns in the same write.
    """

    entity_ids: np.ndarray  # (N,) object
    names: np.ndarray  # (N,) object, None where not given
    types: np.ndarray  # (N,) object, None where not given
    relation_ids: np.ndarray  # (R,) object
    heads: np.ndarray  # (E,) int64
    rels: np.ndarray  # (E,) int64
    tails: np.ndarray  # (E,) int64
    records: list[Record] = field(default_factory=list)

    @property
    def num_edges(self) -> int:
        return int(self.heads.size)


def read_columns(
    path: str | Path, format: str | None = None, interactions: InteractionLayout | None = None
) -> GraphColumns:
    """Every addition in a graph file as :class:`GraphColumns` (see :func:`iter_records` for the formats).

    Raises:
        LoadError: the first malformed line (``file:line: reason``), or a retraction: a bulk load only adds.
    """
    path = Path(path)
    if format is None and path.is_file():
        format = detect_format(path)
    if format == "tsv":
        columns = _read_tsv(path)
        if columns is not None:
            return columns
    return columns_from_records(iter_records(path, format, interactions), path)


def columns_from_records(records: Iterable[Record], source: str | Path = "records") -> GraphColumns:
    """Records (additions only) as columns; entities keep the last name and kind given, and are numbered in
    order of first mention."""
    entity_index: dict[str, int] = {}
    names: dict[int, str] = {}
    types: dict[int, str] = {}
    relation_index: dict[str, int] = {}
    edges: list[tuple[int, int, int]] = []
    rest: list[Record] = []

    def entity(id: str) -> int:
        return entity_index.setdefault(id, len(entity_index))

    for number, record in enumerate(records, start=1):
        if isinstance(record, TripleRecord):
            head, tail = entity(record.head), entity(record.tail)
            edges.append((head, relation_index.setdefault(record.relation, len(relation_index)), tail))
        elif isinstance(record, EntityRecord):
            i = entity(record.id)
            if record.name is not None:
                names[i] = record.name
            if record.type is not None:
                types[i] = record.type
            if record.aliases:
                rest.append(EntityRecord(record.id, aliases=record.aliases))
        elif isinstance(record, RelationRecord):
            relation_index.setdefault(record.id, len(relation_index))
            rest.append(record)
        elif isinstance(record, Retraction):
            raise LoadError(source, "a bulk load only adds; send retractions through a running server",
                            element=f"record {number}")  # fmt: skip
    n = len(entity_index)
    edge_array = np.array(edges, dtype=np.int64).reshape(-1, 3)
    heads, rels, tails = _distinct(
        edge_array[:, 0], edge_array[:, 1], edge_array[:, 2], n, len(relation_index)
    )
    return GraphColumns(
        _objects(entity_index),
        _by_index(names, n),
        _by_index(types, n),
        _objects(relation_index),
        heads,
        rels,
        tails,
        rest,
    )


def _read_tsv(path: Path) -> GraphColumns | None:
    """The fast reader; None when the file needs the line-by-line one."""
    chunks: list[tuple[np.ndarray, pd.Index, np.ndarray, pd.Index, int]] = []
    first_content = True
    try:
        reader = pd.read_csv(
            path,
            sep="\t",
            header=None,
            dtype=str,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            engine="c",
            skip_blank_lines=False,  # one row per line, so row i is line i + 1
            lineterminator="\n",
            encoding="utf-8-sig",
            chunksize=_CHUNK_ROWS,
        )
        offset = 0
        with reader:
            for frame in reader:
                if frame.shape[1] != 3:
                    return None
                h, r, t = (frame[c].str.strip() for c in frame.columns)
                keep = np.ones(len(frame), dtype=bool)
                skipped = (h == "") & (r == "") & (t == "")  # a blank line, or a line of empty fields
                comment = h.str.startswith("#").to_numpy()
                if skipped.any():
                    lines = _lines(path, offset + 1 + np.flatnonzero(skipped.to_numpy()))
                    for number, text in lines.items():
                        if text.strip():  # not blank: "\t\t" has three empty fields
                            _triple(path, number, text.rstrip("\r\n").split("\t"), "tab-separated")
                    keep &= ~skipped.to_numpy()
                keep &= ~comment
                if first_content and keep.any():
                    first = int(np.argmax(keep))
                    if tuple(x.lower() for x in (h.iat[first], r.iat[first], t.iat[first])) == _HEADER:
                        keep[first] = False
                    first_content = False
                bad = np.zeros(len(frame), dtype=bool)
                for column in (h, r, t):
                    bad |= ((column == "") | (column.str.len() > MAX_ID_CHARS)).to_numpy()
                    bad |= column.str.contains("\x00", regex=False).to_numpy()
                bad &= keep
                if bad.any():
                    number = offset + 1 + int(np.argmax(bad))
                    text = _lines(path, np.array([number]))[number]
                    _triple(path, number, text.rstrip("\r\n").split("\t"), "tab-separated")
                    return None  # not rejected by the line rule: let the line reader decide
                h, r, t = h[keep], r[keep], t[keep]
                entity_codes, entities = pd.concat([h, t], ignore_index=True).factorize()
                relation_codes, relations = r.factorize()
                chunks.append((entity_codes, entities, relation_codes, relations, len(h)))
                offset += len(frame)
    except pd.errors.EmptyDataError:
        chunks = []
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError):
        return None
    return _joined(chunks)


def _joined(chunks: list) -> GraphColumns:
    """One set of ids over every chunk, and each chunk's codes moved onto it."""
    if not chunks:
        empty = np.empty(0, dtype=np.int64)
        none = np.empty(0, dtype=object)
        return GraphColumns(none, none, none, none, empty, empty, empty)
    entity_codes, entities = chunks[0][1].append([c[1] for c in chunks[1:]]).factorize()
    relation_codes, relations = chunks[0][3].append([c[3] for c in chunks[1:]]).factorize()
    heads, rels, tails = [], [], []
    entity_start = relation_start = 0
    for local_entities, chunk_entities, local_relations, chunk_relations, size in chunks:
        entity_map = entity_codes[entity_start : entity_start + chunk_entities.size]
        relation_map = relation_codes[relation_start : relation_start + chunk_relations.size]
        entity_start += chunk_entities.size
        relation_start += chunk_relations.size
        both = entity_map[local_entities]
        heads.append(both[:size])
        tails.append(both[size:])
        rels.append(relation_map[local_relations])
    n, r = len(entities), len(relations)
    heads_, rels_, tails_ = (np.concatenate(c).astype(np.int64) for c in (heads, rels, tails))
    heads_, rels_, tails_ = _distinct(heads_, rels_, tails_, n, r)
    none = np.full(n, None, dtype=object)
    return GraphColumns(np.asarray(entities, dtype=object), none, none.copy(),
                        np.asarray(relations, dtype=object), heads_, rels_, tails_)  # fmt: skip


def _distinct(
    heads: np.ndarray, rels: np.ndarray, tails: np.ndarray, n: int, r: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each edge once, in the order of first appearance."""
    keep = first_appearances(heads, rels, tails, n, r)
    columns = (heads, rels, tails) if keep is None else (heads[keep], rels[keep], tails[keep])
    return tuple(column.astype(np.int64) for column in columns)  # type: ignore[return-value]


def _lines(path: Path, numbers: np.ndarray) -> dict[int, str]:
    """The text of the given 1-based lines, in one pass up to the last of them."""
    wanted = set(int(n) for n in numbers)
    last = max(wanted)
    return {n: text for n, text in itertools.islice(iter_lines(path), last) if n in wanted}


def _objects(index: dict[str, int]) -> np.ndarray:
    out = np.empty(len(index), dtype=object)
    out[:] = list(index)
    return out


def _by_index(values: dict[int, str], n: int) -> np.ndarray:
    out = np.full(n, None, dtype=object)
    for i, value in values.items():
        out[i] = value
    return out
