"""Capped subgraphs: reason on the region around a batch's topic entities instead of the whole graph.

Propagation costs the whole graph's edges times the batch size. A question of ``k`` hops only ever moves
mass inside the ``k``-hop neighbourhood of its topic entities, so a batch can run on the subgraph induced by
the union of its questions' neighbourhoods, with the same answers (:func:`reason_capped` maps them back to
the whole graph's indices). On a large graph a neighbourhood can hold
much of the graph (three hops from anything reach a hub), so each question keeps at most ``max_entities``
entities: its topic entities first, then the entities a random walk with restart from them (personalised
PageRank, truncated at ``k`` steps) visits most.

The walk runs over the explored region only: a block of ``(question, entity, mass)`` triples moves one step
by slicing the CSR rows of its entities (every relation, both directions), so the work is the number of
edges followed, never the whole graph. ``max_edges`` bounds it further: a question whose region explodes
follows, per step, the edges of its entities of highest mass per edge first, as push-based approximate
PageRank does, and stops when it has followed ``max_edges`` edges.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.evidence import EvidenceHop
from graphfuse.gnn.inference.reasoner import Answer, Question, Reasoning
from graphfuse.gnn.inference.relation_vectors import RelationVectors

__all__ = [
    "CappedSubgraph",
    "Exploration",
    "Reasoner",
    "SubgraphConfig",
    "capped_subgraph",
    "explore",
    "reason_capped",
    "select_entities",
]


@dataclass
class SubgraphConfig:
    max_entities: int = 0  # entities kept per question; 0 = no cap (reason on the whole graph)
    hops: int = 3  # neighbourhood radius and walk steps: the reasoner's depth (a QuestionReasoner's hops)
    restart: float = 0.15  # restart probability of the random walk that ranks a region's entities
    max_edges: int | None = None  # edges one question's walk may follow per step; None = 4 x max_entities,
    # 0 = no limit (the exact k-hop neighbourhood, however large)
    whole_graph_fraction: float = 0.25  # a union holding more of the graph than this runs on the whole graph
    min_graph_edges: int = 0  # graphs with fewer edges always run whole (the cap is for very large graphs)

    def __post_init__(self) -> None:
        if self.max_entities < 0 or self.hops < 0 or (self.max_edges or 0) < 0:
            raise ValueError(
                f"Expected non-negative 'max_entities', 'hops' and 'max_edges' (got {self.max_entities}, "
                f"{self.hops}, {self.max_edges})"
            )
        if not 0.0 < self.restart < 1.0:
            raise ValueError(f"Expected 'restart' in (0, 1) (got {self.restart})")

    @property
    def edge_budget(self) -> int:
        """Edges one question's walk may follow per step (0 = no limit)."""
        if self.max_edges is not None:
            return self.max_edges
        return 4 * self.max_entities


class Reasoner(Protocol):
    """What :func:`reason_capped` runs: :class:`~graphfuse.gnn.inference.reasoner.ZeroShotReasoner`,
    ``TrainedReasoner``."""

    def reason(
        self,
        graph: KnowledgeGraph,
        relation_vectors: Tensor | RelationVectors,
        questions: Sequence[Question],
        entity_vectors: Tensor | None = None,
    ) -> list[Reasoning]: ...


@dataclass(frozen=True)
class Exploration:
    """The explored region of every question: one row per ``(question, entity)`` pair, sorted by both.

    ``score`` is the truncated personalised PageRank ``sum_t restart (1 - restart)^t P^t s`` of the walk
    from the question's seeds ``s`` (uniform over them), ``t = 0 .. hops``; seeds are flagged apart.
    """

    question: Tensor  # (P,) long
    entity: Tensor  # (P,) long, global indices
    score: Tensor  # (P,) float
    seed: Tensor  # (P,) bool
    followed_edges: int  # edges the walk followed, all questions and steps together

    def sizes(self, num_questions: int) -> Tensor:
        """``(B,)`` entities in each question's region."""
        return torch.bincount(self.question, minlength=num_questions)


