"""Top-k ranking metrics for recommenders (the LightGCN protocol) and the adjacency-list file format.

Protocol: every user with held-out items ranks *all* items, the user's known (training) items excluded;
``Recall@k = |top-k ∩ held out| / |held out|``; ``NDCG@k`` has binary relevance and an ideal DCG over
``min(|held out|, k)`` items; both are averaged over the users with at least one held-out item.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor
from tqdm import tqdm


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


@torch.no_grad()
def evaluate_recommender(
    model: Recommender,
    train_users: Tensor,
    train_items: Tensor,
    held_users: Tensor,
    held_items: Tensor,
    k: int = 20,
    batch_size: int = 1024,
    progress: bool = False,
) -> dict[str, float | int]:
    """Mean Recall@k and NDCG@k of ``model`` over the users with held-out items.

    Each block of ``batch_size`` users is scored from its training rows; training items are masked.

    Returns:
        ``{"recall": ..., "ndcg": ..., "users": ..., "seconds": ...}`` (``seconds``: scoring and ranking).
    """
    evaluated = torch.unique(held_users)
    known = interaction_rows(train_users, train_items, evaluated, model.num_items)
    held = interaction_rows(held_users, held_items, evaluated, model.num_items)
    recalls, ndcgs = [], []
    started = time.perf_counter()
    bar = tqdm(total=evaluated.numel(), desc="ranking", unit="user", disable=not progress)
    for start in range(0, evaluated.numel(), batch_size):
        stop = min(start + batch_size, evaluated.numel())
        rows = slice_rows(known, start, stop)
        scores = model.score(rows).float()
        scores[rows.to_dense().to(scores.device) > 0] = -math.inf
        recall, ndcg = recall_ndcg_at_k(scores, slice_rows(held, start, stop), k)
        recalls.append(recall)
        ndcgs.append(ndcg)
        bar.update(stop - start)
    bar.close()
    seconds = time.perf_counter() - started
    users = evaluated.numel()
    recall, ndcg = torch.cat(recalls), torch.cat(ndcgs)
    return {"recall": float(recall.mean()), "ndcg": float(ndcg.mean()), "users": users, "seconds": seconds}


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
