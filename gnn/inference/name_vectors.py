"""Entity name vectors, held only for the entities whose names an encoder reads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from graphfuse.gnn.inference.linking import nearest_entities

GROWTH = 1.25  # spare rows allocated when the table fills (amortises growth by small passes)


class NameVectors:
    """An ``(N, D)`` table of entity name vectors that stores rows only for entities given one.

    Entity ``i``'s vector is ``table[row_of[i]]``; an entity without a row (``row_of[i] == -1``: an id such
    as ``user:1234`` or ``42``, whose name carries no words) reads as a zero vector and costs 4 bytes
    instead of a row. Indexing returns dense rows, so readers see an ``(N, D)`` tensor.

    Args:
        dimensions: ``D``.
        dtype: how rows are held (``float16`` halves them; readers upcast).
    """

    def __init__(self, dimensions: int, dtype: torch.dtype = torch.float32) -> None:
        self.row_of = torch.zeros(0, dtype=torch.int32)  # (N,) row of each entity, -1 for none
        self._rows = torch.zeros(0, dimensions, dtype=dtype)  # (capacity, D)
        self._entities = torch.zeros(0, dtype=torch.long)  # (capacity,) entity of each row
        self._count = 0

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.row_of.numel(), self._rows.shape[1]))

    @property
    def dtype(self) -> torch.dtype:
        return self._rows.dtype

    @property
    def rows_held(self) -> int:
        """Entities with a row (their vectors may still be zero, waiting to be embedded)."""
        return self._count

    @property
    def table(self) -> Tensor:
        """``(rows_held, D)`` the held rows; row ``j`` belongs to entity ``entities[j]``."""
        return self._rows[: self._count]

    @property
    def entities(self) -> Tensor:
        return self._entities[: self._count]

    def __getitem__(self, index: Tensor | int | slice) -> Tensor:
        rows = self.row_of[index]
        out = self._rows.new_zeros(*rows.shape, self._rows.shape[1])
        held = rows >= 0
        out[held] = self._rows[rows[held].long()]
        return out

    def grow(self, num_entities: int) -> None:
        """Room for entities added to the graph since (without rows until given vectors)."""
        grown = num_entities - self.row_of.numel()
        if grown > 0:
            self.row_of = torch.cat([self.row_of, torch.full((grown,), -1, dtype=torch.int32)])

    def reserve(self, entities: Sequence[int]) -> None:
        """Give ``entities`` rows (zero until :meth:`set`) so that passes of vectors fill them in place."""
        index = torch.as_tensor(entities, dtype=torch.long)
        new = torch.unique(index[self.row_of[index] < 0])
        if not new.numel():
            return
        needed = self._count + new.numel()
        if needed > self._rows.shape[0]:
            capacity = max(needed, int(self._rows.shape[0] * GROWTH))
            rows = self._rows.new_zeros(capacity, self._rows.shape[1])
            rows[: self._count] = self.table
            entities = torch.zeros(capacity, dtype=torch.long)
            entities[: self._count] = self.entities
            self._rows, self._entities = rows, entities
        self.row_of[new] = torch.arange(self._count, needed, dtype=torch.int32)
        self._entities[self._count : needed] = new
        self._count = needed

    def set(self, entities: Sequence[int], vectors: Tensor) -> None:
        """Store ``vectors`` ``(len(entities), D)`` as the entities' rows."""
        if not len(entities):
            return
        self.reserve(entities)
        rows = self.row_of[torch.as_tensor(entities, dtype=torch.long)].long()
        self._rows[rows] = vectors.to(self._rows.dtype)

    def nearest(self, query: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Top-``k`` entities by cosine similarity to each query, as :func:`nearest_entities` over the held
        rows; returns ``(scores, entity indices)``. With no rows held, every entity scores 0."""
        if not self._count:
            k = min(k, self.row_of.numel())
            return query.new_zeros(*query.shape[:-1], k), torch.arange(k).expand(*query.shape[:-1], k)
        scores, rows = nearest_entities(query, self.table, k)
        return scores, self.entities[rows]
