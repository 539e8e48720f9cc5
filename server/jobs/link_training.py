"""`graphfuse train --task link` and `graphfuse eval --task link`: fit and score a graph's link predictor.

With ``--relation``, the predictor is a path-pattern regression for the named relations
(:mod:`graphfuse.gnn.models.path_patterns`); otherwise a message-passing predictor for every relation.

Both read the graph from the store (safe beside a running server) and work in-process. Training writes the
checkpoint atomically to ``<data dir>/checkpoints/link/<graph>.pt``; a running server picks it up within
seconds and starts inferring Lookup triples.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord, default_name
from graphfuse.gnn.inference.link_predictions import LinkInference
from graphfuse.gnn.inference.pattern_links import PatternLinkInference
from graphfuse.gnn.models.link_predictor import LinkEnsemble
from graphfuse.gnn.models.path_patterns import PathPatternConfig, PathPatternPredictor
from graphfuse.gnn.training.link_predictor import (
    KnownAnswers,
    LinkMetrics,
    LinkTrainConfig,
    both_directions,
    calibrate,
    edge_value_keys,
    filtered_ranks,
    hide_edges,
    link_metrics,
    train_link_predictor,
)
from graphfuse.gnn.training.path_patterns import PatternFitReport, train_path_patterns
from graphfuse.server.storage.checkpoints import checkpoint_path, load_checkpoint, save_checkpoint
from graphfuse.server.storage.store import GraphStore


@dataclass
class LinkTrainReport:
    checkpoint: Path
    train_triples: int
    valid_triples: int
    skipped_triples: int  # validation triples naming an entity or relation the graph lacks
    seconds: float
    valid: LinkMetrics | None
    description: str


@dataclass
class LinkEvalReport:
    metrics: LinkMetrics
    skipped_triples: int
    hidden_triples: int  # test triples that were stored facts, hidden from the graph while scoring them


def index_triples(graph: KnowledgeGraph, triples: Sequence[TripleRecord]) -> tuple[Tensor, int]:
    """``(T, 3)`` indices of the triples the graph knows, and how many name an unknown entity or relation."""
    rows, skipped = [], 0
    for t in triples:
        h, r, tail = (
            graph.entity_index.get(t.head),
            graph.relation_index.get(t.relation),
            graph.entity_index.get(t.tail),
        )
        if h is None or r is None or tail is None:
            skipped += 1
            continue
        rows.append((h, r, tail))
    return torch.tensor(rows, dtype=torch.long).view(-1, 3), skipped


def _read(data_dir: Path, name: str) -> tuple[list[EntityRecord], list[TripleRecord]]:
    """A stored graph's entities and triples (the store is opened for the read only)."""
    store = GraphStore(data_dir)
    try:
        entities, triples = store.read_graph(name)
    finally:
        store.close()
    return list(entities), list(triples)


