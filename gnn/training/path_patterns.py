"""Fitting relation-path pattern regressions (:mod:`graphfuse.gnn.models.path_patterns`) for target relations.

For each target relation: the candidate heads and tails (entities of the kinds its heads and tails have, or on
an untyped graph, entities whose relations look like its heads' and tails'), every pattern of up to
``max_length`` directed relations that can lead from one to the other, and the pairs to fit: its edges, and
pairs of candidates without it (sampled beyond ``max_negatives``). The edges are split into folds and each
fold's features are counted with that fold's edges hidden, so that no pair is described by its own edge;
out-of-fold predictions give the reported validation figures, and the final regression is fitted on every
fold. The intercept is corrected for the negatives left out, so the probabilities are those of all candidate
pairs, not of the sample.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.models.path_patterns import (
    DirectionMatrices,
    PathPatternConfig,
    PathPatternPredictor,
    RelationPatterns,
    candidates,
    profile_scores,
)

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

SCREEN_PAIRS = 256  # edges (and 4x as many pairs without the relation) patterns are screened on
PROFILE_SHARE = 0.5  # an untyped candidate's relations must cover this share of a typical member's


@dataclass
class PatternFitReport:
    relation: str
    patterns: int
    positives: int
    negatives: int  # fitted on
    candidate_pairs: int  # every head candidate x tail candidate
    auroc: float  # out of fold
    auprc: float
    seconds: float


def like(
    graph: KnowledgeGraph, members: np.ndarray, outward: int
) -> tuple[tuple[str, ...], dict[int, float], float]:
    """How to find entities like ``members`` (a relation's heads or tails, ``outward`` being the relation's
    direction leaving them): their kinds on a typed graph; otherwise a weight per direction but ``outward``
    (the share of members with an edge along it, times the share of the entities with one that are members:
    a direction every kind has says little), and half of a typical member's score by those weights."""
    kinds = tuple(sorted({graph.types[i] for i in members.tolist()} - {""}))
    if kinds:
        return kinds, {}, 0.0
    heads, rels, tails = (x.numpy() for x in graph.edges)
    profile = {}
    for d in range(2 * graph.num_relations):
        if d == outward:  # else entities without the relation could never be candidates for it
            continue
        relation, back = graph.relation_of(d)
        sources = np.unique(tails[rels == relation] if back else heads[rels == relation])
        shared = np.isin(members, sources).sum()
        if shared:
            profile[d] = float(shared / members.size) * float(shared / sources.size)
    typical = float(np.median(profile_scores(graph, profile)[members]))
    return kinds, profile, PROFILE_SHARE * typical


def enumerate_patterns(
    graph: KnowledgeGraph, target: int, heads: np.ndarray, tails: np.ndarray, max_length: int
) -> list[tuple[int, ...]]:
    """Every sequence of 1..``max_length`` directions whose edges can chain from a candidate head to a
    candidate tail (each hop's tails meet the next hop's heads), the target relation itself excepted."""
    n, directions = graph.num_entities, 2 * graph.num_relations
    h, r, t = (x.numpy() for x in graph.edges)
    source = np.zeros((directions, n), dtype=bool)
    destination = np.zeros((directions, n), dtype=bool)
    source[r, h] = destination[r, t] = True
    source[r + graph.num_relations, t] = destination[r + graph.num_relations, h] = True
    compatible = (destination.astype(np.float32) @ source.T.astype(np.float32)) > 0  # (2R, 2R)
    starts = source[:, heads].any(1)
    ends = destination[:, tails].any(1)
    found: list[tuple[int, ...]] = []
    level = [(d,) for d in np.flatnonzero(starts).tolist()]
    for _ in range(max_length):
        found += [p for p in level if ends[p[-1]] and p != (target,)]
        level = [(*p, d) for p in level for d in np.flatnonzero(compatible[p[-1]]).tolist()]
    return found


