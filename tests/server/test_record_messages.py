"""Records between graphfuse.v1.Record and the typed records: every kind both ways, and canonical JSON."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from graphfuse.gnn.data.records import EntityRecord, RelationRecord, Retraction, TripleColumns, TripleRecord
from graphfuse.server.client import _chunks
from graphfuse.server.record_messages import (
    record_from_proto,
    record_to_proto,
    triple_columns_from_proto,
    triple_columns_to_proto,
)
from graphfuse.v1 import graphfuse_pb2 as pb


@pytest.mark.parametrize(
    "record",
    [
        TripleRecord("a", "r", "b"),
        Retraction("a", "r", "b"),
        EntityRecord("a", "A", ("alpha",), "letter"),
        EntityRecord("a"),
        RelationRecord("P27", "country of citizenship", "citizens", ("nationality",), "a person's country"),
        RelationRecord("CtD"),
    ],
)
def test_every_record_kind_round_trips(record) -> None:  # noqa: ANN001
    message = record_to_proto(record)
    assert record_from_proto(pb.Record.FromString(message.SerializeToString())) == record


def test_relation_records_from_canonical_json() -> None:
    document = {
        "relation": {"id": "CtD", "name": "treats", "inverseName": "treated by", "aliases": ["cures"]}
    }
    message = json_format.ParseDict(document, pb.Record())
    assert record_from_proto(message) == RelationRecord("CtD", "treats", "treated by", ("cures",))
    proto_names = json_format.ParseDict(
        {"relation": {"id": "CtD", "inverse_name": "treated by"}}, pb.Record()
    )
    assert record_from_proto(proto_names) == RelationRecord("CtD", inverse_name="treated by")
    assert record_from_proto(pb.Record()) is None


def test_relation_field_numbers_are_the_published_ones() -> None:
    """New fields only ever get new numbers: graphfuse.v1 is a versioned public API."""
    record = pb.Record.DESCRIPTOR.fields_by_name
    assert [(name, record[name].number) for name in ("triple", "entity", "remove_triple", "relation")] == [
        ("triple", 1),
        ("entity", 2),
        ("remove_triple", 3),
        ("relation", 4),
    ]
    relation = pb.Relation.DESCRIPTOR.fields_by_name
    assert {name: field.number for name, field in relation.items()} == {
        "id": 1,
        "name": 2,
        "inverse_name": 3,
        "aliases": 4,
        "description": 5,
    }
    assert pb.GraphInfo.DESCRIPTOR.fields_by_name["relation_words"].number == 13
    assert pb.GraphInfo.DESCRIPTOR.fields_by_name["relation_names"].number == 6


def test_triple_columns_round_trip_and_uneven_ones_say_why() -> None:
    columns = TripleColumns(["a", "b"], ["r", "s"], ["c", "d"])
    message = pb.TripleColumns.FromString(triple_columns_to_proto(columns).SerializeToString())
    assert triple_columns_from_proto(message) == (columns, None)
    assert triple_columns_from_proto(pb.TripleColumns()) == (None, None)
    uneven, why = triple_columns_from_proto(pb.TripleColumns(heads=["a"], relations=["r"]))
    assert uneven is None and why == "heads, relations and tails are of different lengths (1, 1, 0)"


def test_a_client_sends_each_chunks_trailing_triples_as_columns() -> None:
    records = [
        TripleRecord("a", "r", "b"),
        EntityRecord("a", "A"),
        TripleRecord("b", "r", "c"),
        TripleRecord("c", "r", "d"),
        Retraction("a", "r", "b"),
        TripleRecord("d", "r", "e"),
    ]
    chunks = list(_chunks("g", records, 4, create_graph=True, wait_for_names=False))
    assert [len(c.records) for c in chunks] == [2, 1]
    assert [list(c.triples.heads) for c in chunks] == [["b", "c"], ["d"]]
    sent = []
    for chunk in chunks:
        columns, _ = triple_columns_from_proto(chunk.triples)
        sent += [record_from_proto(r) for r in chunk.records] + (columns.records() if columns else [])
    assert sent == records  # in order
