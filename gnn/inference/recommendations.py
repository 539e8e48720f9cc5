"""Serving a fitted recommender on a live interaction graph: "what will this user interact with next".

The model (:class:`~graphfuse.gnn.models.graph_filter.GraphFilterRecommender`) holds the global structures of
its fit; a user's own interactions are read from the live graph at every query, so an interaction ingested a
moment ago changes that user's recommendations at once. Users and items are the entities of the relation's
node types; only items are recommended, and a user's known items never are.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.evidence import Evidence, EvidenceHop
from graphfuse.gnn.inference.link_predictions import InferredTriple, LinkPattern
from graphfuse.gnn.models.graph_filter import GraphFilterRecommender


@dataclass(frozen=True)
class InteractionSchema:
    """The relation a recommender serves and the node types of its two ends."""

    relation: str
    user_type: str
    item_type: str


def interaction_pairs(
    graph: KnowledgeGraph, schema: InteractionSchema
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(users, items, user_entities, item_entities)``: the stored interactions as positions into the
    users and items of the schema's types (entity indices, ascending), for fitting a model."""
    relation = graph.relation_index.get(schema.relation)
    if relation is None:
        raise ValueError(f"the graph has no relation {schema.relation!r}")
    user_entities = graph.entities_of_type(schema.user_type)
    item_entities = graph.entities_of_type(schema.item_type)
    heads, rels, tails = graph.edges
    chosen = rels == relation
    heads, tails = heads[chosen], tails[chosen]
    user_position = _positions(user_entities, graph.num_entities)
    item_position = _positions(item_entities, graph.num_entities)
    users, items = user_position[heads], item_position[tails]
    typed = (users >= 0) & (items >= 0)
    return users[typed], items[typed], user_entities, item_entities


def _positions(entities: Tensor, size: int) -> Tensor:
    """``(size,)``: the position of each entity in ``entities``, -1 for the others."""
    position = torch.full((size,), -1, dtype=torch.long)
    position[entities] = torch.arange(entities.numel())
    return position


@dataclass(frozen=True)
class Calibration:
    """The probability that an item is among the user's next interactions, from its score relative to the
    user's best (``score / top``) and its 0-based rank: ``sigmoid(a log1p(score/top) + b log1p(rank) + c)``,
    fitted on held-out interactions."""

    a: float = 4.0
    b: float = -0.5
    c: float = -2.0

    @staticmethod
    def features(scores: Tensor, top: Tensor, ranks: Tensor) -> tuple[Tensor, Tensor]:
        """``(log1p(score / top), log1p(rank))``, what ``a`` and ``b`` weigh (fitting uses them too)."""
        relative = (scores / top.clamp_min(1e-12)).clamp(0, 1)
        return torch.log1p(relative), torch.log1p(ranks.float())

    def __call__(self, scores: Tensor, top: Tensor, ranks: Tensor) -> Tensor:
        relative, rank = self.features(scores, top, ranks)
        return torch.sigmoid(self.a * relative + self.b * rank + self.c)

    def ranked(self, values: Tensor) -> Tensor:
        """Probabilities of ranked scores ``(B, K)`` (each row descending, as ``topk`` gives them); -inf
        where a score is not finite (no candidate)."""
        ranks = torch.arange(values.shape[1]).expand_as(values)
        probabilities = self(values, values[:, :1].clamp_min(0), ranks)
        probabilities[~torch.isfinite(values)] = float("-inf")
        return probabilities


@dataclass(frozen=True)
class TextCalibration:
    """The probability for a cold item (one the fitted graph cannot score) from the cosine between its name
    vector and the user's profile (the normalised mean name vector of their items): ``sigmoid(a cos + c)``,
    fitted on held-out interactions with items held out whole."""

    a: float
    c: float

    def __call__(self, cosine: Tensor) -> Tensor:
        return torch.sigmoid(self.a * cosine + self.c)


