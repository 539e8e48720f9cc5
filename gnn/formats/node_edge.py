"""A graph as a node table and an edge table: Hetionet's ``nodes.tsv`` with ``edges.sif.gz``, the CSVs of
``neo4j-admin import`` (``:ID``, ``:LABEL``, ``:START_ID``, ``:END_ID``, ``:TYPE``), and the ``id,name,type``
/ ``source,target,relation`` tables a PyG or pandas export writes.

Node ids are joined: each node becomes an :class:`EntityRecord` with its name and kind, each edge a
:class:`TripleRecord` between node ids. Memory holds one id-to-kind entry per node and one entry per
(relation, head kind, tail kind); the edge table is read twice and never held.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from graphfuse.gnn.data.records import EntityRecord, Record, RelationRecord, TripleRecord
from graphfuse.gnn.formats.loaders import LoadError, _checked, _content_lines, _csv_rows, iter_relations

__all__ = ["iter_node_edge_records"]

_LAYOUTS = {".tsv": "tsv", ".sif": "tsv", ".txt": "tsv", ".csv": "csv"}
_EXTENSIONS = tuple(_LAYOUTS) + tuple(f"{suffix}.gz" for suffix in _LAYOUTS)

# Header names, lower case after a Neo4j id space ("(Person)") is dropped. Where a table has several, the
# first listed wins; Neo4j's columns come first, since its exports also carry properties named like the
# plain columns (Hetionet's Neo4j edges have a 'source' property).
_NEO4J_ID = re.compile(r"[^:]*:id")  # ":ID", "name:ID"
_ID_COLUMNS = ("id", "node_id")
_NAME_COLUMNS = ("name", "label", "title")
_KIND_COLUMNS = (":label", "kind", "type", "labels", "node_type")
_MULTI_LABEL_COLUMNS = frozenset({":label", "labels"})  # Neo4j's 'Person;Actor': the first label is the kind
_SOURCE_COLUMNS = (":start_id", "source", "src", "head", "from")
_TARGET_COLUMNS = (":end_id", "target", "dst", "tail", "to")
_RELATION_COLUMNS = (":type", "metaedge", "relation", "type", "label", "edge_type")
_ID_SPACE = re.compile(r"\([^()]*\)$")


def iter_node_edge_records(
    nodes: str | Path, edges: str | Path, relations: str | Path | None = None
) -> Iterator[Record]:
    r"""Streams the records of a graph given as a node table and an edge table.

    Yields, in order: the :class:`RelationRecord`\ s of ``relations`` (:func:`iter_relations`), one
    :class:`EntityRecord` ``(id, name, (), kind)`` per node, a :class:`RelationRecord` per relation split
    by kinds (below), then one :class:`TripleRecord` ``(source, relation, target)`` per edge, in file order.

    Tables are tab-separated (``.tsv``, ``.sif``, ``.txt``) or comma-separated with ``csv`` quoting
    (``.csv``); a further ``.gz`` is read through gzip. Blank lines and ``#`` comments are skipped. The first
    line is a header naming the columns, in any order and case; other columns are ignored, and every row has
    the header's number of fields.

    - Node table: the id column ``id``, ``node_id``, ``:ID`` or ``name:ID``; the optional name column
      ``name``, ``label`` or ``title``; the optional kind column ``:LABEL`` (the first of ``;``-separated
      labels), ``kind``, ``type``, ``labels`` or ``node_type``. Names and kinds are stripped and their
      whitespace runs collapsed to one space; an empty one is not given.
    - Edge table: the source column ``:START_ID``, ``source``, ``src``, ``head`` or ``from``; the target
      column ``:END_ID``, ``target``, ``dst``, ``tail`` or ``to``; the relation column ``:TYPE``,
      ``metaedge`` (Hetionet's ``source metaedge target``), ``relation``, ``type``, ``label`` or
      ``edge_type``. Every source and target must be a node id of the node table.
    - Neo4j's id spaces (``:ID(Person)``) are dropped from the header names; the ids are joined as they are.
      Where a table has several candidate columns, Neo4j's win, then the first listed.

    A relation used between more than one (source kind, target kind) pair, such as a verb ``upregulates``
    from Compounds and from Diseases to Genes, becomes one relation per pair, ``"{SourceKind} {verb}
    {TargetKind}"`` (``Compound upregulates Gene``; a node without a kind leaves its part out), each with a
    :class:`RelationRecord` (name the verb, aliases the id). A relation used between one pair, or given a
    record by ``relations`` (Hetionet's ``CtD``), keeps its id.

    The files and their extensions are checked when this is called; they are read as the iterator is
    consumed. A malformed line, a duplicate node id or an edge naming an unknown node raises
    :class:`LoadError` (``edges.sif.gz:7: ...``); the edge table is checked whole before its first triple.

    Args:
        nodes (str or Path): The node table.
        edges (str or Path): The edge table.
        relations (str or Path, optional): A relation table giving relations their words, read by
            :func:`iter_relations`. (default: :obj:`None`)
    """
    nodes, edges = Path(nodes), Path(edges)
    for path, what in ((nodes, "a node table"), (edges, "an edge table")):
        if not path.is_file():
            found = "a folder" if path.is_dir() else "nothing"
            raise FileNotFoundError(f"Expected {what} at '{path}' (found {found})")
        _layout(path, what)
    table: Iterable[RelationRecord] = () if relations is None else iter_relations(relations)
    return _records(nodes, edges, table)


def _layout(path: Path, what: str) -> str:
    name = path.name.lower()
    suffix = Path(name.removesuffix(".gz")).suffix
    if suffix not in _LAYOUTS:
        raise ValueError(f"Expected {what} ending in one of {', '.join(_EXTENSIONS)} (got '{path.name}')")
    return _LAYOUTS[suffix]


def _records(nodes: Path, edges: Path, table: Iterable[RelationRecord]) -> Iterator[Record]:
    given: set[str] = set()
    for record in table:
        given.add(record.id)
        yield record
    kinds: dict[str, str] = {}  # node id -> kind ("" for none)
    yield from _iter_nodes(nodes, kinds)
    pairs: dict[str, dict[tuple[str, str], None]] = {}  # relation -> its (source kind, target kind), in order
    for number, head, relation, tail, head_kind, tail_kind in _iter_edges(edges, nodes, kinds):
        if relation not in pairs:  # the ids are checked entity ids: one check per relation suffices
            _checked(edges, TripleRecord(head, relation, tail), line=number)
            pairs[relation] = {}
        pairs[relation][head_kind, tail_kind] = None
    split: dict[tuple[str, str, str], str] = {}  # (relation, source kind, target kind) -> relation id
    for relation, kind_pairs in pairs.items():
        if len(kind_pairs) > 1 and relation not in given:
            for head_kind, tail_kind in kind_pairs:
                identifier = " ".join(part for part in (head_kind, relation, tail_kind) if part)
                yield _checked(edges, RelationRecord(identifier, relation, aliases=(identifier,)))
                split[relation, head_kind, tail_kind] = identifier
    for _, head, relation, tail, head_kind, tail_kind in _iter_edges(edges, nodes, kinds):
        if split:
            relation = split.get((relation, head_kind, tail_kind), relation)
        yield TripleRecord(head, relation, tail)


def _iter_nodes(path: Path, kinds: dict[str, str]) -> Iterator[EntityRecord]:
    """The node table's entities; fills ``kinds`` with each id's kind (one string object per kind)."""
    rows = _rows(path)
    number, cells, columns = _header(path, rows, "node")
    at_id = next((i for i, column in enumerate(columns) if _NEO4J_ID.fullmatch(column)), None)
    if at_id is None:
        at_id = _column(columns, _ID_COLUMNS)
    if at_id is None:
        reason = (
            f"expected a node table header naming an id column (id, node_id, :ID or name:ID), got {cells!r}"
        )
        raise LoadError(path, reason, line=number)
    at_name = _column(columns, _NAME_COLUMNS)
    at_kind = _column(columns, _KIND_COLUMNS)
    multi_label = at_kind is not None and columns[at_kind] in _MULTI_LABEL_COLUMNS
    interned: dict[str, str] = {"": ""}
    for number, row in rows:
        _check_width(path, number, row, cells)
        identifier = row[at_id].strip()
        if not identifier:
            raise LoadError(path, f"empty node id (column {cells[at_id]!r})", line=number)
        if identifier in kinds:
            raise LoadError(path, f"node id {identifier!r} appears a second time", line=number)
        name = _words(row[at_name]) if at_name is not None else None
        kind = None
        if at_kind is not None:
            text = row[at_kind]
            if multi_label:
                text = next((label for label in text.split(";") if label.strip()), "")
            kind = _words(text)
        record = EntityRecord(identifier, name, (), kind)
        _checked(path, record, line=number)
        kinds[identifier] = interned.setdefault(kind or "", kind or "")
        yield record


def _iter_edges(
    path: Path, nodes: Path, kinds: dict[str, str]
) -> Iterator[tuple[int, str, str, str, str, str]]:
    """``(line, source, relation, target, source kind, target kind)`` per edge, ids joined to ``kinds``."""
    rows = _rows(path)
    number, cells, columns = _header(path, rows, "edge")
    at_head = _column(columns, _SOURCE_COLUMNS)
    at_relation = _column(columns, _RELATION_COLUMNS)
    at_tail = _column(columns, _TARGET_COLUMNS)
    if at_head is None or at_relation is None or at_tail is None:
        reason = (
            "expected an edge table header naming a source column (source, src, head, from, :START_ID), "
            "a relation column (metaedge, relation, type, label, :TYPE, edge_type) and a target column "
            f"(target, dst, tail, to, :END_ID), got {cells!r}"
        )
        raise LoadError(path, reason, line=number)
    for number, row in rows:
        _check_width(path, number, row, cells)
        head, relation, tail = row[at_head].strip(), row[at_relation].strip(), row[at_tail].strip()
        for value, what, at in (
            (head, "source", at_head),
            (relation, "relation", at_relation),
            (tail, "target", at_tail),
        ):
            if not value:
                raise LoadError(path, f"empty {what} (column {cells[at]!r})", line=number)
        head_kind, tail_kind = kinds.get(head), kinds.get(tail)
        if head_kind is None or tail_kind is None:
            what, missing = ("source", head) if head_kind is None else ("target", tail)
            raise LoadError(path, f"{what} {missing!r} is not a node id of {nodes.name}", line=number)
        yield number, head, relation, tail, head_kind, tail_kind


def _header(path: Path, rows: Iterator[tuple[int, list[str]]], what: str) -> tuple[int, list[str], list[str]]:
    """The header line's number, its cells and their column names (lower case, no Neo4j id space)."""
    first = next(rows, None)
    if first is None:
        raise LoadError(path, f"expected a header line naming the {what} table's columns, got no lines")
    number, cells = first
    columns = [_ID_SPACE.sub("", cell.strip().lower()) for cell in cells]
    return number, cells, columns


def _column(columns: list[str], names: tuple[str, ...]) -> int | None:
    """The position of the first of ``names`` among ``columns``."""
    return next((columns.index(name) for name in names if name in columns), None)


def _check_width(path: Path, number: int, row: list[str], cells: list[str]) -> None:
    if len(row) != len(cells):
        reason = f"expected {len(cells)} fields like the header ({', '.join(cells)}), got {len(row)}"
        raise LoadError(path, reason, line=number)


def _words(text: str) -> str | None:
    """Stripped, whitespace runs made one space; None when empty."""
    return " ".join(text.split()) or None


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The rows of a table with their first line: ``csv`` rows for ``.csv`` (``.csv.gz``), else tab-separated
    lines; blank lines and ``#`` comments skipped."""
    if _layout(path, "a table") == "tsv":
        for number, text in _content_lines(path):
            yield number, text.split("\t")
        return
    yield from _csv_rows(path)
