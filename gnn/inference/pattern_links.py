"""Serving a :class:`PathPatternPredictor` on a live graph: Lookup scores and evidence grouped by pattern.

Scores are computed against the candidates of the queried side only (entities of the kinds the relation
connects, or already in that role, see :mod:`graphfuse.gnn.training.path_patterns`); every other entity
scores 0. The weighted adjacency is rebuilt when the graph has changed since the last lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.evidence import Evidence, path_walker
from graphfuse.gnn.models.path_patterns import (
    DirectionMatrices,
    PathPatternPredictor,
    RelationPatterns,
    candidates,
    reversed_pattern,
)

MIN_SHARE = 0.05  # patterns carrying less of an inferred triple's evidence are not shown
EXAMPLES_PER_PATTERN = 2


class PatternLinkInference:
    """A trained :class:`PathPatternPredictor`, answering Lookup like :class:`LinkInference`.

    Args:
        predictor: the fitted pattern regressions.
        description: what the server reports for this predictor.
    """

    def __init__(self, predictor: PathPatternPredictor, description: str) -> None:
        self.predictor = predictor
        self.description = description
        self.answers_questions = True
        self._matrices: tuple[tuple[int, ...], DirectionMatrices] | None = None
        self._candidates: dict[tuple[tuple[int, ...], str, bool], np.ndarray] = {}

    def knows(self, graph: KnowledgeGraph, relation: int) -> bool:
        return graph.relation_ids[relation] in self.predictor.targets

    def known_relations(self, graph: KnowledgeGraph) -> list[int]:
        return [r for r in range(graph.num_relations) if self.knows(graph, r)]

    @torch.no_grad()
    def tail_probabilities(self, graph: KnowledgeGraph, heads: Tensor, directions: Tensor) -> Tensor:
        """Probability of every entity as the answer of each query ``(entity, graph direction)``, ``(B, N)``
        (0 outside the candidates of the answer's side, and on a typed graph for a query entity of a kind its
        side does not have; on an untyped graph the query entity is taken as given)."""
        out = torch.zeros(heads.numel(), graph.num_entities)
        matrices = self._current(graph)
        for d in directions.unique().tolist():
            rows = (directions == d).nonzero().flatten()
            relation, back = graph.relation_of(d)
            target = self.predictor.targets[graph.relation_ids[relation]]
            answers = self._side(graph, target, tail=not back)
            starts = heads[rows].numpy()
            indices, known = self._known_patterns(graph, target)
            walks = np.zeros((len(target.patterns), starts.size, answers.size), dtype=np.float32)
            if known:
                walked = [reversed_pattern(p, graph.num_relations) for p in known] if back else known
                walks[indices] = matrices.walks(starts, walked, answers)
            out_degree, in_degree = matrices.degrees[relation]
            start_degree = (in_degree if back else out_degree)[starts][:, None]
            answer_degree = (out_degree if back else in_degree)[answers][None, :]
            head_degree, tail_degree = (
                (answer_degree, start_degree) if back else (start_degree, answer_degree)
            )
            shape = (starts.size, answers.size)
            logits = target.logits(
                walks, np.broadcast_to(head_degree, shape), np.broadcast_to(tail_degree, shape)
            )
            scores = torch.sigmoid(logits)
            if target.tail_kinds if back else target.head_kinds:  # a start of the wrong kind has no answers
                scores *= torch.from_numpy(np.isin(starts, self._side(graph, target, tail=back)))[:, None]
            out[rows[:, None], torch.from_numpy(answers)[None, :]] = scores
        return out

    def explain_many(
        self, graph: KnowledgeGraph, triples: Sequence[tuple[int, int, int]], paths: int = 3
    ) -> list[tuple[Evidence, ...]]:
        """The evidence of ``(head, relation, tail)`` triples: for each pattern carrying at least 5 % of the
        triple's evidence (its share of the positive pattern contributions to the logit), up to two of its
        paths, each weighted by that share and labelled with the pattern."""
        matrices = self._current(graph)
        shares: dict[int, Tensor] = {}  # triple -> (P,) each pattern's share of its evidence
        by_relation: dict[int, list[int]] = {}
        for i, (_, relation, _) in enumerate(triples):
            by_relation.setdefault(relation, []).append(i)
        for relation, members in by_relation.items():
            target = self.predictor.targets[graph.relation_ids[relation]]
            pairs = np.array([(triples[i][0], triples[i][2]) for i in members]).reshape(-1, 2)
            indices, known = self._known_patterns(graph, target)
            walks = np.zeros((len(target.patterns), len(members)), dtype=np.float32)
            if known:
                walks[indices] = matrices.pair_walks(known, pairs)
            parts = target.contributions(walks).clamp_min(0.0)  # (K, P)
            for row, i in enumerate(members):
                total = float(parts[row].sum())
                shares[i] = parts[row] / total if total > 0 else parts[row]
        found = []
        for i, (head, relation, tail) in enumerate(triples):
            target = self.predictor.targets[graph.relation_ids[relation]]
            topics = torch.zeros(graph.num_entities)
            topics[head] = 1.0
            evidence: list[Evidence] = []
            for p in torch.argsort(shares[i], descending=True)[: max(paths, 1)].tolist():
                share = float(shares[i][p])
                if share < MIN_SHARE:
                    break
                directions = self._directions(graph, target.patterns[p])
                assert directions is not None
                walker = path_walker(graph, topics, directions)
                for walk in walker.walk(tail, len(directions), EXAMPLES_PER_PATTERN):
                    evidence.append(Evidence(walk.hops, share, pattern_label(graph, walk.hops)))
            found.append(tuple(evidence))
        return found

    def _known_patterns(
        self, graph: KnowledgeGraph, target: RelationPatterns
    ) -> tuple[list[int], list[tuple[int, ...]]]:
        """The positions of ``target``'s patterns whose relations the graph has, and their directions."""
        found = [(i, self._directions(graph, p)) for i, p in enumerate(target.patterns)]
        known = [(i, d) for i, d in found if d is not None]
        return [i for i, _ in known], [d for _, d in known]

    def _directions(
        self, graph: KnowledgeGraph, pattern: tuple[tuple[str, bool], ...]
    ) -> tuple[int, ...] | None:
        """The pattern as graph directions; None when the graph no longer has one of its relations."""
        out = []
        for relation_id, back in pattern:
            r = graph.relation_index.get(relation_id)
            if r is None:
                return None
            out.append(r + graph.num_relations if back else r)
        return tuple(out)

    def _current(self, graph: KnowledgeGraph) -> DirectionMatrices:
        version = _version(graph)
        if self._matrices is None or self._matrices[0] != version:
            self._matrices = version, DirectionMatrices(graph, self.predictor.config.damping)
            self._candidates.clear()
        return self._matrices[1]

    def _side(self, graph: KnowledgeGraph, target: RelationPatterns, tail: bool) -> np.ndarray:
        key = (_version(graph), target.relation, tail)
        found = self._candidates.get(key)
        if found is None:
            kinds, profile, threshold = (
                (target.tail_kinds, target.tail_profile, target.tail_threshold)
                if tail
                else (target.head_kinds, target.head_profile, target.head_threshold)
            )
            directions = {}
            for hop, share in profile.items():
                found_direction = self._directions(graph, (hop,))
                if found_direction is not None:
                    directions[found_direction[0]] = share
            found = candidates(graph, kinds, directions, threshold)
            relation = graph.relation_index.get(target.relation)
            if relation is not None:  # entities in that role already are candidates whatever their profile
                heads, rels, tails = graph.edges
                found = np.union1d(found, (tails if tail else heads)[rels == relation].numpy())
            self._candidates[key] = found
        return found


def pattern_label(graph: KnowledgeGraph, hops: Sequence) -> str:
    """``Compound -binds-> Gene -associates-> Disease``: a path's pattern, by its entities' kinds (``·`` where
    untyped) and its relations' names."""
    first = hops[0]
    start = first.tail if first.reversed else first.head
    parts = [graph.types[start] or "·"]
    for hop in hops:
        record = graph.relation_records.get(hop.relation)
        name = (record.name if record and record.name else None) or graph.relation_ids[hop.relation]
        arrow = f"<-{name}-" if hop.reversed else f"-{name}->"
        parts += [arrow, graph.types[hop.head if hop.reversed else hop.tail] or "·"]
    return " ".join(parts)


def _version(graph: KnowledgeGraph) -> tuple[int, ...]:
    return graph.num_entities, graph.num_relations, graph.num_edges, graph.retractions, graph.type_changes