def fit_relation(
    graph: KnowledgeGraph,
    target: int,
    config: PathPatternConfig,
    on_step: Callable[[str], None] | None = None,
) -> tuple[RelationPatterns, PatternFitReport]:
    """Fit the pattern regression of one relation of ``graph`` (see the module docstring)."""
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    heads_all, rels_all, tails_all = (x.numpy() for x in graph.edges)
    mask = rels_all == target
    positives = np.unique(np.stack([heads_all[mask], tails_all[mask]], 1), axis=0)
    if positives.shape[0] < 2 * config.folds:
        raise ValueError(
            f"relation {graph.relation_ids[target]!r} has {positives.shape[0]} edges; "
            f"at least {2 * config.folds} are needed to fit it"
        )
    num_relations = graph.num_relations
    head_like = like(graph, np.unique(positives[:, 0]), target)
    tail_like = like(graph, np.unique(positives[:, 1]), target + num_relations)
    head_set = np.union1d(candidates(graph, *head_like), positives[:, 0])
    tail_set = np.union1d(candidates(graph, *tail_like), positives[:, 1])
    patterns = enumerate_patterns(graph, target, head_set, tail_set, config.max_length)
    if on_step:
        on_step(
            f"{graph.relation_ids[target]}: {len(patterns)} patterns, {head_set.size} x {tail_set.size} pairs"
        )

    negatives = _sample_negatives(positives, head_set, tail_set, config.max_negatives, rng)
    if len(patterns) > config.max_candidates:
        patterns = _screen(graph, target, patterns, positives, negatives, config, rng)
        if on_step:
            on_step(f"{graph.relation_ids[target]}: {len(patterns)} patterns kept after screening")
    pairs = np.concatenate([positives, negatives])
    labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    fold = rng.integers(0, config.folds, size=pairs.shape[0])

    walks, head_degree, tail_degree = _count(graph, target, patterns, positives, pairs, fold, config, on_step)
    used = (walks > 0).any(1)
    patterns = [p for p, u in zip(patterns, used.tolist(), strict=True) if u]
    walks = walks[used]
    scale = np.array([w[w > 0].mean() for w in walks], dtype=np.float32).reshape(-1)
    raw = np.concatenate(
        [np.arcsinh(walks / scale[:, None]).T, np.log1p(np.stack([head_degree, tail_degree], 1))], 1
    )
    mean, std = raw.mean(0), raw.std(0)
    std[std < 1e-6] = 1.0
    features = (raw - mean) / std
    if len(patterns) > config.max_patterns:  # keep the patterns weighing most in a fit on all of them
        weight = np.abs(_regression(config.regularisation).fit(features, labels).coef_[0][: len(patterns)])
        kept = np.sort(np.argsort(-weight)[: config.max_patterns])
        patterns = [patterns[i] for i in kept.tolist()]
        columns = np.concatenate([kept, [raw.shape[1] - 2, raw.shape[1] - 1]])
        features, mean, std, scale = features[:, columns], mean[columns], std[columns], scale[kept]

    out_of_fold = np.zeros(pairs.shape[0])
    for k in range(config.folds):
        train, test = fold != k, fold == k
        model = _regression(config.regularisation).fit(features[train], labels[train])
        out_of_fold[test] = model.decision_function(features[test])
    model = _regression(config.regularisation).fit(features, labels)
    total_negatives = head_set.size * tail_set.size - len(positives)
    sampled = math.log(len(negatives) / max(total_negatives, len(negatives)))
    bias = float(model.intercept_[0]) + sampled
    transform = (scale, mean, std)
    serving = _serving_logits(
        graph, target, patterns, positives, pairs, labels, fold, features, transform, config
    )
    platt = _regression(1e6, max_iter=1000).fit(serving[:, None], labels)
    slope, offset = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    # On logits whose bias counts every negative, and for a graph missing one fold of the relation's edges:
    # the serving logits describe every edge as missing, one fold at a time, so the pooled fit saw `folds`
    # times as many missing edges as any one of those graphs has.
    calibration = (slope, offset + sampled - slope * sampled - math.log(config.folds))
    if on_step:
        on_step(f"{graph.relation_ids[target]}: calibrated (slope {slope:.2f}, offset {offset:.2f})")

    def by_id(profile: dict[int, float]) -> dict[tuple[str, bool], float]:
        return {(graph.relation_ids[d % num_relations], d >= num_relations): s for d, s in profile.items()}

    fitted = RelationPatterns(
        graph.relation_ids[target],
        [tuple((graph.relation_ids[d % num_relations], d >= num_relations) for d in p) for p in patterns],
        torch.from_numpy(scale),
        torch.from_numpy(mean.astype(np.float32)),
        torch.from_numpy(std.astype(np.float32)),
        torch.from_numpy(model.coef_[0].astype(np.float32)),
        bias,
        head_like[0],
        tail_like[0],
        by_id(head_like[1]),
        by_id(tail_like[1]),
        head_like[2],
        tail_like[2],
        calibration,
    )
    report = PatternFitReport(
        graph.relation_ids[target],
        len(patterns),
        len(positives),
        len(negatives),
        int(head_set.size * tail_set.size),
        *_ranking_scores(labels, out_of_fold),
        time.perf_counter() - started,
    )
    return fitted, report