class Recommendation:
    """A fitted recommender bound to the ids it was fitted with.

    Args:
        model: the fitted model.
        schema: the relation and node types it serves.
        user_ids, item_ids: entity ids of the model's users and items, in model order.
        calibration: maps scores to probabilities.
        description: what the server reports for this recommender.
        text: scores cold items by their names; None: cold items are not recommended.
    """

    def __init__(
        self,
        model: GraphFilterRecommender,
        schema: InteractionSchema,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        calibration: Calibration,
        description: str,
        text: TextCalibration | None = None,
    ) -> None:
        if len(item_ids) != model.num_items or len(user_ids) != model.num_users:
            raise ValueError(
                f"Expected {model.num_users} user ids and {model.num_items} item ids for this model "
                f"(got {len(user_ids)} and {len(item_ids)})"
            )
        self.model = model
        self.schema = schema
        self.user_ids = list(user_ids)
        self.item_ids = list(item_ids)
        self.calibration = calibration
        self.description = description
        self.text = text
        self._normalized = model.normalized_interactions()  # (U_fit, I) CSR
        self._by_item = model.normalized_interactions_by_item()  # (I, U_fit) CSR
        self._fitted_degree = torch.diff(
            self._by_item.crow_indices()
        )  # (I,) interactions per item at the fit
        self._bound: tuple[tuple[int, int, int], Tensor, Tensor] | None = None  # see _bind

    def to(self, device: torch.device | str) -> Recommendation:
        """Score on ``device`` (its model moved there); the evidence walks and the bookkeeping stay on the
        CPU. Returns this recommender."""
        self.model = self.model.to(device)
        return self

    def interactions(self, graph: KnowledgeGraph) -> int:
        """How many interactions of this recommender's relation the graph stores now."""
        relation = graph.relation_index.get(self.schema.relation)
        return 0 if relation is None else int((graph.edges[1] == relation).sum())

    def stale(self, graph: KnowledgeGraph, share: float) -> bool:
        """Whether the graph's interactions moved by more than ``share`` of those fitted on, or it has items
        the model does not know."""
        fitted = int(self._normalized.col_indices().numel())
        moved = abs(self.interactions(graph) - fitted) > share * max(fitted, 1)
        return moved or graph.entities_of_type(self.schema.item_type).numel() != self.model.num_items

    def refit(self, graph: KnowledgeGraph) -> tuple[Tensor, Tensor, list[str], list[str]]:
        """What a refit reads from the live graph (call where the graph is not changing): interaction pairs
        and the user and item ids they index."""
        users, items, user_entities, item_entities = interaction_pairs(graph, self.schema)
        ids = graph.entity_ids
        return (
            users,
            items,
            [ids[e] for e in user_entities.tolist()],
            [ids[e] for e in item_entities.tolist()],
        )

    def refitted(
        self, users: Tensor, items: Tensor, user_ids: list[str], item_ids: list[str]
    ) -> Recommendation:
        """The same recommender fitted again on ``refit``'s pairs (same config, calibration and device)."""
        model = GraphFilterRecommender.fit(users, items, len(user_ids), len(item_ids), self.model.config)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        description = (
            f"{self.description.split('; refreshed')[0]}; refreshed {stamp} on {users.numel()} interactions"
        )
        fitted = Recommendation(
            model, self.schema, user_ids, item_ids, self.calibration, description, self.text
        )
        return fitted.to(self.model.vectors.device)

    def checkpoint(self) -> dict[str, Any]:
        return {
            "kind": "recommender",
            "model": self.model.state_dict(),
            "schema": dataclasses.asdict(self.schema),
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "calibration": dataclasses.asdict(self.calibration),
            "text": dataclasses.asdict(self.text) if self.text else {},
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], description: str) -> Recommendation:
        return cls(
            GraphFilterRecommender.from_state_dict(checkpoint["model"]),
            InteractionSchema(**checkpoint["schema"]),
            checkpoint["user_ids"],
            checkpoint["item_ids"],
            Calibration(**checkpoint["calibration"]),
            description,
            TextCalibration(**checkpoint["text"]) if checkpoint.get("text") else None,
        )

    def serves(self, graph: KnowledgeGraph, pattern: LinkPattern) -> bool:
        """Whether ``pattern`` asks this recommender for a user's next items: its relation with any head (a
        head that is no user is the caller's error), or no relation with a user as head."""
        if pattern.head is None or pattern.tail is not None:
            return False
        if pattern.relation is None:
            return self.is_user(graph, pattern.head)
        return graph.relation_ids[pattern.relation] == self.schema.relation

    def is_user(self, graph: KnowledgeGraph, entity: int) -> bool:
        return graph.types[entity] == self.schema.user_type

    # ------------------------------------------------------------------------------------ live rows
    def _bind(self, graph: KnowledgeGraph) -> tuple[Tensor, Tensor]:
        """``(item entity of each model item (-1: gone or retyped), model item position of every entity
        (-1: none))``, recomputed when the graph gains entities or types change."""
        key = (id(graph), graph.num_entities, graph.type_changes)
        if self._bound is None or self._bound[0] != key:
            index, types, wanted = graph.entity_index, graph.types, self.schema.item_type
            item_entity = torch.tensor(
                [e if (e := index.get(i, -1)) >= 0 and types[e] == wanted else -1 for i in self.item_ids],
                dtype=torch.long,
            )
            typed = item_entity >= 0
            item_position = torch.full((graph.num_entities,), -1, dtype=torch.long)
            item_position[item_entity[typed]] = typed.nonzero().flatten()
            self._bound = (key, item_entity, item_position)
        return self._bound[1], self._bound[2]

    def known_items(self, graph: KnowledgeGraph, users: Sequence[int]) -> list[Tensor]:
        """The item entities each user has interacted with, ascending."""
        items = graph.entities_of_type(self.schema.item_type)  # ascending
        if not items.numel():
            return [items for _ in users]
        distinct, inverse = torch.unique(torch.tensor(list(users), dtype=torch.long), return_inverse=True)
        positions, which = graph.edges_of_heads(distinct)
        _, relations, tails = graph.edges
        interacted = tails[positions]
        is_item = items[torch.searchsorted(items, interacted).clamp_(max=items.numel() - 1)] == interacted
        keep = is_item & (relations[positions] == graph.relation_index[self.schema.relation])
        n = graph.num_entities
        pairs = torch.unique(which[keep] * n + interacted[keep])  # by user, then item; an edge is stored once
        per_user = (pairs % n).split(torch.bincount(pairs // n, minlength=distinct.numel()).tolist())
        return [per_user[i] for i in inverse.tolist()]

    def rows(self, graph: KnowledgeGraph, known: Sequence[Tensor]) -> Tensor:
        """``(B, I)`` sparse CSR with a 1 at each user's known items that the model has."""
        _, item_position = self._bind(graph)
        positions = [torch.sort(p[p >= 0]).values for p in (item_position[k] for k in known)]
        crow = torch.zeros(len(known) + 1, dtype=torch.long)
        crow[1:] = torch.cumsum(torch.tensor([p.numel() for p in positions], dtype=torch.long), 0)
        col = torch.cat(positions) if positions else torch.empty(0, dtype=torch.long)
        return torch.sparse_csr_tensor(
            crow, col, torch.ones(col.numel()), size=(len(known), self.model.num_items)
        )

    def cold_items(self, graph: KnowledgeGraph, entity_vectors: Tensor) -> Tensor:
        """Item entities the fitted graph structure cannot score (new since the fit, or without fitted
        interactions) whose names have vectors: only text can recommend them."""
        _, item_position = self._bind(graph)
        items = graph.entities_of_type(self.schema.item_type)
        items = items[items < entity_vectors.shape[0]]
        position = item_position[items]
        fitted = torch.zeros(items.numel(), dtype=torch.bool)
        fitted[position >= 0] = self._fitted_degree[position[position >= 0]] > 0
        named = entity_vectors[items].abs().sum(1) > 0
        return items[~fitted & named]

    # ------------------------------------------------------------------------------- recommending
    @torch.no_grad()
    def recommend_many(
        self, graph: KnowledgeGraph, patterns: Sequence[LinkPattern], entity_vectors: Tensor | None = None
    ) -> list[list[InferredTriple]]:
        """The best new items of each pattern's user (known items excluded), scored in one batched pass;
        with ``entity_vectors`` (name vectors, ``(N, D)``) and a text calibration, cold items compete too,
        by the probability their name's similarity to the user's items gives them."""
        if not patterns:
            return []
        item_entity, item_position = self._bind(graph)
        users = [p.head for p in patterns]
        assert all(u is not None for u in users)
        known = self.known_items(graph, users)  # type: ignore[arg-type]
        scores = self.model.score(self.rows(graph, known)).float()  # (B, I), on the model's device
        device = scores.device
        scores[:, (item_entity < 0).to(device)] = float("-inf")  # items gone or retyped since the fit
        positions = [p[p >= 0] for p in (item_position[items] for items in known)]
        counts = torch.tensor([p.numel() for p in positions])
        known_cells = torch.repeat_interleave(torch.arange(len(known)), counts), torch.cat(positions)
        scores[tuple(part.to(device) for part in known_cells)] = float("-inf")  # known items
        deepest = min(max(p.top_k for p in patterns), scores.shape[1])
        top_values, top_indices = (part.cpu() for part in torch.topk(scores, deepest, dim=1))
        probabilities = self.calibration.ranked(top_values)
        candidates = item_entity[top_indices]  # (B, deepest) entities
        from_graph = torch.ones_like(candidates, dtype=torch.bool)
        if self.text is not None and entity_vectors is not None:
            cold = self.cold_items(graph, entity_vectors)
            if cold.numel():
                taste = profiles(entity_vectors, known)
                text = self.text(taste @ entity_vectors[cold].float().T)  # (B, C)
                text[taste.abs().sum(1) == 0] = -1.0  # a user without named items: no taste to match
                for b, items in enumerate(known):
                    text[b, torch.isin(cold, items)] = -1.0
                text_top = torch.topk(text, min(deepest, cold.numel()), dim=1)
                probabilities = torch.cat([probabilities, text_top.values], 1)
                candidates = torch.cat([candidates, cold[text_top.indices]], 1)
                from_graph = torch.cat([from_graph, torch.zeros_like(text_top.indices, dtype=torch.bool)], 1)
        order = torch.argsort(probabilities, dim=1, descending=True)
        relation = graph.relation_index[self.schema.relation]
        out: list[list[InferredTriple]] = []
        for b, pattern in enumerate(patterns):
            chosen = [
                at
                for at in order[b, : pattern.top_k].tolist()
                if float(probabilities[b, at]) >= max(pattern.min_score, 0.0)
            ]
            evidence: dict[int, tuple[Evidence, ...]] = {}
            if pattern.explain:
                by_graph = [int(candidates[b, at]) for at in chosen if from_graph[b, at]]
                positions = item_position[torch.tensor(by_graph, dtype=torch.long)].tolist()
                evidence = dict(
                    zip(by_graph, self.explain(graph, known[b], users[b], positions), strict=True)
                )
                for at in chosen:
                    item = int(candidates[b, at])
                    if not from_graph[b, at]:
                        evidence[item] = _similar_names(
                            graph, relation, users[b], known[b], item, entity_vectors
                        )
            out.append(
                [
                    InferredTriple(
                        users[b],
                        relation,
                        int(candidates[b, at]),
                        float(probabilities[b, at]),
                        evidence.get(int(candidates[b, at]), ()),
                    )
                    for at in chosen
                ]
            )
        return out

    def explain(
        self, graph: KnowledgeGraph, known: Tensor, user: int, items: Sequence[int], paths: int = 2
    ) -> list[tuple[Evidence, ...]]:
        """For each model item of ``items``, the co-interaction paths ``user -> known item <- other user ->
        item`` that carry the most of its linear-filter score (a path weighs ``R~[other, known item] *
        R~[other, item]``, as in ``x R~^T R~``; one path per other user, through their strongest shared
        item), each weighted by its share of that score; ``known`` are the user's item entities."""
        item_entity, item_position = self._bind(graph)
        known = item_position[known]
        known = known[known >= 0]
        if not known.numel() or not items:
            return [() for _ in items]
        crow, col, val = self._by_item.crow_indices(), self._by_item.col_indices(), self._by_item.values()
        # every (other user, known item) pair of the fit, reduced per other user to the sum of its weights
        # and to its best shared item
        starts, lengths = crow[known], crow[known + 1] - crow[known]
        via = torch.repeat_interleave(known, lengths)
        first = torch.repeat_interleave(starts - (torch.cumsum(lengths, 0) - lengths), lengths)
        entries = first + torch.arange(via.numel())
        others, weights = col[entries], val[entries]
        num_users = self.model.num_users
        shared_sum = torch.zeros(num_users).index_add_(0, others, weights)
        best = torch.zeros(num_users).scatter_reduce_(0, others, weights, "amax")
        best_item = torch.full((num_users,), -1, dtype=torch.long)
        is_best = weights == best[others]
        best_item[others[is_best]] = via[is_best]
        relation = graph.relation_index[self.schema.relation]
        index = graph.entity_index
        out = []
        for item in items:
            lo, hi = int(crow[item]), int(crow[item + 1])
            users_of_item, to_item = col[lo:hi], val[lo:hi]  # R~[:, item]
            total = float((shared_sum[users_of_item] * to_item).sum())
            through = best[users_of_item] * to_item  # each other user's strongest path
            if total <= 0 or not bool((through > 0).any()):
                out.append(())
                continue
            top = torch.topk(through, min(paths, int((through > 0).sum())))
            target = int(item_entity[item])
            evidence = []
            for weight, at in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                other_user = int(users_of_item[at])
                other = index.get(self.user_ids[other_user])
                shared = int(item_entity[best_item[other_user]])
                if other is None or shared < 0:
                    continue
                hops = (
                    EvidenceHop(user, relation, shared, False),
                    EvidenceHop(other, relation, shared, True),
                    EvidenceHop(other, relation, target, False),
                )
                evidence.append(Evidence(hops, weight / total))
            out.append(tuple(evidence))
        return out


def profiles(entity_vectors: Tensor, known: Sequence[Tensor]) -> Tensor:
    """``(B, D)``: each user's taste as the normalised mean name vector of their items (zero without any)."""
    zero = torch.zeros(entity_vectors.shape[1])
    sums = torch.stack([entity_vectors[k].float().sum(0) if k.numel() else zero for k in known])
    return torch.nn.functional.normalize(sums, dim=1)


def _similar_names(
    graph: KnowledgeGraph, relation: int, user: int, known: Tensor, item: int, entity_vectors: Tensor | None
) -> tuple[Evidence, ...]:
    """The evidence of a cold item: the user's item whose name is most like its name (one hop: the
    interaction), weighted by that similarity."""
    if entity_vectors is None or not known.numel():
        return ()
    similarity = entity_vectors[known].float() @ entity_vectors[item].float()
    best = int(torch.argmax(similarity))
    return (
        Evidence(
            (EvidenceHop(user, relation, int(known[best]), False),), float(similarity[best].clamp(0, 1))
        ),
    )
