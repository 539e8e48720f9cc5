"""Entities and evidence paths by id and name, as Ask and Lookup results carry them, and the entity a text
names (a topic) while it is still an index into the graph."""

from __future__ import annotations

from dataclasses import dataclass

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.evidence import Evidence

MATCH_CONFIDENCE = {"exact": 1.0, "alias": 0.95}  # linking score of a name/id match and of an alias match


@dataclass(frozen=True)
class LinkedEntity:
    id: str
    name: str
    score: float
    mention: str
    method: str


@dataclass(frozen=True)
class Topic:
    """An entity a text names: its index, the linking score, the words that named it and how they matched."""

    index: int
    score: float
    mention: str
    method: str

    def linked(self, graph: KnowledgeGraph) -> LinkedEntity:
        return LinkedEntity(
            graph.entity_ids[self.index], graph.names[self.index], self.score, self.mention, self.method
        )


@dataclass(frozen=True)
class NamedHop:
    head_id: str
    head_name: str
    relation: str
    tail_id: str
    tail_name: str
    reversed: bool
    weight: float


@dataclass(frozen=True)
class NamedEvidence:
    hops: tuple[NamedHop, ...]
    weight: float
    inferred: bool = False
    pattern: str = ""  # the relation-path pattern the path is an example of (Lookup's pattern evidence)


def named_evidence(graph: KnowledgeGraph, evidence: Evidence, inferred: bool = False) -> NamedEvidence:
    hops = tuple(
        NamedHop(
            graph.entity_ids[h.head],
            graph.names[h.head],
            graph.relation_ids[h.relation],
            graph.entity_ids[h.tail],
            graph.names[h.tail],
            h.reversed,
            h.weight,
        )
        for h in evidence.hops
    )
    return NamedEvidence(hops, evidence.weight, inferred, evidence.pattern)
