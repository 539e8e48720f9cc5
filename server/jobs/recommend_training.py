"""`graphfuse train|eval --task recommend`: fit a graph's recommender from its stored interactions, calibrate
and score it on held-out interactions, write the checkpoint the server recommends with."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord, has_words
from graphfuse.gnn.evaluation.ranking_metrics import (
    ColdItems,
    RankingMetrics,
    hold_out_per_user,
    rank_held_out,
)
from graphfuse.gnn.formats.loaders import InteractionLayout, iter_records
from graphfuse.gnn.inference.recommendations import (
    Calibration,
    InteractionSchema,
    Recommendation,
    TextCalibration,
    interaction_pairs,
)
from graphfuse.gnn.models.graph_filter import GraphFilterConfig, GraphFilterRecommender
from graphfuse.server.jobs.link_training import _read
from graphfuse.server.storage.checkpoints import checkpoint_path, load_checkpoint, save_checkpoint
from graphfuse.server.storage.store import GraphStore

CALIBRATION_DEPTH = 100  # candidates per held-out user the calibration is fitted on
MIN_NAMED_ITEMS = 20  # named items needed to hold some out whole and calibrate the text path on them


@dataclass(frozen=True)
class RecommendTrainReport:
    schema: InteractionSchema
    users: int
    items: int
    interactions: int
    metrics: RankingMetrics | None  # on the held-out interactions, with a model fitted without them
    with_text: RankingMetrics | None  # the same with cold items recommended by their names
    cold_items: int  # named items held out whole for the text calibration
    fit_seconds: float
    seconds: float
    description: str
    checkpoint: Path


def infer_schema(graph: KnowledgeGraph, relation: str | None = None) -> InteractionSchema:
    """The interaction relation (``relation``, else the graph's only one) and the most common node types of
    its heads (users) and tails (items); ValueError when they are missing or the same."""
    if relation is None:
        if graph.num_relations != 1:
            known = ", ".join(sorted(graph.relation_ids)[:10])
            raise ValueError(
                f"the graph has {graph.num_relations} relations ({known}); name one with --relation"
            )
        relation = graph.relation_ids[0]
    r = graph.relation_index.get(relation)
    if r is None:
        raise ValueError(f"the graph has no relation {relation!r}")
    heads, rels, tails = graph.edges
    chosen = rels == r
    user_type = _most_common(graph, heads[chosen])
    item_type = _most_common(graph, tails[chosen])
    if not user_type or not item_type or user_type == item_type:
        raise ValueError(
            f"relation {relation!r} needs typed ends, users of one node type and items of another (found "
            f"{user_type or 'untyped'} -> {item_type or 'untyped'}); ingest entities with types (adjacency "
            "files are typed user and item)"
        )
    return InteractionSchema(relation, user_type, item_type)


def _most_common(graph: KnowledgeGraph, entities: Tensor) -> str:
    counts = Counter(graph.types[e] for e in torch.unique(entities).tolist())
    return counts.most_common(1)[0][0] if counts else ""


def fit_text_calibration(similarity: Tensor, hits: Tensor) -> TextCalibration:
    """Logistic regression of ``hits`` on the cosine (LBFGS, two parameters, ``a >= 0``)."""
    softplus = torch.nn.functional.softplus
    labels = hits.float()
    raw = torch.tensor([1.0, -5.0], requires_grad=True)
    optimizer = torch.optim.LBFGS([raw], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            softplus(raw[0]) * similarity + raw[1], labels
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return TextCalibration(float(softplus(raw[0])), float(raw[1]))


def fit_calibration(scores: Tensor, top: Tensor, ranks: Tensor, hits: Tensor) -> Calibration:
    """Logistic regression of ``hits`` on the calibration's features (LBFGS, three parameters), with the
    signs that keep probabilities falling down a ranking: ``a >= 0``, ``b <= 0``."""
    softplus = torch.nn.functional.softplus
    relative, rank = Calibration.features(scores, top, ranks)
    labels = hits.float()
    raw = torch.zeros(3, requires_grad=True)  # a = softplus(raw0), b = -softplus(raw1), c = raw2
    optimizer = torch.optim.LBFGS([raw], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        logits = softplus(raw[0]) * relative - softplus(raw[1]) * rank + raw[2]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return Calibration(float(softplus(raw[0])), -float(softplus(raw[1])), float(raw[2]))


def train_recommender_graph(
    data_dir: Path,
    graph_name: str,
    relation: str | None = None,
    *,
    holdout: float = 0.1,
    k: int = 20,
    seed: int = 0,
    cold_share: float = 0.1,
    config: GraphFilterConfig | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> RecommendTrainReport:
    """Fit on the stored interactions less a ``holdout`` share of each user's, calibrate and score on those,
    then fit on all of them and write the checkpoint.

    When items have names (at least :data:`MIN_NAMED_ITEMS`), a ``cold_share`` of the named items is also
    held out whole, as if they were new: the text calibration that recommends cold items by their names is
    fitted on them, and the held-out interactions are ranked once without and once with it.
    """
    started = time.perf_counter()
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"Expected 'holdout' in [0, 1) (got {holdout})")
    stage = on_stage or (lambda _: None)
    stage("reading the graph")
    entities, triples = _read(data_dir, graph_name)
    graph = KnowledgeGraph(entities, triples)
    schema = infer_schema(graph, relation)
    users, items, user_entities, item_entities = interaction_pairs(graph, schema)
    if not users.numel():
        raise ValueError(f"graph {graph_name!r} has no {schema.relation!r} interactions to learn from")
    num_users, num_items = user_entities.numel(), item_entities.numel()
    metrics, with_text, calibration, text = None, None, Calibration(), None
    held = hold_out_per_user(users, holdout, seed) if holdout else torch.zeros_like(users, dtype=torch.bool)
    vectors = _item_vectors(data_dir, graph, item_entities) if holdout else None
    cold = None
    if vectors is not None:
        cold = _cold_split(items, vectors, cold_share, seed)
        held |= torch.isin(items, cold.positions)
    if bool(held.any()):
        stage(f"fitting without {int(held.sum())} held-out interactions")
        model = GraphFilterRecommender.fit(users[~held], items[~held], num_users, num_items, config)
        stage("scoring the held-out interactions")
        kept, left_out = (users[~held], items[~held]), (users[held], items[held])
        metrics, samples = rank_held_out(model, kept, left_out, k, CALIBRATION_DEPTH, on_batch, cold)
        calibration = fit_calibration(*(torch.cat([s[i] for s in samples.graph]).flatten() for i in range(4)))
        if cold is not None and samples.text:
            text = fit_text_calibration(*(torch.cat([s[i] for s in samples.text]) for i in range(2)))
            cold = dataclasses.replace(cold, text=text)
            stage("scoring them again with cold items ranked by their names")
            with_text, _ = rank_held_out(model, kept, left_out, k, 0, on_batch, cold, calibration)
    stage(f"fitting on all {users.numel()} interactions")
    fit_started = time.perf_counter()
    model = GraphFilterRecommender.fit(users, items, num_users, num_items, config)
    fit_seconds = time.perf_counter() - fit_started
    summary = f"; held-out Recall@{k} {metrics.recall:.4f}, NDCG@{k} {metrics.ndcg:.4f}" if metrics else ""
    description = (
        f"GraphFilterRecommender on {schema.relation} ({num_users} {schema.user_type}, {num_items} "
        f"{schema.item_type}, {users.numel()} interactions), "
        f"fitted {time.strftime('%Y-%m-%d %H:%M:%S')}{summary}"
    )
    ids = graph.entity_ids
    recommendation = Recommendation(
        model,
        schema,
        [ids[e] for e in user_entities.tolist()],
        [ids[e] for e in item_entities.tolist()],
        calibration,
        description,
        text,
    )
    path = checkpoint_path(data_dir, graph_name, "recommend")
    meta = {"description": description, "holdout": holdout, "fit_seconds": fit_seconds}
    if metrics:
        meta.update(recall=metrics.recall, ndcg=metrics.ndcg, k=k)
    if with_text:
        meta.update(recall_with_text=with_text.recall, ndcg_with_text=with_text.ndcg)
    save_checkpoint(path, recommendation, meta)
    return RecommendTrainReport(
        schema,
        num_users,
        num_items,
        int(users.numel()),
        metrics,
        with_text,
        0 if cold is None else int(cold.positions.numel()),
        fit_seconds,
        time.perf_counter() - started,
        description,
        path,
    )


def _item_vectors(data_dir: Path, graph: KnowledgeGraph, item_entities: Tensor) -> Tensor | None:
    """``(I, D)`` name vectors of the items (zero where the name has no words), read from the store's cache
    or encoded with the default encoder; None when fewer than :data:`MIN_NAMED_ITEMS` items are named."""
    named = [i for i, e in enumerate(item_entities.tolist()) if has_words(graph.names[e], graph.types[e])]
    if len(named) < MIN_NAMED_ITEMS:
        return None
    from graphfuse.encoder import EncoderConfig, TextEncoder

    texts = [graph.names[int(item_entities[i])] for i in named]
    encoder = TextEncoder(EncoderConfig())
    store = GraphStore(data_dir)
    try:
        cached = store.get_embeddings(encoder.name, texts)
    finally:
        store.close()
    missing = sorted({t for t in texts if t not in cached})
    if missing:
        fresh = encoder.encode(missing, truncate=True).vectors
        cached.update((t, fresh[i].numpy()) for i, t in enumerate(missing))
    vectors = torch.zeros(item_entities.numel(), encoder.dimensions)
    vectors[torch.tensor(named)] = torch.from_numpy(np.stack([cached[t] for t in texts]))
    return vectors


def _cold_split(items: Tensor, vectors: Tensor, share: float, seed: int) -> ColdItems:
    """A ``share`` of the named items with interactions, at random."""
    candidates = torch.unique(items)
    candidates = candidates[vectors[candidates].abs().sum(1) > 0]
    generator = torch.Generator().manual_seed(seed + 1)
    chosen = candidates[
        torch.randperm(candidates.numel(), generator=generator)[: round(candidates.numel() * share)]
    ]
    return ColdItems(torch.sort(chosen).values, vectors)


def evaluate_recommender_graph(
    data_dir: Path,
    graph_name: str,
    test_files: Sequence[str | Path],
    k: int = 20,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[RankingMetrics, int]:
    """Recall@k and NDCG@k of the interactions in ``test_files`` (any graph format; adjacency files are read
    with the recommender's relation and node types) with the graph's fitted recommender: every item ranked
    for each test user, the other stored interactions excluded. Returns the metrics and the test
    interactions skipped (a user or item the model does not know, or another relation)."""
    path = checkpoint_path(data_dir, graph_name, "recommend")
    if not path.exists():
        raise FileNotFoundError(
            f"graph {graph_name!r} has no recommender; run graphfuse train --task recommend"
        )
    recommendation, _ = load_checkpoint(path)
    assert isinstance(recommendation, Recommendation)
    schema = recommendation.schema
    layout = InteractionLayout(schema.relation, schema.user_type, schema.item_type)
    test = [
        r for f in test_files for r in iter_records(f, interactions=layout) if isinstance(r, TripleRecord)
    ]
    entities, triples = _read(data_dir, graph_name)
    graph = KnowledgeGraph(entities, triples)
    users, items, user_entities, item_entities = interaction_pairs(graph, schema)
    num_items = recommendation.model.num_items
    user_at = {graph.entity_ids[e]: i for i, e in enumerate(user_entities.tolist())}
    item_at = {i: n for n, i in enumerate(recommendation.item_ids)}
    if [graph.entity_ids[e] for e in item_entities.tolist()] != recommendation.item_ids:
        remap = torch.tensor([item_at.get(graph.entity_ids[e], -1) for e in item_entities.tolist()])
        users, items = users[remap[items] >= 0], remap[items][remap[items] >= 0]
    pairs = [(user_at.get(t.head), item_at.get(t.tail)) for t in test if t.relation == schema.relation]
    kept = [(u, i) for u, i in pairs if u is not None and i is not None]
    skipped = len(test) - len(kept)
    if not kept:
        raise ValueError("no test interaction names a user and an item the recommender knows")
    held = torch.tensor(kept, dtype=torch.long)
    hidden = torch.isin(users * num_items + items, held[:, 0] * num_items + held[:, 1])  # stored test pairs
    users, items = users[~hidden], items[~hidden]
    metrics, _ = rank_held_out(recommendation.model, (users, items), (held[:, 0], held[:, 1]), k, 0, on_batch)
    return metrics, skipped
