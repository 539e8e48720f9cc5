"""Serving a trained link predictor on a live graph: batched tail and relation scores, and explanations.

The model knows the directed relations of the graph it was trained on, by id; the served graph may have
gained relations since (their messages are dropped and queries over them are not scored) and entities
(scored like the others: the model has no per-entity parameters).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.evidence import Evidence, EvidenceHop
from graphfuse.gnn.models.link_predictor import LinkEnsemble, LinkPredictor

MAX_EXPLAIN_EDGES = 512  # the most important edges an explanation's path search may use
MAX_EXPANSIONS = 4096  # DFS steps one explanation may take


class LinkScorer(Protocol):
    """What Lookup infers triples with: a link predictor bound to the relations it knows."""

    description: str
    answers_questions: bool  # cheap enough to infer answers of every Ask along a relation it knows

    def knows(self, graph: KnowledgeGraph, relation: int) -> bool: ...

    def known_relations(self, graph: KnowledgeGraph) -> list[int]: ...

    def tail_probabilities(self, graph: KnowledgeGraph, heads: Tensor, directions: Tensor) -> Tensor: ...

    def explain_many(
        self, graph: KnowledgeGraph, triples: Sequence[tuple[int, int, int]], paths: int = 3
    ) -> list[tuple[Evidence, ...]]: ...


class LinkInference:
    """A trained :class:`LinkPredictor` (or :class:`LinkEnsemble`) bound to its training relation ids.

    Args:
        model: the trained predictor.
        relation_ids: relation ids of its training graph, in the model's relation order.
        description: what the server reports for this predictor.
    """

    def __init__(
        self, model: LinkPredictor | LinkEnsemble, relation_ids: Sequence[str], description: str
    ) -> None:
        if len(relation_ids) != model.config.num_relations:
            raise ValueError(
                f"Expected {model.config.num_relations} relation ids for this model (got {len(relation_ids)})"
            )
        self.model = model.eval().requires_grad_(False)  # explanations differentiate edges, never weights
        self.relation_ids = list(relation_ids)
        self.description = description
        self.answers_questions = False  # a pass over the whole graph per query: Lookup only
        self._index = {r: i for i, r in enumerate(self.relation_ids)}

    def direction_map(self, graph: KnowledgeGraph) -> Tensor:
        """``(2R_graph,)`` model direction of each graph direction; -1 where the model does not know it."""
        r_model = len(self.relation_ids)
        forward = [self._index.get(r, -1) for r in graph.relation_ids]
        backward = [i + r_model if i >= 0 else -1 for i in forward]
        return torch.tensor(forward + backward, dtype=torch.long)

    def knows(self, graph: KnowledgeGraph, relation: int) -> bool:
        return graph.relation_ids[relation] in self._index

    def known_relations(self, graph: KnowledgeGraph) -> list[int]:
        """The graph's relations this model was trained with."""
        return [r for r in range(graph.num_relations) if self.knows(graph, r)]

    def logits(
        self, graph: KnowledgeGraph, heads: Tensor, directions: Tensor, values: Tensor | None = None
    ) -> Tensor:
        """Uncalibrated scores of every entity for queries over graph directions, ``(B, N)``."""
        mapping = self.direction_map(graph)
        model_directions = mapping[directions]
        if bool((model_directions < 0).any()):
            raise ValueError("a query's relation is unknown to this link predictor")
        return self.model(
            graph.stacked_transitions(), graph.num_entities, heads, model_directions, values, mapping
        )

    @torch.no_grad()
    def tail_probabilities(self, graph: KnowledgeGraph, heads: Tensor, directions: Tensor) -> Tensor:
        """Calibrated probability of every entity as the answer of each query ``(head, graph direction)``.

        Shapes:
            heads, directions: ``(B,)``; returns ``(B, N)``.
        """
        return self.model.probability(self.logits(graph, heads, directions, None))

    @torch.no_grad()
    def relation_probabilities(self, graph: KnowledgeGraph, head: int, tail: int) -> Tensor:
        """Probability of ``head -r-> tail`` for every relation ``r``, ``(R,)`` (0: unknown to the model).

        All relations are scored in one pass: one query ``(head, r)`` per known relation.
        """
        known = torch.tensor(self.known_relations(graph), dtype=torch.long)
        out = torch.zeros(graph.num_relations)
        if known.numel():
            heads = torch.full((known.numel(),), head, dtype=torch.long)
            out[known] = self.tail_probabilities(graph, heads, known)[:, tail]
        return out

    def explain(
        self, graph: KnowledgeGraph, head: int, direction: int, tail: int, paths: int = 3, max_hops: int = 3
    ) -> tuple[Evidence, ...]:
        """The paths from ``head`` to ``tail`` whose edges carried the most of the triple's score."""
        return self.explain_many(graph, [(head, direction, tail)], paths, max_hops)[0]

    def explain_many(
        self,
        graph: KnowledgeGraph,
        triples: Sequence[tuple[int, int, int]],
        paths: int = 3,
        max_hops: int = 3,
    ) -> list[tuple[Evidence, ...]]:
        """Explanations of several ``(head, graph direction, tail)`` triples from one forward-backward pass.

        An edge's importance is the gradient of the triple's logit with respect to that edge's weight
        (NBFNet's explanation); a path scores the sum over its edges, and the best ``paths`` simple paths
        of at most ``max_hops`` edges are returned, weights normalised to sum to 1.
        """
        if not triples:
            return []
        stacked = graph.stacked_transitions()
        heads, directions, tails = (torch.tensor(column) for column in zip(*triples, strict=True))
        values = torch.ones(len(triples), stacked.nnz, requires_grad=True)
        with torch.enable_grad():
            logits = self.logits(graph, heads, directions, values)  # (B, N)
            logits[torch.arange(len(triples)), tails].sum().backward()
        assert values.grad is not None
        sources, edge_directions, destinations = stacked.edge_keys()
        return [
            _best_paths(graph, importance, sources, edge_directions, destinations, h, t, paths, max_hops)
            for importance, (h, _, t) in zip(values.grad, triples, strict=True)
        ]


