"""Link prediction from relation-path patterns, as Project Rephetio predicts treatments (Himmelstein et al.,
eLife 2017): a logistic regression over degree-weighted path counts.

For a target relation ``r``, each pattern of one to three directed relations leading from ``r``'s heads to its
tails is a feature of a pair ``(h, t)``: the number of walks from ``h`` to ``t`` along it, each edge
``u -d-> v`` weighed ``(out_d(u) * in_d(v)) ** -damping`` (DWPC, with walks for paths), asinh-scaled and
standardised. The head's and the tail's numbers of ``r`` edges are two more features. A pair's score depends
on that pair alone, never on the others scored with it, so every pair of a graph can be ranked together;
each pattern's part of the logit is its share of the evidence.

Patterns name relations by id, so a predictor keeps serving a graph that has gained entities, edges or
relations since it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph

Pattern = tuple[tuple[str, bool], ...]  # (relation id, walked tail to head) per hop
ROW_CHUNK = 512  # start entities whose walks are multiplied out together


@dataclass
class PathPatternConfig:
    max_length: int = 3  # hops of the longest pattern
    max_candidates: int = 2000  # patterns counted for every fitted pair (screened on a sample beyond this)
    max_patterns: int = 100  # patterns kept per relation (those weighing most); each costs lookup time
    damping: float = 0.4  # degree damping of each edge's weight (Rephetio's w)
    folds: int = 3  # a pair's own edge is hidden from its features by training on folds
    max_negatives: int = 200_000  # pairs without the relation fitted on (sampled beyond this)
    regularisation: float = 0.1  # inverse L2 strength of the logistic regression (C)
    seed: int = 0


class DirectionMatrices:
    """Every directed relation's degree-weighted adjacency as a ``(N, N)`` CSR matrix.

    Direction ``r`` walks head to tail, ``R + r`` tail to head; the second is the first's transpose, so a
    pattern walked backwards counts the same walks.

    Args:
        graph: the graph.
        damping: the degree damping ``w``.
        hidden: ``(K, 3)`` triples left out (a fold's own edges).
    """

    def __init__(self, graph: KnowledgeGraph, damping: float, hidden: Tensor | None = None) -> None:
        heads, rels, tails = (x.numpy() for x in graph.edges)
        n, num_relations = graph.num_entities, graph.num_relations
        keep = np.ones(heads.shape[0], dtype=bool)
        if hidden is not None and hidden.numel():
            keys = (heads.astype(np.int64) * num_relations + rels) * n + tails
            dropped = (hidden[:, 0] * num_relations + hidden[:, 1]) * n + hidden[:, 2]
            keep = ~np.isin(keys, dropped.numpy())
        self.num_entities, self.num_relations = n, num_relations
        self.forward: list[sp.csr_matrix] = []
        self.degrees: list[tuple[np.ndarray, np.ndarray]] = []  # (out, in) edge counts per relation
        order = np.argsort(rels[keep], kind="stable")
        bounds = np.searchsorted(rels[keep][order], np.arange(num_relations + 1))
        h, t = heads[keep][order], tails[keep][order]
        for r in range(num_relations):
            rows, cols = h[bounds[r] : bounds[r + 1]], t[bounds[r] : bounds[r + 1]]
            matrix = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols)), shape=(n, n))
            matrix.sum_duplicates()
            matrix.data[:] = 1.0
            out_degree = np.asarray(matrix.sum(1)).ravel()
            in_degree = np.asarray(matrix.sum(0)).ravel()
            self.degrees.append((out_degree, in_degree))
            scale_out = np.power(np.maximum(out_degree, 1.0), -damping, dtype=np.float32)
            scale_in = np.power(np.maximum(in_degree, 1.0), -damping, dtype=np.float32)
            self.forward.append(sp.diags(scale_out) @ matrix @ sp.diags(scale_in))
        self._backward: dict[int, sp.csr_matrix] = {}

    def __getitem__(self, d: int) -> sp.csr_matrix:
        if d < self.num_relations:
            return self.forward[d]
        found = self._backward.get(d)
        if found is None:
            found = self._backward[d] = self.forward[d - self.num_relations].T.tocsr()
        return found

    def walks(
        self,
        starts: np.ndarray,
        patterns: Sequence[tuple[int, ...]],
        ends: np.ndarray,
        pairs: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """``(P, S, E)`` degree-weighted walk counts from each start entity to each end entity along each
        pattern of directions, or with ``pairs`` (positions in ``starts`` and in ``ends``) ``(P, K)`` the
        counts of those pairs only. Patterns sharing a prefix share its products."""
        shape = (
            (len(patterns), pairs[0].shape[0]) if pairs else (len(patterns), starts.shape[0], ends.shape[0])
        )
        out = np.zeros(shape, dtype=np.float32)
        last = {}  # direction -> its matrix restricted to the end columns
        for begin in range(0, starts.shape[0], ROW_CHUNK):
            rows = starts[begin : begin + ROW_CHUNK]
            if pairs:
                chosen = np.flatnonzero((pairs[0] >= begin) & (pairs[0] < begin + rows.shape[0]))
                if not chosen.size:
                    continue
            prefixes: dict[tuple[int, ...], sp.csr_matrix] = {
                (): sp.csr_matrix(
                    (np.ones(rows.shape[0], np.float32), (np.arange(rows.shape[0]), rows)),
                    shape=(rows.shape[0], self.num_entities),
                )
            }
            for p, pattern in enumerate(patterns):
                for i in range(1, len(pattern)):
                    if pattern[:i] not in prefixes:
                        prefixes[pattern[:i]] = prefixes[pattern[: i - 1]] @ self[pattern[i - 1]]
                d = pattern[-1]
                if d not in last:
                    last[d] = self[d][:, ends].tocsc()
                counts = (prefixes[pattern[:-1]] @ last[d]).tocsr()
                if pairs:
                    out[p, chosen] = np.asarray(counts[pairs[0][chosen] - begin, pairs[1][chosen]]).ravel()
                else:
                    out[p, begin : begin + rows.shape[0]] = counts.toarray()
        return out

    def pair_walks(self, patterns: Sequence[tuple[int, ...]], pairs: np.ndarray) -> np.ndarray:
        """``(P, K)`` walk counts of ``K`` ``(start, end)`` entity pairs along each pattern."""
        if not patterns:
            return np.zeros((0, pairs.shape[0]), dtype=np.float32)
        starts, start_at = np.unique(pairs[:, 0], return_inverse=True)
        ends, end_at = np.unique(pairs[:, 1], return_inverse=True)
        return self.walks(starts, patterns, ends, (start_at, end_at))


def candidates(
    graph: KnowledgeGraph, kinds: Sequence[str], profile: dict[int, float], threshold: float
) -> np.ndarray:
    """The entities of ``kinds``; on an untyped graph (no kinds), those whose outgoing directions weigh at
    least ``threshold`` in ``profile`` (direction -> the share of a relation's heads, or tails, using it)."""
    if kinds:
        return np.flatnonzero(np.isin(np.array(graph.types, dtype=object), list(kinds)))
    return np.flatnonzero(profile_scores(graph, profile) >= threshold)


def profile_scores(graph: KnowledgeGraph, profile: dict[int, float]) -> np.ndarray:
    """Each entity's summed share over the directions of ``profile`` it has an edge along."""
    heads, rels, tails = (x.numpy() for x in graph.edges)
    score = np.zeros(graph.num_entities)
    for d, share in profile.items():
        relation, back = graph.relation_of(d)
        score[np.unique(tails[rels == relation] if back else heads[rels == relation])] += share
    return score


def reversed_pattern(pattern: tuple[int, ...], num_relations: int) -> tuple[int, ...]:
    """The same pattern walked from its end: directions in reverse order, each one inverted."""
    return tuple((d + num_relations) % (2 * num_relations) for d in reversed(pattern))


@dataclass
class RelationPatterns:
    """One target relation's fitted pattern regression."""

    relation: str  # relation id
    patterns: list[Pattern]
    scale: Tensor  # (P,) walk count that asinh scales to 1 (the mean over pairs with a walk)
    mean: Tensor  # (P + 2,) standardisation of the features: patterns, then log head and tail degrees
    std: Tensor  # (P + 2,)
    weights: Tensor  # (P + 2,)
    bias: float
    head_kinds: tuple[str, ...]  # entity kinds of the relation's heads: the candidate heads (typed graphs)
    tail_kinds: tuple[str, ...]
    # untyped graphs: the candidates are the entities scoring at least ``threshold`` by the share of the
    # relation's heads (tails) using each direction they have an edge along
    head_profile: dict[tuple[str, bool], float]
    tail_profile: dict[tuple[str, bool], float]
    head_threshold: float
    tail_threshold: float
    # Platt scaling (slope, offset), fitted on how the logits would serve pairs whose edge is missing
    calibration: tuple[float, float] = (1.0, 0.0)

    def logits(self, walks: np.ndarray, head_degree: np.ndarray, tail_degree: np.ndarray) -> Tensor:
        """Calibrated logits of pairs from their ``(P, ...)`` walk counts and ``(...)`` degrees in the
        relation."""
        slope, offset = self.calibration
        return slope * (self.features(walks, head_degree, tail_degree) @ self.weights + self.bias) + offset

    def features(self, walks: np.ndarray, head_degree: np.ndarray, tail_degree: np.ndarray) -> Tensor:
        """``(..., P + 2)`` standardised features."""
        scaled = np.arcsinh(walks / self.scale.numpy().reshape((-1,) + (1,) * (walks.ndim - 1)))
        raw = np.concatenate(
            [np.moveaxis(scaled, 0, -1), np.log1p(np.stack([head_degree, tail_degree], -1))], -1
        )
        return (torch.from_numpy(raw.astype(np.float32)) - self.mean) / self.std

    def contributions(self, walks: np.ndarray) -> Tensor:
        """``(..., P)`` each pattern's part of the logit beyond a pair with no walk along it."""
        zero = -self.mean[: len(self.patterns)] / self.std[: len(self.patterns)]
        scaled = self.features(walks, np.zeros(walks.shape[1:]), np.zeros(walks.shape[1:]))
        return (scaled[..., : len(self.patterns)] - zero) * self.weights[: len(self.patterns)]

    def state(self) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "patterns": [[[r, bool(back)] for r, back in p] for p in self.patterns],
            "scale": self.scale,
            "mean": self.mean,
            "std": self.std,
            "weights": self.weights,
            "bias": self.bias,
            "head_kinds": list(self.head_kinds),
            "tail_kinds": list(self.tail_kinds),
            "head_profile": [[r, back, share] for (r, back), share in self.head_profile.items()],
            "tail_profile": [[r, back, share] for (r, back), share in self.tail_profile.items()],
            "thresholds": [self.head_threshold, self.tail_threshold],
            "calibration": list(self.calibration),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RelationPatterns:
        return cls(
            state["relation"],
            [tuple((r, bool(back)) for r, back in p) for p in state["patterns"]],
            state["scale"],
            state["mean"],
            state["std"],
            state["weights"],
            float(state["bias"]),
            tuple(state["head_kinds"]),
            tuple(state["tail_kinds"]),
            {(r, bool(back)): float(share) for r, back, share in state["head_profile"]},
            {(r, bool(back)): float(share) for r, back, share in state["tail_profile"]},
            *(float(x) for x in state["thresholds"]),
            tuple(float(x) for x in state.get("calibration", (1.0, 0.0))),  # type: ignore[arg-type]
        )


class PathPatternPredictor:
    """Pattern regressions for some relations of a graph (see the module docstring).

    Args:
        targets: one fitted regression per relation it predicts.
        config: how they were fitted (the damping is needed to score).
    """

    kind = "path_pattern_predictor"

    def __init__(self, targets: Sequence[RelationPatterns], config: PathPatternConfig) -> None:
        self.targets = {t.relation: t for t in targets}
        self.config = config

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(relations={sorted(self.targets)}, {self.config})"

    def checkpoint(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": vars(self.config),
            "targets": [t.state() for t in self.targets.values()],
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> PathPatternPredictor:
        if checkpoint.get("kind") != cls.kind:
            raise KeyError("not a path pattern predictor checkpoint")
        targets = [RelationPatterns.from_state(t) for t in checkpoint["targets"]]
        return cls(targets, PathPatternConfig(**checkpoint["config"]))
