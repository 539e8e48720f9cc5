"""Records between their protobuf message (graphfuse.v1.Record) and graphfuse.gnn.data.records, for every
transport. Canonical JSON (the update stream's JSON messages, the HTTP gateway) parses into the same message
first, so it decodes here too."""

from __future__ import annotations

from graphfuse.gnn.data.records import (
    EntityRecord,
    Record,
    RelationRecord,
    Retraction,
    TripleColumns,
    TripleRecord,
)
from graphfuse.v1 import graphfuse_pb2 as pb

RECORD_KINDS = "triple, remove_triple, entity or relation"  # the oneof's fields, for "record is empty" errors


def record_from_proto(record: pb.Record) -> Record | None:
    """The record a message holds; None when it holds none. Empty strings are "not given" (None)."""
    kind = record.WhichOneof("record")
    if kind == "triple":
        t = record.triple
        return TripleRecord(t.head, t.relation, t.tail)
    if kind == "remove_triple":
        t = record.remove_triple
        return Retraction(t.head, t.relation, t.tail)
    if kind == "entity":
        e = record.entity
        return EntityRecord(e.id, e.name or None, tuple(e.aliases), e.type or None)
    if kind == "relation":
        r = record.relation
        return RelationRecord(
            r.id, r.name or None, r.inverse_name or None, tuple(r.aliases), r.description or None
        )
    return None


def triple_columns_from_proto(columns: pb.TripleColumns) -> tuple[TripleColumns | None, str | None]:
    """``(the columns, None)``; ``(None, None)`` when there are none; ``(None, why)`` when malformed."""
    heads, relations, tails = list(columns.heads), list(columns.relations), list(columns.tails)
    if not (heads or relations or tails):
        return None, None
    try:
        return TripleColumns(heads, relations, tails), None
    except ValueError as error:
        return None, str(error)


def triple_columns_to_proto(columns: TripleColumns) -> pb.TripleColumns:
    return pb.TripleColumns(heads=columns.heads, relations=columns.relations, tails=columns.tails)


def record_to_proto(record: Record) -> pb.Record:
    if isinstance(record, TripleRecord):
        return pb.Record(triple=pb.Triple(head=record.head, relation=record.relation, tail=record.tail))
    if isinstance(record, Retraction):
        return pb.Record(
            remove_triple=pb.Triple(head=record.head, relation=record.relation, tail=record.tail)
        )
    if isinstance(record, RelationRecord):
        return pb.Record(
            relation=pb.Relation(
                id=record.id,
                name=record.name or "",
                inverse_name=record.inverse_name or "",
                aliases=list(record.aliases),
                description=record.description or "",
            )
        )
    return pb.Record(
        entity=pb.Entity(
            id=record.id, name=record.name or "", aliases=list(record.aliases), type=record.type or ""
        )
    )