def train_link_graph(
    data_dir: Path,
    graph_name: str,
    valid: Sequence[TripleRecord] = (),
    *,
    holdout: float = 0.05,
    config: LinkTrainConfig | None = None,
    ensemble: int = 1,
    on_step: Callable[[int, int, float], None] | None = None,
) -> LinkTrainReport:
    """Train on the stored triples, calibrate and score on validation triples, write the checkpoint.

    Validation triples are ``valid`` when given (a dataset's own split, not stored in the graph), otherwise a
    ``holdout`` share of the stored triples, left out of the graph the model trains on. With ``ensemble``
    > 1, that many predictors are trained from consecutive seeds and score together (:class:`LinkEnsemble`).
    """
    started = time.perf_counter()
    config = config or LinkTrainConfig()
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"Expected 'holdout' in [0, 1) (got {holdout})")
    entities, stored = _read(data_dir, graph_name)
    if not stored:
        raise ValueError(f"graph {graph_name!r} has no triples to learn from")
    if valid:
        train_records, valid_records = stored, list(valid)
    else:
        shuffled = stored[:]
        random.Random(config.seed).shuffle(shuffled)
        cut = int(round(len(shuffled) * holdout))
        valid_records, train_records = shuffled[:cut], shuffled[cut:]
    graph = KnowledgeGraph(entities, train_records)
    train, _ = index_triples(graph, train_records)
    held, skipped = index_triples(graph, valid_records)
    members = [
        train_link_predictor(
            graph, train, dataclasses.replace(config, seed=config.seed + i), on_step, valid=held
        )
        for i in range(ensemble)
    ]
    model = members[0] if ensemble == 1 else LinkEnsemble(members)
    metrics = None
    if held.numel():
        known = KnownAnswers([train, held], graph.num_relations)
        queries = both_directions(held, graph.num_relations)
        stacked = graph.stacked_transitions()
        with torch.no_grad():

            def score(e: Tensor, d: Tensor) -> Tensor:
                return model(stacked, graph.num_entities, e, d)

            calibrate(model, score, queries, known, graph.num_entities)
            metrics = link_metrics(filtered_ranks(score, queries, known, graph.num_entities))
    summary = f"; validation MRR {metrics.mrr:.3f}, Hits@10 {metrics.hits_at_10:.3f}" if metrics else ""
    description = (
        f"{'LinkPredictor' if ensemble == 1 else f'LinkEnsemble of {ensemble}'} ({config.layers} layers, "
        f"{config.dim}d) on {train.shape[0]} triples, "
        f"trained {time.strftime('%Y-%m-%d %H:%M:%S')}{summary}"
    )
    path = checkpoint_path(data_dir, graph_name, "link")
    save_checkpoint(
        path,
        model,
        {
            "description": description,
            "graph": graph_name,
            "relation_ids": graph.relation_ids,
            "train_triples": int(train.shape[0]),
            "valid": vars(metrics) if metrics else None,
            "created_at": time.time(),
        },
    )
    return LinkTrainReport(
        path,
        int(train.shape[0]),
        int(held.shape[0]),
        skipped,
        time.perf_counter() - started,
        metrics,
        description,
    )


def evaluate_link_graph(
    data_dir: Path, graph_name: str, test: Sequence[TripleRecord], known: Sequence[TripleRecord] = ()
) -> LinkEvalReport:
    """Filtered MRR and Hits@1/3/10 of the graph's link predictor on ``test``, both directions.

    Every candidate answer that is a stored fact, a ``known`` triple (e.g. the validation split) or another
    test triple is filtered out. Test triples that are stored facts are hidden from the graph while scored.
    """
    path = checkpoint_path(data_dir, graph_name, "link")
    if not path.exists():
        raise FileNotFoundError(
            f"graph {graph_name!r} has no link predictor yet (no {path}); train one first"
        )
    model, meta = load_checkpoint(path)
    entities, stored = _read(data_dir, graph_name)
    if isinstance(model, PathPatternPredictor):
        return _evaluate_patterns(model, entities, stored, test, known)
    graph = KnowledgeGraph(entities, stored)
    predictor = LinkInference(model, meta["relation_ids"], meta.get("description", ""))  # type: ignore[arg-type]
    tests, skipped = index_triples(graph, test)
    hidden = sum(graph.has_edges([tuple(t) for t in tests.tolist()]))
    values = None
    if hidden:
        values = hide_edges(graph, edge_value_keys(graph), tests)
    metrics = _filtered_metrics(graph, tests, known, lambda e, d: predictor.logits(graph, e, d, values))
    return LinkEvalReport(metrics, skipped, hidden)


def _evaluate_patterns(
    model: PathPatternPredictor,
    entities: list[EntityRecord],
    stored: list[TripleRecord],
    test: Sequence[TripleRecord],
    known: Sequence[TripleRecord],
) -> LinkEvalReport:
    """As :func:`evaluate_link_graph`, for the relations a path-pattern predictor knows (test triples of other
    relations are skipped); stored test triples are removed from the graph, as their own edge would be a
    feature of theirs."""
    tested = set(test)
    graph = KnowledgeGraph(entities, [t for t in stored if t not in tested])
    inference = PatternLinkInference(model, "")
    tests, _ = index_triples(graph, [t for t in test if t.relation in model.targets])
    metrics = _filtered_metrics(graph, tests, known, lambda e, d: inference.tail_probabilities(graph, e, d))
    return LinkEvalReport(metrics, len(test) - tests.shape[0], len(stored) - graph.num_edges)


