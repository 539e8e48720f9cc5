"""Top-k ranking metrics for recommenders (the LightGCN protocol) and the adjacency-list file format.

Protocol: every user with held-out items ranks *all* items, the user's known (training) items excluded;
``Recall@k = |top-k ∩ held out| / |held out|``; ``NDCG@k`` has binary relevance and an ideal DCG over
``min(|held out|, k)`` items; both are averaged over the users with at least one held-out item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from graphfuse.gnn.inference.recommendations import Calibration, TextCalibration, profiles


class Recommender(Protocol):
    num_items: int

    def score(self, rows: Tensor) -> Tensor: ...


def read_adjacency(path: str | Path) -> tuple[Tensor, Tensor]:
    """Read ``user item item ...`` lines (0-based ids; a user alone on a line has no items).

    Returns:
        ``(users, items)``: ``(E,)`` long tensors, one entry per listed pair.
    """
    users: list[int] = []
    items: list[int] = []
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                ids = [int(f) for f in fields]
            except ValueError as error:
                raise ValueError(f"{path}:{number}: expected integer ids (got {line.strip()!r})") from error
            users.extend([ids[0]] * (len(ids) - 1))
            items.extend(ids[1:])
    return torch.tensor(users, dtype=torch.long), torch.tensor(items, dtype=torch.long)


def interaction_rows(users: Tensor, items: Tensor, selected: Tensor, num_items: int) -> Tensor:
    """The rows of ``selected`` users as a ``(len(selected), num_items)`` float CSR with 1.0 per pair
    (duplicates counted once)."""
    position = torch.full((int(max(users.max(), selected.max())) + 1,), -1, dtype=torch.long)
    position[selected] = torch.arange(selected.numel())
    row = position[users]
    keep = row >= 0
    key = torch.unique(row[keep] * num_items + items[keep])  # sorted by row, then item
    crow = torch.zeros(selected.numel() + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(key // num_items, minlength=selected.numel()), 0)
    values = torch.ones(key.numel())
    return torch.sparse_csr_tensor(crow, key % num_items, values, size=(selected.numel(), num_items))


def hold_out_per_user(users: Tensor, share: float, seed: int = 0) -> Tensor:
    """A boolean mask over interactions: ``share`` of each user's at random, held out (a user's count is
    rounded up or down at random, so that the expected share is exact; at least one stays in)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(users.numel(), generator=generator, dtype=torch.float64)
    order = torch.argsort(users * 2.0 + noise)  # grouped by user, shuffled within
    counts = torch.bincount(users)
    starts = torch.cumsum(counts, 0) - counts
    wanted = (counts.float() * share + torch.rand(counts.numel(), generator=generator)).floor().long()
    wanted = torch.minimum(wanted, counts - 1)
    within = torch.arange(users.numel()) - starts[users[order]]
    held = within < wanted[users[order]]
    mask = torch.zeros(users.numel(), dtype=torch.bool)
    mask[order] = held
    return mask


def recall_ndcg_at_k(
    scores: Tensor, held_out: Sequence[Sequence[int]] | Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """Per-user Recall@k and NDCG@k.

    Args:
        scores: ``(B, I)`` with known items already at ``-inf``.
        held_out: per user, the held-out item ids (a list of lists or a ``(B, I)`` sparse CSR); every user
            needs at least one.
        k: cut-off.

    Shapes:
        returns two ``(B,)`` float tensors.
    """
    if isinstance(held_out, Tensor):
        crow, col = held_out.crow_indices().cpu(), held_out.col_indices().cpu()
        held_out = [col[crow[b] : crow[b + 1]].tolist() for b in range(crow.numel() - 1)]
    if scores.dim() != 2 or scores.shape[0] != len(held_out):
        raise ValueError(
            f"Expected scores of shape (B, I) with B = {len(held_out)} users (got {tuple(scores.shape)})"
        )
    counts = torch.tensor([len(set(h)) for h in held_out], dtype=torch.float32)
    if (counts == 0).any():
        raise ValueError("Expected at least one held-out item per user")
    k = min(k, scores.shape[1])
    top = torch.topk(scores, k, dim=1).indices.cpu()  # (B, k)
    truth = torch.zeros(scores.shape, dtype=torch.bool)
    rows = torch.repeat_interleave(torch.arange(len(held_out)), torch.tensor([len(h) for h in held_out]))
    truth[rows, torch.tensor([i for h in held_out for i in h], dtype=torch.long)] = True
    hits = torch.gather(truth, 1, top).float()  # (B, k)
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32))  # (k,)
    ideal = torch.cumsum(discount, 0)[(counts.clamp(max=k) - 1).long()]
    return hits.sum(1) / counts, (hits * discount).sum(1) / ideal


