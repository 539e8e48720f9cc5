"""Distinct edges of edge columns, with numpy alone (the bulk readers use it without loading torch)."""

from __future__ import annotations

import numpy as np


def first_appearances(
    heads: np.ndarray, rels: np.ndarray, tails: np.ndarray, num_entities: int, num_relations: int
) -> np.ndarray | None:
    """Positions of each distinct edge's first appearance, ascending; None when no edge repeats."""
    keys = (heads.astype(np.int64) * max(num_relations, 1) + rels) * max(num_entities, 1) + tails
    _, first = np.unique(keys, return_index=True)
    return None if first.size == keys.size else np.sort(first)