def _filtered_metrics(
    graph: KnowledgeGraph,
    tests: Tensor,
    known: Sequence[TripleRecord],
    score: Callable[[Tensor, Tensor], Tensor],
) -> LinkMetrics:
    """The ``(T, 3)`` test triples ranked both ways by ``score`` against every entity, every stored, known
    and test triple but the one ranked filtered out."""
    extra, _ = index_triples(graph, known)
    filters = KnownAnswers([torch.stack(graph.edges, 1), extra, tests], graph.num_relations)
    with torch.no_grad():
        queries = both_directions(tests, graph.num_relations)
        ranks = filtered_ranks(score, queries, filters, graph.num_entities)
    return link_metrics(ranks)


EVERY_RELATION = "all"
MIN_EDGES_TO_FIT = 6  # two per fold


@dataclass
class PatternTrainReport:
    checkpoint: Path
    relations: list[PatternFitReport]
    seconds: float
    description: str


def resolve_relations(graph: KnowledgeGraph, texts: Sequence[str]) -> list[int]:
    """The relations ``texts`` name: by id; ``all``: every relation with enough edges to fit; else by a
    record's name or alias (any case); else by the words of the id (``treats`` names ``TREATS_CtD``). A text
    may name several relations (a verb that several kinds of edge share); one that names none raises
    KeyError."""
    found: list[int] = []
    for text in texts:
        wanted = " ".join(text.lower().split())
        matches = [graph.relation_index[text]] if text in graph.relation_index else []
        if not matches and wanted == EVERY_RELATION:
            counts = torch.bincount(graph.edges[1], minlength=graph.num_relations)
            matches = [r for r in range(graph.num_relations) if int(counts[r]) >= MIN_EDGES_TO_FIT]
        if not matches:
            matches = [
                r
                for r, record in graph.relation_records.items()
                if wanted in {w.lower() for w in (record.name, record.inverse_name, *record.aliases) if w}
            ]
        if not matches:
            matches = [
                r
                for r, relation_id in enumerate(graph.relation_ids)
                if f" {wanted} " in f" {default_name(relation_id).lower()} "
            ]
        if not matches:
            shown = ", ".join(graph.relation_ids[:20]) + (", ..." if graph.num_relations > 20 else "")
            raise KeyError(f"no relation of the graph is named {text!r} (its relations: {shown})")
        found += [r for r in sorted(matches) if r not in found]
    return found


def train_pattern_graph(
    data_dir: Path,
    graph_name: str,
    relations: Sequence[str],
    config: PathPatternConfig | None = None,
    on_step: Callable[[str], None] | None = None,
) -> PatternTrainReport:
    """Fit path-pattern regressions for the named relations of a stored graph (every other edge is context)
    and write them as the graph's link predictor."""
    started = time.perf_counter()
    config = config or PathPatternConfig()
    store = GraphStore(data_dir)
    try:
        entities, stored = store.read_graph(graph_name)
        described = store.read_relations(graph_name)
    finally:
        store.close()
    graph = KnowledgeGraph(entities, stored)
    graph.add(described)
    targets = resolve_relations(graph, relations)
    predictor, reports = train_path_patterns(graph, targets, config, on_step)
    fitted = ", ".join(f"{r.relation} (out-of-fold AUROC {r.auroc:.3f})" for r in reports)
    description = (
        f"PathPatternPredictor for {fitted} on {graph.num_edges} triples, "
        f"trained {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    path = checkpoint_path(data_dir, graph_name, "link")
    save_checkpoint(
        path,
        predictor,
        {
            "description": description,
            "graph": graph_name,
            "relations": [vars(r) for r in reports],
            "created_at": time.time(),
        },
    )
    return PatternTrainReport(path, reports, time.perf_counter() - started, description)
