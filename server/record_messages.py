"""Records between their protobuf message (graphfuse.v1.Record) and graphfuse.gnn.data.records, for every
transport."""

from __future__ import annotations

from graphfuse.gnn.data.records import EntityRecord, Record, Retraction, TripleRecord
from graphfuse.v1 import graphfuse_pb2 as pb


def record_from_proto(record: pb.Record) -> Record | None:
    """The record a message holds; None when it holds none."""
    kind = record.WhichOneof("record")
    if kind == "triple":
        return TripleRecord(record.triple.head, record.triple.relation, record.triple.tail)
    if kind == "remove_triple":
        t = record.remove_triple
        return Retraction(t.head, t.relation, t.tail)
    if kind == "entity":
        e = record.entity
        return EntityRecord(e.id, e.name or None, tuple(e.aliases), e.type or None)
    return None


def record_to_proto(record: Record) -> pb.Record:
    if isinstance(record, TripleRecord):
        return pb.Record(triple=pb.Triple(head=record.head, relation=record.relation, tail=record.tail))
    if isinstance(record, Retraction):
        return pb.Record(
            remove_triple=pb.Triple(head=record.head, relation=record.relation, tail=record.tail)
        )
    return pb.Record(
        entity=pb.Entity(
            id=record.id, name=record.name or "", aliases=list(record.aliases), type=record.type or ""
        )
    )