def train_path_patterns(
    graph: KnowledgeGraph,
    targets: Sequence[int],
    config: PathPatternConfig | None = None,
    on_step: Callable[[str], None] | None = None,
) -> tuple[PathPatternPredictor, list[PatternFitReport]]:
    """A :class:`PathPatternPredictor` for the ``targets`` relations of ``graph``."""
    config = config or PathPatternConfig()
    fitted, reports = [], []
    for target in targets:
        relation, report = fit_relation(graph, target, config, on_step)
        fitted.append(relation)
        reports.append(report)
    return PathPatternPredictor(fitted, config), reports


def _count(
    graph: KnowledgeGraph,
    target: int,
    patterns: list[tuple[int, ...]],
    positives: np.ndarray,
    pairs: np.ndarray,
    fold: np.ndarray,
    config: PathPatternConfig,
    on_step: Callable[[str], None] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P, K)`` walk counts of the pairs along each pattern and ``(K,)`` their head's and tail's numbers of
    target edges, each pair's counted with its fold's edges hidden (patterns without the target relation,
    which hiding cannot change, counted once)."""
    num_relations = graph.num_relations
    uses_target = [i for i, p in enumerate(patterns) if target in p or target + num_relations in p]
    others = sorted(set(range(len(patterns))) - set(uses_target))
    walks = np.zeros((len(patterns), pairs.shape[0]), dtype=np.float32)
    head_degree = np.zeros(pairs.shape[0])
    tail_degree = np.zeros(pairs.shape[0])
    full = DirectionMatrices(graph, config.damping)
    walks[others] = full.pair_walks([patterns[i] for i in others], pairs)
    for k in range(config.folds):
        members = np.flatnonzero(fold == k)
        matrices = DirectionMatrices(graph, config.damping, _fold_triples(positives, fold, (k,), target))
        if uses_target:
            chosen = [patterns[i] for i in uses_target]
            walks[np.ix_(uses_target, members)] = matrices.pair_walks(chosen, pairs[members])
        out_degree, in_degree = matrices.degrees[target]
        head_degree[members] = out_degree[pairs[members, 0]]
        tail_degree[members] = in_degree[pairs[members, 1]]
        if on_step:
            on_step(f"{graph.relation_ids[target]}: fold {k + 1} of {config.folds} counted")
    return walks, head_degree, tail_degree


def _serving_logits(
    graph: KnowledgeGraph,
    target: int,
    patterns: list[tuple[int, ...]],
    positives: np.ndarray,
    pairs: np.ndarray,
    labels: np.ndarray,
    fold: np.ndarray,
    features: np.ndarray,
    transform: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: PathPatternConfig,
) -> np.ndarray:
    """``(K,)`` each pair's logit as a predictor would serve it if its fold's edges were missing: fitted on
    the other folds' pairs, their features counted with their own fold *and* that fold hidden (as training
    hides a fold of what it sees), then applied to the pair's features with only its fold hidden (as a
    served pair sees every stored edge). Serving counts more walks than training did; these logits carry
    that shift, so a calibration fitted on them holds for edges that are missing.

    ``transform``: the ``(P,)`` scale and ``(P + 2,)`` mean and spread that standardise the features."""
    scale, mean, std = transform
    count = len(patterns)
    uses_target = [i for i, p in enumerate(patterns) if target in p or target + graph.num_relations in p]
    out = np.zeros(pairs.shape[0])
    for k in range(config.folds):
        inner = features.copy()
        for j in range(config.folds):
            if j == k:
                continue
            members = np.flatnonzero(fold == j)
            hidden = _fold_triples(positives, fold, (j, k), target)
            matrices = DirectionMatrices(graph, config.damping, hidden)
            if uses_target:
                walks = matrices.pair_walks([patterns[i] for i in uses_target], pairs[members])
                scaled = np.arcsinh(walks / scale[uses_target, None]).T
                inner[np.ix_(members, uses_target)] = (scaled - mean[uses_target]) / std[uses_target]
            out_degree, in_degree = matrices.degrees[target]
            degrees = np.log1p(np.stack([out_degree[pairs[members, 0]], in_degree[pairs[members, 1]]], 1))
            inner[members, count:] = (degrees - mean[count:]) / std[count:]
        train = fold != k
        model = _regression(config.regularisation).fit(inner[train], labels[train])
        out[fold == k] = model.decision_function(features[fold == k])
    return out


def _fold_triples(
    positives: np.ndarray, fold: np.ndarray, folds: tuple[int, ...], target: int
) -> torch.Tensor:
    """``(H, 3)`` the relation's edges in ``folds``, as triples to hide."""
    hidden = positives[np.isin(fold[: len(positives)], folds)]
    return torch.from_numpy(
        np.stack([hidden[:, 0], np.full(len(hidden), target), hidden[:, 1]], 1).astype(np.int64)
    )