@torch.no_grad()
def explore(
    graph: KnowledgeGraph,
    seeds: Sequence[Sequence[int] | Tensor],
    hops: int,
    restart: float,
    max_edges: int = 0,
) -> Exploration:
    """The ``hops``-hop neighbourhood of each question's seeds over the undirected graph, with walk scores.

    Args:
        graph: the whole graph.
        seeds: per question, the global indices of its topic entities (at least one each).
        hops: neighbourhood radius and walk steps.
        restart: the walk's restart probability.
        max_edges: edges one question may follow per step (0 = no limit: the exact neighbourhood). Over the
            limit, the entities of highest mass per edge are walked from first; the rest keep their mass
            but are not walked from.
    """
    num_entities, num_questions = graph.num_entities, len(seeds)
    question, entity = _check_seeds(seeds, num_entities)
    if question.numel() == 0:
        empty = torch.empty(0, dtype=torch.long)
        return Exploration(empty, empty, torch.empty(0), torch.empty(0, dtype=torch.bool), 0)
    stacked = graph.stacked_transitions()
    # (crow, col, destination) of each part (merged, delta): crow/col are the part's (N, M) transpose, so
    # entity u's slice lists the (node, direction) rows it feeds; masked (retracted) edges are walked too
    parts = [stacked.merged] + ([stacked.delta] if stacked.delta is not None else [])
    walks = [(p.transposed.crow_indices(), p.transposed.col_indices(), p.rows) for p in parts]

    seed_keys = question * num_entities + entity  # sorted: a pair is keyed question * N + entity
    mass = 1.0 / torch.bincount(question, minlength=num_questions)[question].float()  # (P,) at step 0
    keys_of_step, scores_of_step = [seed_keys], [restart * mass]
    followed = 0
    for _ in range(hops):
        counts = [crow[entity + 1] - crow[entity] for crow, _, _ in walks]  # per part, (P,)
        count = torch.stack(counts).sum(0)  # (P,)
        spread = mass / count.clamp_min(1)  # (P,) mass sent along each edge
        walked = count > 0
        if max_edges:
            walked &= _within_budget(question, spread, count, max_edges, num_questions)
        source = walked.nonzero().flatten()  # (S,)
        total = int(count[source].sum())
        if total == 0:
            break
        followed += total
        owners, reached = [], []
        for (crow, col, destination), part_count in zip(walks, counts, strict=True):
            owner, edge = _edges_of(source, crow[entity], part_count)
            owners.append(owner)
            reached.append(destination[col[edge]])
        owner = torch.cat(owners)  # (T,) pair of each followed edge
        keys = question[owner] * num_entities + torch.cat(reached)  # (T,)
        keys, inverse = torch.unique(keys, return_inverse=True)  # coalesce: one pair per (question, entity)
        mass = torch.zeros(keys.numel()).index_add_(0, inverse, spread[owner]) * (1.0 - restart)
        question, entity = keys // num_entities, keys % num_entities
        keys_of_step.append(keys)
        scores_of_step.append(restart * mass)

    keys, inverse = torch.unique(torch.cat(keys_of_step), return_inverse=True)
    score = torch.zeros(keys.numel()).index_add_(0, inverse, torch.cat(scores_of_step))
    position = torch.searchsorted(seed_keys, keys).clamp_(max=seed_keys.numel() - 1)
    seed = seed_keys[position] == keys
    return Exploration(keys // num_entities, keys % num_entities, score, seed, followed)


def _edges_of(source: Tensor, start: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """``(owner, edge)`` of every edge the pairs ``source`` walk: the pair it belongs to and its position in
    the CSR columns, pair ``p``'s edges being ``start[p] .. start[p] + count[p]``."""
    per_source = count[source]
    total = int(per_source.sum())
    owner = torch.repeat_interleave(source, per_source, output_size=total)  # (T,)
    first = torch.cumsum(per_source, 0) - per_source  # (S,) position of each source's first edge
    offset = torch.arange(total) - torch.repeat_interleave(first, per_source, output_size=total)
    return owner, start[owner] + offset


def _by_priority(question: Tensor, priority: Tensor) -> tuple[Tensor, Tensor]:
    """Rows ordered by question, then by ``priority`` descending (ties: earlier row first), and for each
    ordered row the position where its question's rows begin."""
    order = torch.argsort(priority, descending=True, stable=True)
    order = order[torch.argsort(question[order], stable=True)]
    grouped = question[order]
    return order, torch.searchsorted(grouped, grouped)


def _within_budget(
    question: Tensor, priority: Tensor, count: Tensor, budget: int, num_questions: int
) -> Tensor:
    """``(P,)`` the pairs to walk from: all of a question's when their ``count`` fits the budget, else its
    highest-``priority`` pairs while they fit (its first pair always)."""
    spent = torch.zeros(num_questions, dtype=torch.long).index_add_(0, question, count)
    over = (spent > budget)[question]  # (P,)
    keep = torch.ones_like(over)
    if not bool(over.any()):
        return keep
    rows = over.nonzero().flatten()
    order, begin = _by_priority(question[rows], priority[rows])
    counts = count[rows][order]
    running = torch.cumsum(counts, 0)
    within = running - (running[begin] - counts[begin])  # edges of the question's pairs up to this one
    keep[rows[order]] = (within <= budget) | (torch.arange(rows.numel()) == begin)
    return keep


@torch.no_grad()
def select_entities(
    graph: KnowledgeGraph, seeds: Sequence[Sequence[int] | Tensor], config: SubgraphConfig
) -> tuple[Tensor, Exploration | None]:
    """The entities a batch keeps, ascending: each question's whole region when it holds at most
    ``max_entities``, else its seeds and its highest-scoring entities, ``max_entities`` in all; the batch
    keeps the union.

    Returns:
        ``(entities, exploration)``; with ``max_entities == 0`` every entity and no exploration.
    """
    if config.max_entities == 0:
        return torch.arange(graph.num_entities), None
    found = explore(graph, seeds, config.hops, config.restart, config.edge_budget)
    over = (found.sizes(len(seeds)) > config.max_entities)[found.question]  # (P,)
    keep = ~over
    rows = over.nonzero().flatten()
    if rows.numel():
        # Within an over-cap question: seeds first, then by score (ties: lower entity index first).
        order, begin = _by_priority(
            found.question[rows], found.score[rows].masked_fill(found.seed[rows], float("inf"))
        )
        rank = torch.arange(rows.numel()) - begin
        keep[rows[order]] = (rank < config.max_entities) | found.seed[rows[order]]
    return torch.unique(found.entity[keep]), found


@dataclass(frozen=True)
class CappedSubgraph:
    """The subgraph one batch reasons on and the way back to the whole graph's indices."""

    graph: KnowledgeGraph  # the induced subgraph, same relations in the same order
    entities: Tensor  # (n,) ascending: sub-entity i is global entity entities[i]

    def question(self, question: Question) -> Question:
        """``question`` with its topic entities in sub-indices (they must be kept)."""
        wanted = torch.tensor([e for e, _ in question.topics], dtype=torch.long)
        at = torch.searchsorted(self.entities, wanted).clamp_(max=max(self.entities.numel() - 1, 0))
        if self.entities.numel() == 0 or not bool((self.entities[at] == wanted).all()):
            raise ValueError("Expected every topic entity of the question inside the subgraph")
        topics = tuple((i, w) for i, (_, w) in zip(at.tolist(), question.topics, strict=True))
        return dataclasses.replace(question, topics=topics)

    def reasoning(self, reasoning: Reasoning) -> Reasoning:
        """``reasoning`` on the subgraph with answers and evidence in global indices."""
        to_global = self.entities.tolist()

        def hop(h: EvidenceHop) -> EvidenceHop:
            return dataclasses.replace(h, head=to_global[h.head], tail=to_global[h.tail])

        def answer(a: Answer) -> Answer:
            evidence = tuple(dataclasses.replace(e, hops=tuple(hop(h) for h in e.hops)) for e in a.evidence)
            return dataclasses.replace(a, entity=to_global[a.entity], evidence=evidence)

        return dataclasses.replace(reasoning, answers=[answer(a) for a in reasoning.answers])


def capped_subgraph(
    graph: KnowledgeGraph, seeds: Sequence[Sequence[int] | Tensor], config: SubgraphConfig
) -> CappedSubgraph | None:
    """The induced subgraph a batch with these seeds should reason on, or ``None`` for the whole graph (no
    cap, or a union holding more than ``whole_graph_fraction`` of the entities)."""
    if config.max_entities == 0 or graph.num_edges < config.min_graph_edges:
        return None
    entities, _ = select_entities(graph, seeds, config)
    if entities.numel() > config.whole_graph_fraction * graph.num_entities:
        return None
    return CappedSubgraph(graph.subgraph(entities), entities)


def reason_capped(
    reasoner: Reasoner,
    graph: KnowledgeGraph,
    relation_vectors: Tensor | RelationVectors,
    questions: Sequence[Question],
    config: SubgraphConfig,
    entity_vectors: Tensor | None = None,
) -> list[Reasoning]:
    """``reasoner.reason`` on the batch's capped subgraph, answers and evidence in global entity indices.

    Seeds are the questions' topic entities. Without a cap, or when the union holds more than
    ``whole_graph_fraction`` of the entities, the reasoner runs on the whole graph unchanged. When ``hops``
    is at least the reasoner's depth and neither the cap nor the walk budget cut a region, the answers are
    the whole graph's: propagation never leaves the ``hops``-hop neighbourhood, whose edges are all kept.
    """
    seeds = [[e for e, _ in q.topics] for q in questions]
    sub = capped_subgraph(graph, seeds, config) if questions and all(seeds) else None
    if sub is None:
        return reasoner.reason(graph, relation_vectors, questions, entity_vectors)
    sub_vectors = entity_vectors[sub.entities] if entity_vectors is not None else None
    results = reasoner.reason(sub.graph, relation_vectors, [sub.question(q) for q in questions], sub_vectors)
    return [sub.reasoning(r) for r in results]


def _check_seeds(seeds: Sequence[Sequence[int] | Tensor], num_entities: int) -> tuple[Tensor, Tensor]:
    """``(question, entity)`` of every distinct seed, sorted by question then entity."""
    if not seeds:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    lists = [torch.as_tensor(s, dtype=torch.long).flatten() for s in seeds]
    empty = [b for b, s in enumerate(lists) if s.numel() == 0]
    if empty:
        raise ValueError(f"Expected at least one seed entity per question (got none for questions {empty})")
    entity = torch.cat(lists)
    if int(entity.min()) < 0 or int(entity.max()) >= num_entities:
        raise ValueError(
            f"Expected seed entities in [0, {num_entities}) (got [{int(entity.min())}, {int(entity.max())}])"
        )
    question = torch.repeat_interleave(torch.tensor([s.numel() for s in lists]))
    keys = torch.unique(question * num_entities + entity)
    return keys // num_entities, keys % num_entities
