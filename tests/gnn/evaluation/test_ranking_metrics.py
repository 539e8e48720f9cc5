import math

import pytest
import torch

from graphfuse.gnn.evaluation.ranking_metrics import (
    hold_out_per_user,
    interaction_rows,
    rank_held_out,
    read_adjacency,
    recall_ndcg_at_k,
)

INF = float("-inf")


def test_recall_ndcg_by_hand():
    # User 0 ranks items 3, 1, 0, 2 (item 4 known); held out {1, 2}; k = 2: hit at rank 2 only.
    # User 1 ranks 0 first; held out {0}: one hit at rank 1.
    scores = torch.tensor([[2.0, 3.0, 1.0, 4.0, INF], [5.0, 1.0, 2.0, 3.0, 4.0]])
    recall, ndcg = recall_ndcg_at_k(scores, [[1, 2], [0]], k=2)
    assert torch.allclose(recall, torch.tensor([0.5, 1.0]))
    idcg = 1 + 1 / math.log2(3)
    assert torch.allclose(ndcg, torch.tensor([(1 / math.log2(3)) / idcg, 1.0]))


def test_ideal_dcg_is_cut_at_k():
    # Three held-out items, k = 2, both top items relevant: NDCG 1, recall 2/3.
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    recall, ndcg = recall_ndcg_at_k(scores, [[0, 1, 2]], k=2)
    assert recall.item() == pytest.approx(2 / 3)
    assert ndcg.item() == pytest.approx(1.0)


def test_csr_held_out_equals_lists():
    scores = torch.randn(3, 6)
    lists = [[0, 5], [2], [1, 3, 4]]
    csr = interaction_rows(
        torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 5, 2, 1, 3, 4]), torch.arange(3), 6
    )
    for a, b in zip(recall_ndcg_at_k(scores, lists, 3), recall_ndcg_at_k(scores, csr, 3), strict=True):
        assert torch.equal(a, b)


def test_user_without_held_out_items_is_rejected():
    with pytest.raises(ValueError, match="at least one"):
        recall_ndcg_at_k(torch.randn(2, 4), [[1], []], 2)


def test_interaction_rows_dedupes_and_selects():
    rows = interaction_rows(torch.tensor([2, 2, 0, 2]), torch.tensor([3, 1, 0, 3]), torch.tensor([2, 5]), 4)
    assert torch.equal(rows.to_dense(), torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))


def test_read_adjacency(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("0 3 1\n1\n2 0\n")
    users, items = read_adjacency(path)
    assert users.tolist() == [0, 0, 2] and items.tolist() == [3, 1, 0]
    path.write_text("0 a\n")
    with pytest.raises(ValueError, match="train.txt:1"):
        read_adjacency(path)


class Oracle:
    """Scores each user's held-out items highest (a perfect recommender for the test below)."""

    num_items = 5

    def __init__(self, held: dict[int, list[int]], train: dict[int, list[int]]) -> None:
        self.by_row = {tuple(sorted(train[u])): items for u, items in held.items()}

    def score(self, rows):
        dense = rows.to_dense()
        out = torch.zeros(dense.shape)
        for b, row in enumerate(dense):
            out[b, self.by_row[tuple(row.nonzero().flatten().tolist())]] = 1.0
        return out


def test_rank_held_out_perfect_and_masking():
    train = {0: [0], 1: [1, 2], 2: [4]}
    held = {0: [3], 1: [0, 4]}  # user 2 has none: not counted
    tu = torch.tensor([u for u, items in train.items() for _ in items])
    ti = torch.tensor([i for items in train.values() for i in items])
    hu = torch.tensor([u for u, items in held.items() for _ in items])
    hi = torch.tensor([i for items in held.values() for i in items])
    result, _ = rank_held_out(Oracle(held, train), (tu, ti), (hu, hi), k=2, batch_size=1)
    assert result.users == 2
    assert result.recall == pytest.approx(1.0) and result.ndcg == pytest.approx(1.0)


def test_hold_out_per_user_keeps_the_share_and_one_item_of_everyone():
    users = torch.repeat_interleave(torch.arange(400), torch.tensor([1, 2, 10, 30] * 100))
    held = hold_out_per_user(users, 0.2, seed=3)
    per_user = torch.bincount(users[held], minlength=400)
    assert torch.all(per_user < torch.bincount(users))  # at least one interaction of everyone stays in
    assert abs(held.float().mean().item() - 0.2) < 0.02  # the expected share, rounding at random per user
    assert torch.equal(held, hold_out_per_user(users, 0.2, seed=3)) and not torch.equal(
        held, hold_out_per_user(users, 0.2, seed=4)
    )
