"""Graph files as columns: the fast TSV reader gives what the line reader gives, and fails where it fails."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from graphfuse.gnn.data.records import EntityRecord, RelationRecord, Retraction, TripleRecord
from graphfuse.gnn.formats import bulk
from graphfuse.gnn.formats.bulk import columns_from_records, read_columns
from graphfuse.gnn.formats.loaders import LoadError, iter_records


def triples(columns: bulk.GraphColumns) -> list[tuple[str, str, str]]:
    e, r = columns.entity_ids, columns.relation_ids
    return list(zip(e[columns.heads], r[columns.rels], e[columns.tails], strict=True))


def line_reader(path: Path) -> list[tuple[str, str, str]]:
    seen = {}
    for t in iter_records(path, "tsv"):
        seen.setdefault((t.head, t.relation, t.tail), None)
    return list(seen)


MESSY = (
    "head\tRelation\ttail\n"
    "# a comment\twith\tfields\n"
    "aspirin\ttreats\theadache\n"
    "\n"
    "  ibuprofen \ttreats\tfever\r\n"
    "aspirin\ttreats\theadache\n"  # repeated: stored once
    "   \n"
    "fever\tsymptom of\tflu\n"
)


def test_fast_reader_matches_the_line_reader_on_a_messy_file(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    path.write_text(MESSY)
    columns = read_columns(path)
    assert (
        triples(columns)
        == line_reader(path)
        == [
            ("aspirin", "treats", "headache"),
            ("ibuprofen", "treats", "fever"),
            ("fever", "symptom of", "flu"),
        ]
    )
    assert list(columns.entity_ids) == ["aspirin", "ibuprofen", "fever", "headache", "flu"]
    assert columns.heads.dtype == np.int64 and columns.records == []


def test_chunks_share_one_set_of_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "_CHUNK_ROWS", 3)
    path = tmp_path / "g.tsv.gz"
    rows = [f"e{i % 5}\tr{i % 2}\te{(i * 7) % 11}" for i in range(40)]
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    columns = read_columns(path, "tsv")
    assert triples(columns) == line_reader(path)
    assert len(set(columns.entity_ids)) == columns.entity_ids.size


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("a\tr\tb\nc\tr\n", 2, "expected 3 tab-separated fields"),
        ("a\tr\tb\nc\tr\td\te\n", 2, "expected 3 tab-separated fields"),
        ("a\tr\tb\nc\t\td\n", 2, "relation is empty"),
        ("a\tr\tb\n" + "x" * 600 + "\tr\tb\n", 2, "at most 512"),
        ("a\tr\tb\nc\tr\td\x00\n", 2, "NUL"),
    ],
)
def test_a_bad_line_is_reported_as_file_and_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(LoadError, match=rf"bad\.tsv:{line}: .*{reason}"):
        read_columns(path)


def test_bytes_that_are_not_utf8_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"a\tr\tb\nc\tr\t\xff\xfe\n")
    with pytest.raises(LoadError, match=r"bad\.tsv:2: not valid UTF-8"):
        read_columns(path)


def test_other_formats_go_through_their_records(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text(
        '{"id": "db1", "name": "aspirin", "type": "Compound", "aliases": ["ASA"]}\n'
        '{"relation": {"id": "CtD", "name": "treats"}}\n'
        '{"head": "db1", "relation": "CtD", "tail": "d1"}\n'
    )
    columns = read_columns(path)
    assert triples(columns) == [("db1", "CtD", "d1")]
    assert list(columns.names) == ["aspirin", None] and list(columns.types) == ["Compound", None]
    assert columns.records == [EntityRecord("db1", aliases=("ASA",)), RelationRecord("CtD", name="treats")]


def test_a_bulk_load_refuses_retractions() -> None:
    records = [TripleRecord("a", "r", "b"), Retraction("a", "r", "b")]
    with pytest.raises(LoadError, match="record 2: a bulk load only adds"):
        columns_from_records(records)
