"""Training and filtered-ranking evaluation of the link predictor.

Triples are ``(T, 3)`` long tensors of ``(head, relation, tail)`` indices of one :class:`KnowledgeGraph`.
A query is ``(entity, directed relation)``: ``(h, r, ?)`` is ``(h, r)`` and ``(?, r, t)`` is ``(t, r + R)``.
"""

from __future__ import annotations

import copy
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.models.link_predictor import LinkPredictor, LinkPredictorConfig

ScoreFn = Callable[[Tensor, Tensor], Tensor]  # (heads (B,), directions (B,)) -> logits (B, N)


@dataclass
class LinkTrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-3
    adversarial_temperature: float = 4.0  # negatives weighted by softmax(logit / T): hard ones count more
    dim: int = 32
    layers: int = 6
    seed: int = 0


@dataclass
class LinkMetrics:
    queries: int  # both directions of every triple
    mrr: float
    hits_at_1: float
    hits_at_3: float
    hits_at_10: float


def both_directions(triples: Tensor, num_relations: int) -> Tensor:
    """``(2T, 3)`` queries ``(entity, direction, answer)``: every tail query, then every head query."""
    h, r, t = triples.unbind(1)
    return torch.cat([torch.stack([h, r, t], 1), torch.stack([t, r + num_relations, h], 1)])


class KnownAnswers:
    """Every true answer of every query, for filtering: ``(entity, direction) -> answers``."""

    def __init__(self, triples: Iterable[Tensor], num_relations: int) -> None:
        self._answers: dict[tuple[int, int], list[int]] = defaultdict(list)
        for part in triples:
            for e, d, a in both_directions(part, num_relations).tolist():
                self._answers[(e, d)].append(a)

    def mask(self, entities: Tensor, directions: Tensor, num_entities: int) -> Tensor:
        """``(B, N)`` True where an entity is a known answer of the query."""
        rows, cols = [], []
        for i, (e, d) in enumerate(zip(entities.tolist(), directions.tolist(), strict=True)):
            found = self._answers.get((e, d), ())
            rows.extend([i] * len(found))
            cols.extend(found)
        out = torch.zeros(entities.numel(), num_entities, dtype=torch.bool)
        out[torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)] = True
        return out


def filtered_ranks(
    score: ScoreFn, queries: Tensor, known: KnownAnswers, num_entities: int, batch_size: int = 64
) -> Tensor:
    """Rank of each query's answer among all entities, other known answers removed (the filtered protocol).

    Ties count half (the mean of the optimistic and pessimistic rank), so a constant scorer earns no credit.

    Args:
        score: logits of every entity for a batch of queries.
        queries: ``(Q, 3)`` ``(entity, direction, answer)``.
        known: every true triple (train, valid and test) for the filter.

    Shapes:
        returns ``(Q,)`` float ranks, 1 = best.
    """
    ranks = []
    for start in range(0, queries.shape[0], batch_size):
        entity, direction, answer = queries[start : start + batch_size].unbind(1)
        logits = score(entity, direction)  # (B, N)
        rows = torch.arange(entity.numel())
        true = logits[rows, answer].unsqueeze(1)
        others = known.mask(entity, direction, num_entities)
        others[rows, answer] = False
        candidates = ~others
        greater = ((logits > true) & candidates).sum(1)
        equal = ((logits == true) & candidates).sum(1) - 1
        ranks.append(1 + greater + equal / 2)
    return torch.cat(ranks).float() if ranks else torch.empty(0)


def link_metrics(ranks: Tensor) -> LinkMetrics:
    if ranks.numel() == 0:
        return LinkMetrics(0, 0.0, 0.0, 0.0, 0.0)
    return LinkMetrics(
        ranks.numel(),
        float((1.0 / ranks).mean()),
        float((ranks <= 1).float().mean()),
        float((ranks <= 3).float().mean()),
        float((ranks <= 10).float().mean()),
    )


def edge_value_keys(graph: KnowledgeGraph) -> Tensor:
    """One integer per value of the graph's stacked transitions: ``(direction * N + dst) * N + src``."""
    sources, directions, destinations = graph.stacked_transitions().edge_keys()
    n = graph.num_entities
    return (directions * n + destinations) * n + sources


def hide_edges(graph: KnowledgeGraph, keys: Tensor, triples: Tensor) -> Tensor:
    """``(nnz,)`` edge values with ``triples`` (both directions) set to 0 (a query must not see its edge)."""
    n, r = graph.num_entities, graph.num_relations
    h, rel, t = triples.unbind(1)
    hidden = torch.cat([(rel * n + t) * n + h, ((rel + r) * n + h) * n + t])
    return (~torch.isin(keys, hidden)).to(torch.float32)


