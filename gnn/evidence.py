"""Evidence: walk back from an answer to the topic entities along the edges that carried its mass."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from gnn.graph import KnowledgeGraph

MAX_EXPANSIONS = 256  # DFS steps one evidence walk may take (skipping cycles can lead into dead ends)


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

    Every predecessor kept lies on the previous frontier, so it leads back to a topic entity; paths that
    pass an entity twice are not evidence and are skipped (at most ``MAX_EXPANSIONS`` steps are tried).
    """
    if frontiers[-1][answer] <= 0:
        return []
    found: list[tuple[EvidenceHop, ...]] = []
    budget = [MAX_EXPANSIONS]

    def visit(node: int, hop: int, suffix: tuple[EvidenceHop, ...], on_path: frozenset[int]) -> None:
        if len(found) >= limit or budget[0] <= 0:
            return
        budget[0] -= 1
        if hop == 0:
            found.append(suffix)
            return
        d = directions[hop - 1]
        relation, reverse = graph.relation_of(d)
        previous = frontiers[hop - 1]
        sources = graph.transition(d).predecessors(node)
        for source in sources[previous[sources] > 0].tolist():
            if source in on_path:
                continue
            head, tail = (node, source) if reverse else (source, node)
            visit(source, hop - 1, (EvidenceHop(head, relation, tail, reverse), *suffix), on_path | {source})
            if len(found) >= limit:
                return

    visit(answer, len(directions), (), frozenset({answer}))
    return found


def walk_back_weighted(
    graph: KnowledgeGraph,
    frontiers: list[Tensor],
    hop_weights: list[Tensor],
    answer: int,
    limit: int,
    min_weight: float = 0.01,
) -> list[tuple[tuple[EvidenceHop, ...], float]]:
    """Up to ``limit`` edge paths from the topic entities to ``answer`` under soft per-hop relation weights.

    Args:
        frontiers: entity scores ``x_0 .. x_L``, each ``(N,)``; ``x_0`` is the topic mass.
        hop_weights: ``L`` tensors ``(2R,)``: the weight of each directed relation at each hop.
        min_weight: relations below this weight are only tried when no stronger one leads back.

    Returns:
        ``(hops, weight)`` pairs, strongest first; a path's weight is the product of its hops' relation
        weights. Predecessors are explored in order of contribution (relation weight x predecessor score).
    """
    hops = len(hop_weights)
    if hops == 0 or frontiers[hops][answer] <= 0:
        return []
    found: list[tuple[tuple[EvidenceHop, ...], float]] = []

    def steps(node: int, hop: int, floor: float) -> list[tuple[float, int, int]]:
        weights = hop_weights[hop - 1]
        previous = frontiers[hop - 1]
        out = []
        for d in (weights >= floor).nonzero().flatten().tolist():
            sources = graph.transition(d).predecessors(node)
            if sources.numel() == 0:
                continue
            scores = previous[sources]
            keep = scores > 0
            for source, score in zip(sources[keep].tolist(), scores[keep].tolist(), strict=True):
                out.append((float(weights[d]) * score, d, source))
        return sorted(out, reverse=True)

    budget = [MAX_EXPANSIONS]

    def visit(
        node: int, hop: int, suffix: tuple[EvidenceHop, ...], weight: float, on_path: frozenset[int]
    ) -> None:
        if len(found) >= limit or budget[0] <= 0:
            return
        budget[0] -= 1
        if hop == 0:
            found.append((suffix, weight))
            return
        candidates = steps(node, hop, min_weight) or steps(node, hop, 0.0)
        for _, d, source in candidates:
            if source in on_path:
                continue
            relation, reverse = graph.relation_of(d)
            head, tail = (node, source) if reverse else (source, node)
            step = EvidenceHop(head, relation, tail, reverse)
            visit(
                source, hop - 1, (step, *suffix), weight * float(hop_weights[hop - 1][d]), on_path | {source}
            )
            if len(found) >= limit:
                return

    visit(answer, hops, (), 1.0, frozenset({answer}))
    return sorted(found, key=lambda item: -item[1])