def _best_paths(
    graph: KnowledgeGraph,
    importance: Tensor,
    sources: Tensor,
    directions: Tensor,
    destinations: Tensor,
    head: int,
    tail: int,
    paths: int,
    max_hops: int,
) -> tuple[Evidence, ...]:
    positive = int((importance > 0).sum())
    if positive == 0:
        return ()
    top = torch.topk(importance, min(positive, MAX_EXPLAIN_EDGES))
    edges_from: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    columns = (
        sources[top.indices].tolist(),
        destinations[top.indices].tolist(),
        directions[top.indices].tolist(),
    )
    for u, v, d, weight in zip(*columns, top.values.tolist(), strict=True):
        edges_from[u].append((v, d, weight))
    found = _simple_paths(edges_from, head, tail, max_hops)
    found.sort(key=lambda p: -p[0])
    best = found[:paths]
    total = sum(score for score, _ in best) or 1.0
    return tuple(
        Evidence(tuple(_hop(graph, u, d, v) for u, d, v in steps), score / total) for score, steps in best
    )


@dataclass(frozen=True)
class LinkPattern:
    """A lookup to infer: any of head, relation and tail (a head or a tail is needed for inference)."""

    head: int | None
    relation: int | None
    tail: int | None
    top_k: int
    min_score: float = 0.0
    explain: bool = True  # find the evidence paths of the inferred triples


@dataclass(frozen=True)
class InferredTriple:
    head: int
    relation: int
    tail: int
    score: float  # calibrated probability
    evidence: tuple[Evidence, ...]


def infer_many(
    predictor: LinkScorer, graph: KnowledgeGraph, patterns: Sequence[LinkPattern], paths: int = 3
) -> list[list[InferredTriple]]:
    """The most probable triples of each pattern that are not stored facts, best first, with explanations.

    All queries of all patterns are scored in one pass, and all chosen triples explained in one
    forward-backward pass. A missing relation means every relation the model knows.
    """
    plans = [_plan(predictor, graph, p) for p in patterns]
    heads = [h for plan in plans if plan for h in plan[1]]
    directions = [d for plan in plans if plan for d in plan[2]]
    probabilities = (
        predictor.tail_probabilities(graph, torch.tensor(heads), torch.tensor(directions))
        if heads
        else torch.empty(0, graph.num_entities)
    )
    chosen: list[list[tuple[int, int, int, float]]] = []
    row = 0
    for pattern, plan in zip(patterns, plans, strict=True):
        if plan is None:
            chosen.append([])
            continue
        relations = plan[0]
        block = probabilities[row : row + len(relations)]  # (|relations|, N)
        row += len(relations)
        chosen.append(_pick(graph, pattern, relations, block))
    wanted = [
        (h, r, t) for p, triples in zip(patterns, chosen, strict=True) if p.explain for h, r, t, _ in triples
    ]
    explained = iter(predictor.explain_many(graph, wanted, paths) if paths else [() for _ in wanted])
    return [
        [InferredTriple(h, r, t, score, next(explained) if p.explain else ()) for h, r, t, score in triples]
        for p, triples in zip(patterns, chosen, strict=True)
    ]