def adversarial_loss(logits: Tensor, answers: Tensor, known: Tensor, temperature: float) -> Tensor:
    """Binary cross-entropy of the answer against every non-answer, negatives weighted self-adversarially.

    Args:
        logits: ``(B, N)``; answers: ``(B,)``; known: ``(B, N)`` True for every true answer (never negatives).
    """
    rows = torch.arange(logits.shape[0])
    positive = F.softplus(-logits[rows, answers])
    weights = torch.softmax((logits.detach() / temperature).masked_fill(known, -math.inf), dim=1)
    negative = (F.softplus(logits) * weights).sum(1)
    return ((positive + negative) / 2).mean()


def train_link_predictor(
    graph: KnowledgeGraph,
    train: Tensor,
    config: LinkTrainConfig | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    valid: Tensor | None = None,
) -> LinkPredictor:
    """Fit a :class:`LinkPredictor` on ``train`` triples of ``graph`` (whose edges should be those triples).

    Each batch's own triples are hidden from the graph for that batch, so the model learns to infer a fact
    from the rest of the graph rather than to read it off its edge.

    Args:
        on_step: called as ``on_step(step, total_steps, loss)`` after every optimiser step (progress bars).
        valid: optional ``(V, 3)`` validation triples (not edges of ``graph``): after every epoch their
            filtered MRR is measured and the weights of the best epoch are kept.
    """
    config = config or LinkTrainConfig()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    n, r = graph.num_entities, graph.num_relations
    model = LinkPredictor(LinkPredictorConfig(r, config.dim, config.layers))
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    stacked = graph.stacked_transitions()
    keys = edge_value_keys(graph)
    known = KnownAnswers([train], r)
    order = list(range(train.shape[0]))
    steps_per_epoch = math.ceil(len(order) / config.batch_size)
    total, step = config.epochs * steps_per_epoch, 0
    valid_queries = both_directions(valid, r) if valid is not None and valid.numel() else None
    valid_known = KnownAnswers([train, valid], r) if valid_queries is not None else None
    best: tuple[float, dict[str, Tensor]] | None = None
    for _ in range(config.epochs):
        model.train()
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            batch = train[order[start : start + config.batch_size]]
            queries = both_directions(batch, r)
            flip = torch.rand(batch.shape[0]) < 0.5  # half tail queries, half head queries
            queries = torch.where(flip.unsqueeze(1), queries[batch.shape[0] :], queries[: batch.shape[0]])
            entity, direction, answer = queries.unbind(1)
            logits = model(stacked, n, entity, direction, hide_edges(graph, keys, batch))
            loss = adversarial_loss(
                logits, answer, known.mask(entity, direction, n), config.adversarial_temperature
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            if on_step is not None:
                on_step(step, total, loss.item())
        if valid_queries is not None and valid_known is not None:
            model.eval()
            with torch.no_grad():
                ranks = filtered_ranks(lambda e, d: model(stacked, n, e, d), valid_queries, valid_known, n)
            mrr = link_metrics(ranks).mrr
            if best is None or mrr > best[0]:
                best = (mrr, copy.deepcopy(model.state_dict()))
    if best is not None:
        model.load_state_dict(best[1])
    return model.eval()


@torch.no_grad()
def calibrate(model: LinkPredictor, score: ScoreFn, queries: Tensor, known: KnownAnswers, n: int) -> None:
    """Fit ``probability = sigmoid(a * logit + b)`` on held-out queries (Platt scaling) into the model.

    Every entity that is not another known answer is a labelled example: 1 for the query's answer, else 0.
    """
    logits, labels = [], []
    for start in range(0, queries.shape[0], 64):
        entity, direction, answer = queries[start : start + 64].unbind(1)
        batch = score(entity, direction)
        rows = torch.arange(entity.numel())
        keep = ~known.mask(entity, direction, n)
        keep[rows, answer] = True
        target = torch.zeros_like(batch)
        target[rows, answer] = 1.0
        logits.append(batch[keep])
        labels.append(target[keep])
    if not logits:
        return
    x, y = torch.cat(logits), torch.cat(labels)
    params = torch.tensor([1.0, 0.0], requires_grad=True)
    optimiser = torch.optim.LBFGS([params], max_iter=100)

    def closure() -> Tensor:
        optimiser.zero_grad()
        with torch.enable_grad():
            loss = F.binary_cross_entropy_with_logits(params[0] * x + params[1], y)
            loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    model.calibration.copy_(params.detach())