def _screen(
    graph: KnowledgeGraph,
    target: int,
    patterns: list[tuple[int, ...]],
    positives: np.ndarray,
    negatives: np.ndarray,
    config: PathPatternConfig,
    rng: np.random.Generator,
) -> list[tuple[int, ...]]:
    """The ``max_candidates`` patterns separating a sample of the relation's edges (hidden from the graph)
    from a sample of pairs without it best: by the difference of their mean asinh-scaled walk counts, in
    units of its spread."""
    sample = positives[rng.permutation(len(positives))[:SCREEN_PAIRS]]
    others = negatives[rng.permutation(len(negatives))[: 4 * SCREEN_PAIRS]]
    hidden = torch.from_numpy(np.stack([sample[:, 0], np.full(len(sample), target), sample[:, 1]], 1))
    matrices = DirectionMatrices(graph, config.damping, hidden)
    walks = matrices.pair_walks(patterns, np.concatenate([sample, others]))
    counted = (walks > 0).sum(1, keepdims=True)
    scale = np.where(counted > 0, walks.sum(1, keepdims=True) / np.maximum(counted, 1), 1.0)
    scaled = np.arcsinh(walks / scale)
    gap = scaled[:, : len(sample)].mean(1) - scaled[:, len(sample) :].mean(1)
    separation = np.abs(gap) / (scaled.std(1) + 1e-6)
    kept = np.sort(np.argsort(-separation)[: config.max_candidates])
    return [patterns[i] for i in kept.tolist()]


# scikit-learn is imported where it fits, not with this module: a server imports it at start (about 0.7 s)
# and fits only when asked to train
def _regression(regularisation: float, max_iter: int = 2000) -> LogisticRegression:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=regularisation, max_iter=max_iter)


def _ranking_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """``(AUROC, average precision)`` of ``scores`` against 0/1 ``labels``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores))


def _sample_negatives(
    positives: np.ndarray, heads: np.ndarray, tails: np.ndarray, limit: int, rng: np.random.Generator
) -> np.ndarray:
    """Candidate pairs without the relation: all of them, or ``limit`` drawn uniformly."""
    total = heads.size * tails.size
    known = set(map(tuple, positives.tolist()))
    if total - len(known) <= limit:
        grid = np.stack(np.meshgrid(heads, tails, indexing="ij"), -1).reshape(-1, 2)
        return np.array([p for p in grid.tolist() if tuple(p) not in known], dtype=np.int64).reshape(-1, 2)
    drawn = np.stack([rng.choice(heads, 2 * limit), rng.choice(tails, 2 * limit)], 1)
    drawn = np.unique(drawn, axis=0)
    drawn = np.array([p for p in drawn.tolist() if tuple(p) not in known], dtype=np.int64)
    return drawn[rng.permutation(len(drawn))[:limit]]
