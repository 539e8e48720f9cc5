"""Evidence: walk back from an answer to the topic entities along the edges that carried its mass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    """Up to ``limit`` edge paths from the topic entities to ``answer`` along fixed ``directions``."""
    hops = [HopChoice([d], [], {d: 1.0}) for d in directions]
    return [edges for edges, _ in _walk(graph, frontiers, hops, answer, limit)]


def walk_back_weighted(
    graph: KnowledgeGraph,
    frontiers: list[Tensor],
    hops: Sequence[HopChoice],
    answer: int,
    limit: int,
) -> list[tuple[tuple[EvidenceHop, ...], float]]:
    """Up to ``limit`` edge paths from the topic entities to ``answer`` under soft per-hop relation weights.

    Args:
        frontiers: entity scores ``x_0 .. x_L``, each ``(N,)``; ``x_0`` is the topic mass.
        hops: ``L`` choices of relations (:func:`hop_choices`), one per hop.

    Returns:
        ``(hops, weight)`` pairs, strongest first; a path's weight is the product of its hops' relation
        weights.
    """
    return _walk(graph, frontiers, list(hops), answer, limit)


def hop_choices(hop_weights: Tensor, min_weight: float = 0.01) -> list[HopChoice]:
    """The relations each hop of a walk may follow, from a question's ``(L, 2R)`` relation weights (one
    question's, shared by all its answers): relations below ``min_weight`` are only tried when no stronger
    one leads back; relations of weight zero never are."""
    return [
        HopChoice(
            (w >= min_weight).nonzero().flatten().tolist(),
            ((w > 0) & (w < min_weight)).nonzero().flatten().tolist(),  # no weight, no mass carried
            w.tolist(),
        )
        for w in hop_weights
    ]


@dataclass(frozen=True, slots=True)
class HopChoice:
    """The relations one hop of a walk may follow: ``strong`` first, ``weak`` only when those lead nowhere."""

    strong: list[int]
    weak: list[int]
    weight: Sequence[float] | Mapping[int, float]  # by directed relation


def _walk(
    graph: KnowledgeGraph, frontiers: list[Tensor], hops: list[HopChoice], answer: int, limit: int
) -> list[tuple[tuple[EvidenceHop, ...], float]]:
    """Depth-first from ``answer`` back to the topic entities, predecessors in order of contribution
    (relation weight x predecessor score). Predecessors lie on the previous frontier, so they lead back to
    a topic entity; paths that pass an entity twice are not evidence and are skipped, which can lead into
    dead ends, so at most ``MAX_EXPANSIONS`` steps are tried."""
    if not hops or frontiers[len(hops)][answer] <= 0:
        return []
    found: list[tuple[tuple[EvidenceHop, ...], float]] = []
    budget = [MAX_EXPANSIONS]

    arrays = [f.numpy() for f in frontiers]  # scores looked up one node at a time: NumPy, not torch
    incoming = graph.stacked_transitions().incoming

    def steps(node: int, hop: int, directions: list[int]) -> list[tuple[float, int, int]]:
        previous, weight_of = arrays[hop - 1], hops[hop - 1].weight
        allowed = set(directions)
        out = []
        for d, sources in incoming.of(node):
            if d not in allowed or sources.shape[0] == 0:
                continue
            scores = previous[sources]
            keep = scores > 0
            weight = weight_of[d]
            out += [
                (weight * s, d, n) for n, s in zip(sources[keep].tolist(), scores[keep].tolist(), strict=True)
            ]
        return sorted(out, key=lambda step: (-step[0], step[1], step[2]))  # strongest first, ties in order

    def visit(
        node: int, hop: int, suffix: tuple[EvidenceHop, ...], weight: float, on_path: frozenset[int]
    ) -> None:
        if len(found) >= limit or budget[0] <= 0:
            return
        budget[0] -= 1
        if hop == 0:
            found.append((suffix, weight))
            return
        choice = hops[hop - 1]
        for _, d, source in steps(node, hop, choice.strong) or steps(node, hop, choice.weak):
            if source in on_path:
                continue
            relation, reverse = graph.relation_of(d)
            head, tail = (node, source) if reverse else (source, node)
            step = EvidenceHop(head, relation, tail, reverse)
            visit(source, hop - 1, (step, *suffix), weight * choice.weight[d], on_path | {source})
            if len(found) >= limit:
                return

    visit(answer, len(hops), (), 1.0, frozenset({answer}))
    return sorted(found, key=lambda item: -item[1])