@dataclass(frozen=True)
class RankingMetrics:
    """Mean Recall@k and NDCG@k over the users with held-out items."""

    users: int
    recall: float
    ndcg: float
    k: int


@dataclass(frozen=True)
class ColdItems:
    """Items held out whole (all their interactions), the name vectors of every item (zero where unnamed),
    and, once fitted, the text calibration that ranks them."""

    positions: Tensor  # (C,) model item positions
    vectors: Tensor  # (I, D)
    text: TextCalibration | None = None


@dataclass
class RankingSamples:
    """Calibration samples of the graph scores and, with cold items, of the text similarities."""

    graph: list[tuple[Tensor, Tensor, Tensor, Tensor]] = field(default_factory=list)
    text: list[tuple[Tensor, Tensor]] = field(default_factory=list)


def rank_held_out(
    model: Recommender,
    known: tuple[Tensor, Tensor],
    held: tuple[Tensor, Tensor],
    k: int = 20,
    depth: int = 0,
    on_batch: Callable[[int], None] | None = None,
    cold: ColdItems | None = None,
    calibration: Calibration | None = None,
    batch_size: int = 512,
) -> tuple[RankingMetrics, RankingSamples]:
    """Recall@k and NDCG@k of held-out interactions (every item ranked, known ones excluded), and with
    ``depth`` the calibration samples of each user's top ``depth`` items: graph scores ``(score, user's top
    score, rank, is held out)`` and, with ``cold`` items, ``(cosine with the user's profile, is held out)``.
    With ``cold.text`` and ``calibration`` the ranking is the served one: cold items compete with the
    graph's by probability."""
    known_users, known_items = known
    held_users, held_items = held
    evaluated = torch.unique(held_users)
    known_rows = interaction_rows(known_users, known_items, evaluated, model.num_items)
    held_rows = interaction_rows(held_users, held_items, evaluated, model.num_items)
    recalls, ndcgs, samples = [], [], RankingSamples()
    for start in range(0, evaluated.numel(), batch_size):
        stop = min(start + batch_size, evaluated.numel())
        rows = slice_rows(known_rows, start, stop)
        dense = rows.to_dense() > 0
        scores = model.score(rows).float()
        scores[dense.to(scores.device)] = float("-inf")
        truth = slice_rows(held_rows, start, stop)
        crow, col = truth.crow_indices(), truth.col_indices()
        held_out = [col[crow[b] : crow[b + 1]].tolist() for b in range(stop - start)]
        similarity = None
        if cold is not None and cold.positions.numel():
            scores[:, cold.positions] = float("-inf")  # the graph knows nothing of them
            taste = profiles(cold.vectors, [row.nonzero().flatten() for row in dense])
            similarity = taste @ cold.vectors[cold.positions].T  # (B, C)
            if depth:
                hit = truth.to_dense()[:, cold.positions] > 0
                named = taste.abs().sum(1) > 0
                samples.text.append((similarity[named].flatten(), hit[named].flatten()))
        if depth:
            top = torch.topk(scores, min(depth, scores.shape[1]), dim=1)
            hit = torch.gather(truth.to_dense(), 1, top.indices) > 0
            ranks = torch.arange(top.values.shape[1]).expand_as(top.values)
            samples.graph.append((top.values, top.values[:, :1].expand_as(top.values), ranks, hit))
        if similarity is not None and cold is not None and cold.text is not None and calibration is not None:
            scores = _served_ranking(scores, similarity, cold, calibration, k)
        recall, ndcg = recall_ndcg_at_k(scores, held_out, k)
        recalls.append(recall)
        ndcgs.append(ndcg)
        if on_batch:
            on_batch(stop - start)
    recall, ndcg = torch.cat(recalls), torch.cat(ndcgs)
    return RankingMetrics(evaluated.numel(), float(recall.mean()), float(ndcg.mean()), k), samples


def _served_ranking(
    scores: Tensor, similarity: Tensor, cold: ColdItems, calibration: Calibration, k: int
) -> Tensor:
    """``(B, I)`` with the probabilities of the top ``k`` graph and top ``k`` cold items, -inf elsewhere."""
    assert cold.text is not None
    top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    graph_p = calibration.ranked(top.values)
    text_p = cold.text(similarity)
    out = torch.full_like(scores, float("-inf"))
    out.scatter_(1, top.indices, graph_p)
    out[:, cold.positions] = text_p
    return out


def slice_rows(csr: Tensor, start: int, stop: int) -> Tensor:
    """Rows ``start:stop`` of a CSR matrix, as a CSR matrix."""
    crow = csr.crow_indices()
    first, last = int(crow[start]), int(crow[stop])
    return torch.sparse_csr_tensor(
        crow[start : stop + 1] - first,
        csr.col_indices()[first:last],
        csr.values()[first:last],
        size=(stop - start, csr.shape[1]),
    )
