"""Evidence: walk back from an answer to the topic entities along the edges that carried its mass."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from gnn.graph import KnowledgeGraph


@dataclass(frozen=True, slots=True)
class EvidenceHop:
    """One stored edge ``head -relation-> tail``; ``reversed`` when the path walked it from tail to head."""

    head: int
    relation: int
    tail: int
    reversed: bool


@dataclass(frozen=True, slots=True)
class Evidence:
    hops: tuple[EvidenceHop, ...]
    weight: float


def path_frontiers(graph: KnowledgeGraph, topics: Tensor, directions: tuple[int, ...]) -> list[Tensor]:
    """Frontiers ``x_0 .. x_L`` of one relation path; ``topics`` is ``(N,)``."""
    frontiers = [topics.float().unsqueeze(1)]
    for d in directions:
        frontiers.append(graph.transition(d).apply(frontiers[-1]).clamp_(max=1.0))
    return [x.squeeze(1) for x in frontiers]


def walk_back(
    graph: KnowledgeGraph,
    frontiers: list[Tensor],
    directions: tuple[int, ...],
    answer: int,
    limit: int,
) -> list[tuple[EvidenceHop, ...]]:
    """Up to ``limit`` edge paths from the topic entities to ``answer`` along ``directions``.

    Every predecessor kept lies on the previous frontier, so each branch reaches a topic entity.
    """
    if frontiers[-1][answer] <= 0:
        return []
    found: list[tuple[EvidenceHop, ...]] = []

    def visit(node: int, hop: int, suffix: tuple[EvidenceHop, ...]) -> None:
        if len(found) >= limit:
            return
        if hop == 0:
            found.append(suffix)
            return
        d = directions[hop - 1]
        relation, reverse = graph.relation_of(d)
        previous = frontiers[hop - 1]
        for source in graph.transition(d).predecessors(node).tolist():
            if previous[source] <= 0:
                continue
            head, tail = (node, source) if reverse else (source, node)
            visit(source, hop - 1, (EvidenceHop(head, relation, tail, reverse), *suffix))
            if len(found) >= limit:
                return

    visit(answer, len(directions), ())
    return found