def _plan(
    predictor: LinkScorer, graph: KnowledgeGraph, pattern: LinkPattern
) -> tuple[list[int], list[int], list[int]] | None:
    """``(relations, query heads, query directions)``: one query per relation, from the head (or the tail)."""
    if pattern.head is None and pattern.tail is None or pattern.top_k <= 0:
        return None
    if pattern.relation is not None:
        relations = [pattern.relation] if predictor.knows(graph, pattern.relation) else []
    else:
        relations = predictor.known_relations(graph)
    if not relations:
        return None
    if pattern.head is not None:
        return relations, [pattern.head] * len(relations), relations
    assert pattern.tail is not None  # (?, r, t) is (t, r^-1, ?)
    return relations, [pattern.tail] * len(relations), [r + graph.num_relations for r in relations]


def _pick(
    graph: KnowledgeGraph, pattern: LinkPattern, relations: list[int], probabilities: Tensor
) -> list[tuple[int, int, int, float]]:
    head, tail = pattern.head, pattern.tail
    if head is not None and tail is not None:
        probabilities = probabilities[:, tail : tail + 1]  # (|relations|, 1): only the given pair
    stored = int(graph.match_edges(head, pattern.relation, tail).numel())
    flat = probabilities.flatten()
    top = torch.topk(flat, min(flat.numel(), pattern.top_k + stored))
    width = probabilities.shape[1]
    candidates: list[tuple[int, int, int, float]] = []
    for score, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        if score < pattern.min_score or score <= 0.0:  # 0: not a candidate
            break
        r, other = relations[index // width], index % width
        h, t = (head, tail if width == 1 else other) if head is not None else (other, tail)
        assert h is not None and t is not None
        candidates.append((h, r, t, score))
    stored_already = graph.has_edges([c[:3] for c in candidates])
    return [c for c, fact in zip(candidates, stored_already, strict=True) if not fact][: pattern.top_k]


def _hop(graph: KnowledgeGraph, source: int, direction: int, destination: int) -> EvidenceHop:
    relation, reversed_ = graph.relation_of(direction)
    if reversed_:
        return EvidenceHop(destination, relation, source, True)
    return EvidenceHop(source, relation, destination, False)


def _simple_paths(
    edges_from: dict[int, list[tuple[int, int, float]]], start: int, goal: int, max_hops: int
) -> list[tuple[float, list[tuple[int, int, int]]]]:
    """Every simple path ``start -> goal`` of at most ``max_hops`` edges, with its summed importance.

    Only nodes that can still reach ``goal`` within the hops left are expanded.
    """
    reaches = [{goal}]  # reaches[k]: nodes with a path to goal of at most k edges
    for _ in range(max_hops - 1):
        reaches.append(
            reaches[-1] | {u for u, edges in edges_from.items() if any(v in reaches[-1] for v, _, _ in edges)}
        )
    found: list[tuple[float, list[tuple[int, int, int]]]] = []
    stack: list[tuple[int, float, list[tuple[int, int, int]], frozenset[int]]] = [
        (start, 0.0, [], frozenset([start]))
    ]
    expansions = 0
    while stack and expansions < MAX_EXPANSIONS:
        node, score, steps, seen = stack.pop()
        expansions += 1
        left = max_hops - len(steps) - 1  # hops left after the next edge
        for nxt, direction, weight in edges_from.get(node, ()):
            path = [*steps, (node, direction, nxt)]
            if nxt == goal:
                found.append((score + weight, path))
            elif left > 0 and nxt not in seen and nxt in reaches[left]:
                stack.append((nxt, score + weight, path, seen | {nxt}))
    return found
