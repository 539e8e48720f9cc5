import torch
import torch.nn.functional as F

from graphfuse.gnn.inference.linking import nearest_entities
from graphfuse.gnn.inference.name_vectors import NameVectors


def test_only_entities_given_vectors_hold_rows_and_the_rest_read_as_zero():
    table = NameVectors(4, torch.float16)
    table.grow(1000)
    vectors = F.normalize(torch.randn(2, 4), dim=-1)
    table.set([7, 500], vectors)
    assert table.shape == (1000, 4) and table.rows_held == 2 and table.dtype == torch.float16
    dense = table[torch.tensor([500, 3, 7])]
    torch.testing.assert_close(dense[0], vectors[1].half())
    assert dense[1].abs().sum() == 0
    torch.testing.assert_close(table[7], vectors[0].half())


def test_reserved_rows_are_filled_in_place_and_growth_keeps_earlier_vectors():
    table = NameVectors(3)
    table.grow(10)
    table.reserve([2, 4, 2])
    assert table.rows_held == 2 and table[2].abs().sum() == 0
    first = torch.randn(1, 3)
    table.set([4], first)
    table.grow(5000)
    later = torch.randn(4000, 3)
    table.set(list(range(1000, 5000)), later)  # past the spare rows: the table is reallocated
    torch.testing.assert_close(table[4], first[0])
    torch.testing.assert_close(table[torch.arange(1000, 5000)], later)
    assert table.rows_held == 4002


def test_nearest_scans_held_rows_and_answers_with_entity_indices():
    torch.manual_seed(0)
    dense = F.normalize(torch.randn(50, 8), dim=-1)
    named = torch.arange(0, 50, 3)
    dense[torch.tensor([i for i in range(50) if i % 3])] = 0.0  # entities without names: zero rows
    table = NameVectors(8, torch.float16)
    table.grow(50)
    table.set(named.tolist(), dense[named])
    query = F.normalize(torch.randn(2, 8), dim=-1)
    scores, entities = table.nearest(query, 3)
    expected_scores, expected = nearest_entities(query, dense.half(), 3)
    assert torch.equal(entities, expected)
    torch.testing.assert_close(scores, expected_scores)


def test_nearest_with_no_rows_scores_zero():
    table = NameVectors(8)
    table.grow(5)
    scores, entities = table.nearest(torch.ones(8) / 8**0.5, 2)
    assert scores.tolist() == [0.0, 0.0] and entities.tolist() == [0, 1]
