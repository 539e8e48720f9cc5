"""Graph files in, records out: TSV, CSV, JSON Lines, MetaQA's ``kb.txt``, interaction adjacency lists, the
networkx graph formats, and relation tables (the words of relations, as :class:`RelationRecord`).

Line formats are streamed (memory proportional to one record); graph formats (GraphML, GML, GEXF) are
parsed whole by networkx and then streamed node by node and edge by edge. Every record is checked with
:func:`graphfuse.gnn.data.records.validate_record`; the first bad line or element raises :class:`LoadError`.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import xml.etree.ElementTree as ElementTree
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from graphfuse.gnn.data.records import EntityRecord, Record, RelationRecord, TripleRecord, validate_record
from graphfuse.gnn.errors import InvalidGraphInput

__all__ = [
    "FORMATS",
    "METAQA_RELATIONS",
    "InteractionLayout",
    "LoadError",
    "detect_format",
    "iter_lines",
    "iter_records",
    "iter_relations",
    "load_records",
    "load_relations",
]

FORMATS = ("tsv", "csv", "jsonl", "metaqa", "adjacency", "graphml", "gml", "gexf", "edgelist", "relations")

_EXTENSIONS = {
    ".tsv": "tsv",
    ".txt": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".graphml": "graphml",
    ".gml": "gml",
    ".gexf": "gexf",
    ".edgelist": "edgelist",
    ".edges": "edgelist",
}

# The relations of MetaQA's WikiMovies knowledge base; used to split lines whose titles contain '|'.
METAQA_RELATIONS = frozenset(
    {
        "directed_by",
        "written_by",
        "starred_actors",
        "release_year",
        "in_language",
        "has_tags",
        "has_genre",
        "has_imdb_votes",
        "has_imdb_rating",
    }
)

_HEADER = ("head", "relation", "tail")
_TRIPLE_KEYS = frozenset(_HEADER)
_ENTITY_KEYS = frozenset({"id", "name", "aliases", "type"})
_RELATION_KEYS = ("id", "name", "inverse_name", "aliases", "description")  # JSONL relation, table columns
_METAEDGE_KEYS = ("metaedge", "abbreviation")  # Hetionet's metaedges.tsv
# "Compound - treats - Disease"; "Gene > regulates > Gene" (directed)
_METAEDGE = re.compile(r"^(.+?) ([->]) (.+?) \2 (.+)$")
_DEFAULT_RELATION = "related_to"
_RELATION_ATTRIBUTES = ("relation", "label", "type")


class LoadError(InvalidGraphInput):
    r"""A file that cannot be read as records.

    The message names the file, the 1-based line (or the graph element) and what is wrong, e.g.
    ``triples.tsv:7: expected 3 tab-separated fields (head, relation, tail), got 2``.

    Args:
        path (str or Path): The file.
        reason (str): What is wrong.
        line (int, optional): The 1-based line, for line formats. (default: :obj:`None`)
        element (str, optional): The node or edge, for graph formats. (default: :obj:`None`)
    """

    def __init__(
        self,
        path: str | Path,
        reason: str,
        *,
        line: int | None = None,
        element: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.element = element
        where = str(path) if line is None else f"{path}:{line}"
        if element is not None:
            where = f"{where}: {element}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # keeps the keyword-only arguments through pickling
        return (_rebuild_load_error, (self.path, self.reason, self.line, self.element))


def _rebuild_load_error(path: Path, reason: str, line: int | None, element: str | None) -> LoadError:
    return LoadError(path, reason, line=line, element=element)


def detect_format(path: str | Path) -> str:
    r"""The format of a graph file, from its extension.

    ``.tsv``/``.txt`` -> ``"tsv"``, except a ``.txt`` whose first line that is not blank or a ``#``
    comment contains ``'|'`` and no tab, which is MetaQA's ``kb.txt`` layout -> ``"metaqa"``, or is two or
    more whitespace-separated integers, an interaction adjacency list (Gowalla's ``train.txt``) ->
    ``"adjacency"``;
    ``.csv`` -> ``"csv"``; ``.jsonl``/``.ndjson`` -> ``"jsonl"``; ``.graphml``, ``.gml``, ``.gexf``;
    ``.edgelist``/``.edges`` -> ``"edgelist"``. Extensions are matched case-insensitively.

    Args:
        path (str or Path): The file (read only for ``.txt``, and only up to its first content line).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    format = _EXTENSIONS.get(suffix)
    if format is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise ValueError(
            f"Expected a graph file with one of the extensions {known} for the formats "
            f"{', '.join(FORMATS)} (got '{path.name}'); pass 'format' to choose one explicitly"
        )
    if suffix == ".txt":
        for _, text in _content_lines(path):
            if "\t" in text:
                return "tsv"
            if "|" in text:
                return "metaqa"
            fields = text.split()
            return "adjacency" if len(fields) > 1 and all(f.isdigit() for f in fields) else "tsv"
    return format


@dataclass(frozen=True)
class InteractionLayout:
    """How the lines ``user item item ...`` of an adjacency file become records: users and items are typed
    entities ``<head_type>:<id>`` and ``<tail_type>:<id>`` (their ids may overlap), linked by ``relation``."""

    relation: str = "interacted_with"
    head_type: str = "user"
    tail_type: str = "item"


def iter_records(
    path: str | Path, format: str | None = None, interactions: InteractionLayout | None = None
) -> Iterator[Record]:
    r"""Streams the records of a graph file in file order.

    The path and format are checked when this is called; the file is read as the iterator is consumed,
    and the first malformed line or element raises :class:`LoadError`.

    Formats:
        ``tsv``: ``head<TAB>relation<TAB>tail``; ``csv``: the same with commas (``csv`` quoting);
        ``metaqa``: ``head|relation|tail``. In these, blank lines and ``#`` comments are skipped,
        fields are stripped, and a first line ``head, relation, tail`` (any case) is a header.
        ``jsonl``: ``{"head", "relation", "tail"}`` or ``{"id", "name"?, "aliases"?, "type"?}`` objects, or
        relations ``{"relation": {"id", "name"?, "inverse_name"?, "aliases"?, "description"?}}``.
        ``adjacency``: ``user item item ...`` per line (the LightGCN/NGCF data layout): each user and item
        once as a typed :class:`EntityRecord`, then one :class:`TripleRecord` per interaction, laid out
        by ``interactions``.
        ``edgelist``: networkx's ``source target`` or ``source target {attribute dict}``.
        ``graphml``, ``gml``, ``gexf``: one :class:`EntityRecord` per node (name from the ``name``
        or ``label`` attribute, aliases from a list or ``'|'``-separated ``aliases``), then one
        :class:`TripleRecord` per edge (relation from ``relation``, ``label`` or ``type``, else
        ``related_to``), parallel edges included.
        ``relations``: a relation table (:func:`iter_relations`); never detected from the extension.

    Args:
        path (str or Path): The file.
        format (str, optional): One of :obj:`FORMATS`; detected from the extension with
            :func:`detect_format` when :obj:`None`. (default: :obj:`None`)
        interactions (InteractionLayout, optional): The relation and node types of an ``adjacency``
            file. (default: :obj:`InteractionLayout()`)
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise ValueError(f"Expected 'format' to be one of {', '.join(FORMATS)} (got {format!r})")
    if not path.is_file():
        found = "a folder" if path.is_dir() else "nothing"
        raise FileNotFoundError(f"Expected a graph file at '{path}' (found {found})")
    if format is None:
        format = detect_format(path)
    if format == "adjacency":
        return _iter_adjacency(path, interactions or InteractionLayout())
    if format == "relations":
        return _iter_relations(path)
    return _READERS[format](path)


def iter_relations(path: str | Path) -> Iterator[RelationRecord]:
    r"""Streams the relation records of a relation table: the words users give relations whose ids say
    little (``P27``, ``CtD``, ``rel_12``).

    A table is tab-separated (comma-separated, with ``csv`` quoting, for a ``.csv`` file), blank lines and
    ``#`` comments skipped, and its first line a header naming its columns, in any order and case:

    - ``id`` (required), ``name`` (head to tail: ``treats``), ``inverse_name`` (tail to head: ``treated by``),
      ``aliases`` (other words for the head-to-tail reading, ``'|'``-separated) and ``description``. An
      empty cell is a word not given; a row may leave out trailing empty cells.
    - Hetionet's ``metaedges.tsv`` (columns ``metaedge`` and ``abbreviation``, others ignored): one record
      per metaedge ``Compound - treats - Disease``, ``id`` its abbreviation (``CtD``), ``name`` its verb
      (``treats``), the aliases the whole reading ``Compound treats Disease``; an undirected metaedge between
      one kind (``Gene - interacts - Gene``) reads the same both ways, so its inverse name is its verb.

    Args:
        path (str or Path): The file; a malformed line raises :class:`LoadError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        found = "a folder" if path.is_dir() else "nothing"
        raise FileNotFoundError(f"Expected a relation table at '{path}' (found {found})")
    return _iter_relations(path)


def load_relations(path: str | Path) -> list[RelationRecord]:
    r"""All relation records of a relation table: ``list(iter_relations(path))``.

    Args:
        path (str or Path): The file.
    """
    return list(iter_relations(path))


def load_records(path: str | Path, format: str | None = None) -> list[Record]:
    r"""All records of a graph file, in file order: ``list(iter_records(path, format))``.

    Args:
        path (str or Path): The file.
        format (str, optional): One of :obj:`FORMATS`, or :obj:`None` to detect it. (default: :obj:`None`)
    """
    return list(iter_records(path, format))


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    r"""The UTF-8 lines of a file with their 1-based numbers, line endings kept and a leading BOM dropped;
    a file ending in ``.gz`` is gunzipped as it is read.

    Args:
        path (str or Path): The file; a line that is not valid UTF-8, or a ``.gz`` file that is not gzip,
            raises :class:`LoadError`.
    """
    path = Path(path)
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as file:
            for number, raw in enumerate(file, start=1):
                try:
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as error:
                    reason = f"not valid UTF-8 ({error.reason} at byte {error.start})"
                    raise LoadError(path, reason, line=number) from None
                yield number, text
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise LoadError(path, f"cannot be read as gzip ({error})", line=number + 1) from None


def _content_lines(path: Path, comments: bool = True) -> Iterator[tuple[int, str]]:
    """Lines without their endings, blank lines (and ``#`` comments when ``comments``) skipped."""
    for number, text in iter_lines(path):
        text = text.rstrip("\r\n")
        stripped = text.strip()
        if stripped and not (comments and stripped.startswith("#")):
            yield number, text


def _checked(path: Path, record: Record, *, line: int | None = None, element: str | None = None) -> Record:
    reason = validate_record(record)
    if reason is not None:
        raise LoadError(path, reason, line=line, element=element)
    return record


def _is_header(fields: list[str]) -> bool:
    return tuple(field.strip().lower() for field in fields) == _HEADER


def _triple(path: Path, line: int, fields: list[str], layout: str) -> Record:
    if len(fields) != 3:
        reason = f"expected 3 {layout} fields (head, relation, tail), got {len(fields)}"
        raise LoadError(path, reason, line=line)
    head, relation, tail = (field.strip() for field in fields)
    return _checked(path, TripleRecord(head, relation, tail), line=line)


class _Triples:
    """``_triple`` for the lines of one file, each distinct id checked once: a file of millions of triples
    names far fewer entities and relations."""

    _MAX_KNOWN = 1_000_000  # ids remembered as valid; forgotten all at once past this

    def __init__(self, path: Path, layout: str) -> None:
        self.path, self.layout = path, layout
        self.valid: set[str] = set()

    def __call__(self, line: int, fields: list[str]) -> Record:
        if len(fields) == 3:
            head, relation, tail = fields[0].strip(), fields[1].strip(), fields[2].strip()
            valid = self.valid
            if head in valid and relation in valid and tail in valid:
                return TripleRecord(head, relation, tail)
        record = _triple(self.path, line, fields, self.layout)
        if len(self.valid) > self._MAX_KNOWN:
            self.valid.clear()
        self.valid.update((record.head, record.relation, record.tail))  # type: ignore[union-attr]
        return record


def _iter_tsv(path: Path) -> Iterator[Record]:
    first = True
    triple = _Triples(path, "tab-separated")
    for number, text in _content_lines(path):
        fields = text.split("\t")
        if first and _is_header(fields):
            first = False
            continue
        first = False
        yield triple(number, fields)


def _split_metaqa(text: str) -> list[str]:
    """Splits ``head|relation|tail``; with extra '|', around the one field that is a MetaQA relation."""
    fields = text.split("|")
    if len(fields) > 3:
        at = [i for i in range(1, len(fields) - 1) if fields[i].strip() in METAQA_RELATIONS]
        if len(at) == 1:
            i = at[0]
            return ["|".join(fields[:i]), fields[i], "|".join(fields[i + 1 :])]
    return fields


def _iter_metaqa(path: Path) -> Iterator[Record]:
    first = True
    triple = _Triples(path, "'|'-separated")
    for number, text in _content_lines(path):
        fields = _split_metaqa(text)
        if first and _is_header(fields):
            first = False
            continue
        first = False
        if len(fields) > 3:
            reason = (
                f"expected 3 '|'-separated fields (head, relation, tail), got {len(fields)}, and not "
                f"exactly one inner field is a MetaQA relation ({', '.join(sorted(METAQA_RELATIONS))}) "
                "to split around"
            )
            raise LoadError(path, reason, line=number)
        yield triple(number, fields)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The rows of a CSV file with their first line; blank rows and ``#`` comments skipped."""
    # csv wants the line endings (newline='' semantics) to keep newlines inside quoted fields.
    reader = csv.reader(text for _, text in iter_lines(path))
    while True:
        start = reader.line_num + 1  # a quoted field may span lines: report the row's first line
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise LoadError(path, f"invalid CSV ({error})", line=start) from None
        if row and not (len(row) == 1 and not row[0].strip()) and not row[0].lstrip().startswith("#"):
            yield start, row


def _iter_csv(path: Path) -> Iterator[Record]:
    first = True
    for start, row in _csv_rows(path):
        if first and _is_header(row):
            first = False
            continue
        first = False
        yield _triple(path, start, row, "comma-separated")


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _json_type(value: object) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _jsonl_record(path: Path, line: int, text: str) -> Record:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise LoadError(path, f"invalid JSON ({error.msg} at column {error.colno})", line=line) from None
    if not isinstance(value, dict):
        raise LoadError(path, f"expected a JSON object, got {_json_type(value)}", line=line)
    keys = set(value)
    if keys == {"relation"}:
        record: Record = _jsonl_relation(path, line, value["relation"])
    elif keys & _TRIPLE_KEYS:
        if keys != _TRIPLE_KEYS:
            missing, unexpected = sorted(_TRIPLE_KEYS - keys), sorted(keys - _TRIPLE_KEYS)
            reason = f"expected a triple with exactly the keys head, relation, tail (missing {missing}"
            raise LoadError(path, f"{reason}, unexpected {unexpected})", line=line)
        record = TripleRecord(value["head"], value["relation"], value["tail"])
    elif "id" in keys:
        if not keys <= _ENTITY_KEYS:
            unexpected = sorted(keys - _ENTITY_KEYS)
            reason = f"expected an entity with the keys id, name, aliases, type (unexpected {unexpected})"
            raise LoadError(path, reason, line=line)
        aliases = value.get("aliases")
        if aliases is None:
            aliases = []
        if not isinstance(aliases, list):
            reason = f"expected 'aliases' to be an array of strings, got {_json_type(aliases)}"
            raise LoadError(path, reason, line=line)
        record = EntityRecord(value["id"], value.get("name"), tuple(aliases), value.get("type"))
    else:
        reason = (
            "expected a triple {head, relation, tail}, an entity {id, name?, aliases?, type?} or a "
            "relation {relation: {id, name?, inverse_name?, aliases?, description?}}, got an object with "
            f"the keys {sorted(keys)}"
        )
        raise LoadError(path, reason, line=line)
    return _checked(path, record, line=line)


def _jsonl_relation(path: Path, line: int, value: object) -> RelationRecord:
    """The relation record of a JSONL line ``{"relation": {...}}``."""
    if not isinstance(value, dict):
        reason = (
            "expected 'relation' to be an object {id, name?, inverse_name?, aliases?, description?} "
            f"(or a triple's relation beside head and tail), got {_json_type(value)}"
        )
        raise LoadError(path, reason, line=line)
    keys = set(value)
    if "id" not in keys or not keys <= set(_RELATION_KEYS):
        missing, unexpected = sorted({"id"} - keys), sorted(keys - set(_RELATION_KEYS))
        reason = f"expected a relation with the keys {', '.join(_RELATION_KEYS)} (id required; missing"
        raise LoadError(path, f"{reason} {missing}, unexpected {unexpected})", line=line)
    aliases = value.get("aliases")
    if aliases is None:
        aliases = []
    if not isinstance(aliases, list):
        reason = f"expected 'aliases' of a relation to be an array of strings, got {_json_type(aliases)}"
        raise LoadError(path, reason, line=line)
    return RelationRecord(
        value["id"], value.get("name"), value.get("inverse_name"), tuple(aliases), value.get("description")
    )


def _table_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The rows of a table with their first line: ``csv`` rows for a ``.csv`` file, else tab-separated
    lines; blank lines and ``#`` comments skipped."""
    if path.suffix.lower() == ".csv":
        yield from _csv_rows(path)
        return
    for number, text in _content_lines(path):
        yield number, text.split("\t")


def _iter_relations(path: Path) -> Iterator[RelationRecord]:
    rows = _table_rows(path)
    first = next(rows, None)
    if first is None:
        return
    number, header = first
    columns = [column.strip().lower() for column in header]
    if set(_METAEDGE_KEYS) <= set(columns):
        yield from _iter_metaedges(path, rows, columns)
        return
    unknown = [column for column in columns if column not in _RELATION_KEYS]
    if "id" not in columns or unknown or len(set(columns)) != len(columns):
        reason = (
            f"expected a header naming the columns {', '.join(_RELATION_KEYS)} (id required, each once), or "
            f"Hetionet's metaedge and abbreviation; got {header!r}"
        )
        raise LoadError(path, reason, line=number)
    for number, row in rows:
        if len(row) > len(columns):
            reason = f"expected at most {len(columns)} fields ({', '.join(columns)}), got {len(row)}"
            raise LoadError(path, reason, line=number)
        cells = dict(zip(columns, (cell.strip() for cell in row), strict=False))
        words = {column: cells.get(column) or None for column in ("name", "inverse_name", "description")}
        aliases = tuple(alias.strip() for alias in cells.get("aliases", "").split("|") if alias.strip())
        record = RelationRecord(cells["id"], aliases=aliases, **words)
        _checked(path, record, line=number)
        yield record


def _iter_metaedges(
    path: Path, rows: Iterator[tuple[int, list[str]]], columns: list[str]
) -> Iterator[RelationRecord]:
    at = {column: columns.index(column) for column in _METAEDGE_KEYS}
    for number, row in rows:
        if len(row) <= max(at.values()):
            reason = f"expected {len(columns)} fields ({', '.join(columns)}), got {len(row)}"
            raise LoadError(path, reason, line=number)
        metaedge, abbreviation = (row[at[column]].strip() for column in _METAEDGE_KEYS)
        match = _METAEDGE.match(metaedge)
        if match is None:
            reason = (
                "expected a metaedge 'Kind - verb - Kind' (or 'Kind > verb > Kind' when directed), "
                f"got {metaedge!r}"
            )
            raise LoadError(path, reason, line=number)
        head, separator, verb, tail = match.groups()
        inverse = verb if separator == "-" and head == tail else None  # the same reading both ways
        record = RelationRecord(abbreviation, verb, inverse, (f"{head} {verb} {tail}",))
        _checked(path, record, line=number)
        yield record


def _iter_jsonl(path: Path) -> Iterator[Record]:
    for number, text in _content_lines(path, comments=False):
        yield _jsonl_record(path, number, text)


def _iter_adjacency(path: Path, layout: InteractionLayout) -> Iterator[Record]:
    seen: set[str] = set()
    for number, text in _content_lines(path):
        fields = text.split()
        for field in fields:
            if not field.isdigit():
                reason = f"expected whitespace-separated integer ids 'user item item ...', got {field!r}"
                raise LoadError(path, reason, line=number)
        user = f"{layout.head_type}:{fields[0]}"
        items = [f"{layout.tail_type}:{field}" for field in fields[1:]]
        for entity, type in [(user, layout.head_type)] + [(item, layout.tail_type) for item in items]:
            if entity not in seen:
                seen.add(entity)
                yield _checked(path, EntityRecord(entity, type=type), line=number)
        for item in items:
            yield _checked(path, TripleRecord(user, layout.relation, item), line=number)


def _iter_edgelist(path: Path) -> Iterator[Record]:
    for number, text in _content_lines(path):
        try:  # networkx parses each line, so the format is exactly nx.read_edgelist's
            graph = nx.parse_edgelist([text], create_using=nx.MultiDiGraph, nodetype=str, data=True)
        except (TypeError, ValueError, SyntaxError) as error:
            reason = f"expected 'source target' or 'source target {{attribute dict}}' ({error})"
            raise LoadError(path, reason, line=number) from None
        edges = list(graph.edges(data=True))
        if not edges:
            reason = f"expected 'source target' or 'source target {{attribute dict}}', got {text.strip()!r}"
            raise LoadError(path, reason, line=number)
        (source, target, data), *_ = edges
        yield _checked(path, TripleRecord(source, _relation(data), target), line=number)


def _text(value: object) -> object:
    """Numbers in graph attributes become text; anything else is left for validate_record to judge."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _relation(data: dict[str, Any]) -> Any:
    for key in _RELATION_ATTRIBUTES:
        if data.get(key) is not None:
            return _text(data[key])
    return _DEFAULT_RELATION


def _entity(path: Path, node: object, data: dict[str, Any]) -> Record:
    identifier = str(node)
    element = f"node {identifier!r}"
    name = data.get("name")
    if name is None and data.get("label") is not None and str(data["label"]) != identifier:
        name = data["label"]  # GEXF writers fill the label with the id: that is no name
    aliases = data.get("aliases")
    if aliases is None:
        aliases = ()
    elif isinstance(aliases, str):
        aliases = tuple(alias.strip() for alias in aliases.split("|") if alias.strip())
    elif isinstance(aliases, list | tuple):
        aliases = tuple(_text(alias) for alias in aliases)
    else:
        reason = f"expected 'aliases' to be a list or a '|'-separated string, got {type(aliases).__name__}"
        raise LoadError(path, reason, element=element)
    node_type = data.get("type", data.get("node_type"))
    record = EntityRecord(identifier, _text(name), aliases, _text(node_type))  # type: ignore[arg-type]
    return _checked(path, record, element=element)


_GRAPH_READERS: dict[str, Callable[[Path], nx.Graph]] = {
    "graphml": nx.read_graphml,
    "gml": nx.read_gml,  # node ids from the 'label' key, as nx.write_gml stores them
    "gexf": nx.read_gexf,
}


def _iter_graph(path: Path, format: str) -> Iterator[Record]:
    try:
        graph = _GRAPH_READERS[format](path)
    except OSError:
        raise
    except (nx.NetworkXError, ElementTree.ParseError, ValueError, KeyError, TypeError, IndexError) as error:
        raise LoadError(path, f"cannot be read as {format} ({type(error).__name__}: {error})") from error
    for node, data in graph.nodes(data=True):
        yield _entity(path, node, data)
    for index, (source, target, data) in enumerate(graph.edges(data=True), start=1):
        element = f"edge {index} ({source!s} -> {target!s})"
        yield _checked(path, TripleRecord(str(source), _relation(data), str(target)), element=element)


_READERS: dict[str, Callable[[Path], Iterator[Record]]] = {
    "tsv": _iter_tsv,
    "csv": _iter_csv,
    "jsonl": _iter_jsonl,
    "metaqa": _iter_metaqa,
    "graphml": lambda path: _iter_graph(path, "graphml"),
    "gml": lambda path: _iter_graph(path, "gml"),
    "gexf": lambda path: _iter_graph(path, "gexf"),
    "edgelist": _iter_edgelist,
}
