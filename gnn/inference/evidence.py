"""Evidence: walk back from an answer to the topic entities along the edges that carried its mass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.kernels import cpu as cpu_kernels

MAX_EXPANSIONS = 256  # nodes one evidence walk may visit (skipping cycles can lead into dead ends)
MIN_WEIGHT = 0.01  # relations weighted below this are only followed where no stronger one leads back


@dataclass(frozen=True, slots=True)
class EvidenceHop:
    """One stored edge ``head -relation-> tail``; ``reversed`` when the path walked it from tail to head;
    ``weight``: how strongly the reasoner followed this relation at this step (1 on a path it prescribes)."""

    head: int
    relation: int
    tail: int
    reversed: bool
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Evidence:
    hops: tuple[EvidenceHop, ...]
    weight: float
    pattern: str = ""  # the relation-path pattern this path is an example of, when evidence is grouped so


class EvidenceWalker:
    """Walks back from one question's answers to its topic entities, predecessors in order of contribution
    (relation weight x predecessor score); see :func:`graphfuse.gnn.kernels.cpu.walk_back`. Predecessors hold
    mass at the previous hop, so they lead back to a topic entity.

    Args:
        graph: the graph the scores are over.
        start: ``(N, B)`` topic mass.
        levels: ``(L, N, B)`` entity scores after each hop.
        column: the question's column of ``start`` and ``levels``.
        weights: ``(L, 2R)`` the question's relation weights at each hop (0: never followed).
    """

    def __init__(
        self, graph: KnowledgeGraph, start: Tensor, levels: Tensor, column: int, weights: Tensor
    ) -> None:
        self.graph = graph
        stacked = graph.stacked_transitions()
        self._blocks = stacked.edge_block(), stacked.delta.edge_block() if stacked.delta is not None else None
        self._start = _array(start)
        self._levels = _array(levels)
        self._column = column
        self._weights = _array(weights)

    def walk(self, answer: int, hops: int, limit: int) -> list[Evidence]:
        """Up to ``limit`` paths of ``hops`` edges from the topic entities to ``answer``, strongest first; a
        path's weight is the product of its hops' relation weights."""
        if hops == 0 or limit <= 0:
            return []
        nodes, directions, weights = cpu_kernels.walk_back(
            *self._blocks,
            self._start,
            self._levels,
            self._column,
            self._weights,
            MIN_WEIGHT,
            answer,
            hops,
            limit,
            MAX_EXPANSIONS,
        )
        paths = []
        for path, steps, weight in zip(nodes.tolist(), directions.tolist(), weights.tolist(), strict=True):
            edges = []
            for h, d in enumerate(steps):
                relation, reverse = self.graph.relation_of(d)
                source, node = path[h], path[h + 1]
                head, tail = (node, source) if reverse else (source, node)
                edges.append(EvidenceHop(head, relation, tail, reverse, float(self._weights[h, d])))
            paths.append(Evidence(tuple(edges), weight))
        return sorted(paths, key=lambda evidence: -evidence.weight)


def path_walker(graph: KnowledgeGraph, topics: Tensor, directions: tuple[int, ...]) -> EvidenceWalker:
    """A walker along one relation path: ``directions``, one per hop, from the ``(N,)`` ``topics``."""
    frontiers = [topics.float().unsqueeze(1)]
    for d in directions:
        frontiers.append(graph.transition(d).apply(frontiers[-1]).clamp_(max=1.0))
    weights = torch.zeros(len(directions), 2 * graph.num_relations)
    weights[torch.arange(len(directions)), torch.tensor(directions, dtype=torch.long)] = 1.0
    levels = torch.stack(frontiers[1:]) if directions else torch.zeros(0, *frontiers[0].shape)
    return EvidenceWalker(graph, frontiers[0], levels, 0, weights)


def _array(x: Tensor) -> np.ndarray:
    """``x`` as a C-contiguous float32 CPU array (a view where it already is one)."""
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
