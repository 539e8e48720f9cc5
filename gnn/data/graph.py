"""The knowledge graph in memory: entity and relation ids, names, aliases, and per-relation sparse adjacency.

Edges are indexed by *directed relation* ``d`` in ``[0, 2R)``: ``d < R`` walks relation ``d`` from head to
tail, ``d >= R`` walks relation ``d - R`` backwards (the inverse edge). ``transition(d)`` moves probability
mass along ``d``: ``y = T_d @ x`` puts on every node the mass of its predecessors along ``d``.

Updates never rebuild the sparse matrices on the read path. The matrices are *merged* from a snapshot of the
edges; edges added since the merge live in a small *delta* (its own sparse matrices, read beside the merged
ones), and merged edges retracted since are *masked* (their values set to 0). A merge folds the delta in:
:meth:`KnowledgeGraph.start_merge` snapshots the edges, :meth:`MergeJob.build` builds on any thread, and
:meth:`KnowledgeGraph.finish_merge` swaps the result in, keeping the updates that arrived meanwhile as the
new delta. Without anyone merging in the background, a read merges when the delta outgrows
``delta_limit(edges)``.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from graphfuse.gnn.data.distinct import first_appearances
from graphfuse.gnn.data.records import (
    EntityRecord,
    Record,
    RelationRecord,
    Retraction,
    TripleColumns,
    TripleRecord,
    default_name,
)
from graphfuse.gnn.data.relation_text import RelationPhrases, relation_phrases
from graphfuse.gnn.kernels import cpu as cpu_kernels

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

MERGE_MIN_EDGES = 1024  # a delta this small is never worth a background merge
MERGE_SHARE = 0.01  # background merge once the delta holds this share of the merged edges
SYNC_MERGE_MIN_EDGES = 65536  # a read merges at once past max(this, SYNC_MERGE_SHARE * merged edges)
SYNC_MERGE_SHARE = 0.25

EdgeKey = tuple[int, int, int]  # (head, relation, tail)
# One direction's transition uses the fused kernel from this many edges on; below, torch's product costs
# less than the kernel's fixed overhead (UMLS's directions: 1,000 edges, 19 us in torch against 30 us)
FUSED_MIN_VALUES = 8192
KIND_SAMPLE = 1000  # edges of a relation whose endpoint kinds describe it
EXAMPLES_PER_SIDE = 3  # names of a relation's most connected heads (tails) that describe them without kinds
EXAMPLE_SAMPLE = 100_000  # edges of a relation counted for its most connected ones (evenly spread)


def merge_due_at(edges: int) -> int:
    """Delta size (added + retracted edges) at which a background merge of ``edges`` merged edges is due."""
    return max(MERGE_MIN_EDGES, int(MERGE_SHARE * edges))


def delta_limit(edges: int) -> int:
    """Delta size past which a read merges synchronously (a background merge has fallen behind)."""
    return max(SYNC_MERGE_MIN_EDGES, int(SYNC_MERGE_SHARE * edges))


@dataclass
class RelationAdjacency:
    """The sparse transition of one directed relation, stored over the rows that receive mass only.

    Memory is O(edges): ``rows`` are the destination nodes that have at least one edge along this
    direction and ``matrix`` is a ``(len(rows), N)`` CSR matrix from destinations to sources, 1 per edge
    (0 for an edge retracted since the last merge). Edges added since then are in ``delta``.
    """

    rows: Tensor  # (M,) sorted destination node ids
    matrix: Tensor  # (M, N) sparse CSR
    delta: RelationAdjacency | None = None
    masked: bool = False  # some values are 0 (edges retracted since the merge)

    def apply(self, x: Tensor) -> Tensor:
        """``T_d @ x`` for a dense ``(N, B)`` block; returns ``(N, B)``."""
        out = x.new_zeros(x.shape)
        values = self.matrix.values()
        fused = values.numel() >= FUSED_MIN_VALUES and cpu_kernels.available(x, values)
        for part in (self, self.delta) if self.delta is not None else (self,):
            matrix = part.matrix
            if fused:  # one pass, sources without mass skipped
                cpu_kernels.add_rows(
                    matrix.crow_indices(), matrix.col_indices(), matrix.values(), part.rows, x, out
                )
            elif part.rows.numel():
                out.index_add_(0, part.rows, (matrix @ x.to(matrix.dtype)).to(x.dtype))  # (M, B) into N
        return out

    def predecessors(self, node: int) -> Tensor:
        """Source nodes whose mass reaches ``node`` along this direction."""
        return torch.from_numpy(self.sources_of(node)).long()

    def sources_of(self, node: int) -> np.ndarray:
        """:meth:`predecessors` as a NumPy array: the question generator looks up thousands of single nodes,
        where NumPy's per-call cost is a fraction of torch's."""
        rows, crow, col, values = self._arrays
        pos = int(np.searchsorted(rows, node))
        found = col[:0]
        if pos < rows.shape[0] and rows[pos] == node:
            lo, hi = crow[pos], crow[pos + 1]
            found = col[lo:hi] if not self.masked else col[lo:hi][values[lo:hi] != 0]
        if self.delta is not None:
            found = np.concatenate([found, self.delta.sources_of(node)])
        return found

    @functools.cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        matrix = self.matrix
        return (
            self.rows.numpy(),
            matrix.crow_indices().numpy(),
            matrix.col_indices().numpy(),
            matrix.values().numpy(),
        )


@dataclass(frozen=True)
class StackedTransitions:
    """All directed relations at once: row ``i`` of ``matrix`` feeds node ``rows[i]`` along ``directions[i]``.

    ``matrix @ x`` computes every relation's moved mass in one sparse product (nnz = 2E); weighting each
    row by its direction's per-question weight and summing rows into their nodes gives
    ``sum_d T_d @ (x * w_d)``, since a per-question weight scales a whole column and commutes with ``T_d``.

    A graph updated since its last merge reads its transitions as this merged part, with retracted edges
    masked (``mask`` is 0 there, and so are their values), plus ``delta``: the edges added since, stacked
    the same way. Values (:meth:`with_values`, :meth:`edge_keys`, :attr:`nnz`) cover the merged part's
    values, then the delta's.
    """

    matrix: Tensor  # (M, N) sparse CSR, M = number of (node, direction) pairs with an incoming edge
    transposed: Tensor  # (N, M) sparse CSR: matrix.T, for gradients
    rows: Tensor  # (M,) destination node of each row
    directions: Tensor  # (M,) directed relation of each row
    direction_offsets: list[int]  # direction d owns rows direction_offsets[d] .. direction_offsets[d + 1]
    mask: Tensor | None = None  # (nnz,) 0 for edges retracted since the merge, 1 elsewhere
    delta: StackedTransitions | None = None  # edges added since the merge
    unit_values: bool = False  # every stored value is 1: one stored 1 that matrix and transposed repeat

    @functools.cached_property
    def membership(self) -> Tensor:
        """``(2R, M)`` sparse CSR: 1 where row ``i`` belongs to direction ``d`` (built when first read: only
        gradients need it)."""
        return _membership(self.direction_offsets, self.rows.numel())

    @functools.cached_property
    def row_of_value(self) -> Tensor:
        """``(nnz,)`` the row of ``matrix`` each stored value is in (built when first read)."""
        crow = self.matrix.crow_indices()
        rows = torch.arange(crow.numel() - 1, dtype=crow.dtype)
        return torch.repeat_interleave(rows, torch.diff(crow), output_size=int(crow[-1]))

    @functools.cached_property
    def transpose_order(self) -> Tensor:
        """``(nnz,)``: ``transposed.values() == matrix.values()[transpose_order]`` (built when first read:
        only values other than ones need it)."""
        return _transpose_order(self.matrix.col_indices())

    def to_arrays(self) -> dict[str, np.ndarray]:
        """This block and its node-ordered layout as named arrays (views), which :meth:`from_arrays` reads
        back: only a merged block of unit values (the one a graph's edges build)."""
        if not self.unit_values or self.mask is not None or self.delta is not None:
            raise ValueError("Expected a merged block of unit values (no mask, no delta)")
        offsets, crow, col, directions = self._pull_layout
        tensors = {
            "crow": self.matrix.crow_indices(),
            "col": self.matrix.col_indices(),
            "transposed_crow": self.transposed.crow_indices(),
            "transposed_col": self.transposed.col_indices(),
            "rows": self.rows,
            "directions": self.directions,
            "direction_offsets": torch.tensor(self.direction_offsets, dtype=torch.long),
            "pull_offsets": offsets,
            "pull_crow": crow,
            "pull_col": col,
            "pull_directions": directions,
        }
        return {name: tensor.numpy() for name, tensor in tensors.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], num_entities: int) -> StackedTransitions:
        """The block :meth:`to_arrays` gave, over ``num_entities`` nodes (no copy of the arrays).

        Raises:
            ValueError: the arrays are missing or their sizes do not fit one block of ``num_entities``.
        """
        try:
            t = {name: torch.from_numpy(arrays[name]) for name in _BLOCK_ARRAYS}
        except KeyError as error:
            raise ValueError(f"Expected the block's array {error}") from None
        m, nnz, n = t["rows"].numel(), t["col"].numel(), num_entities
        sizes = {
            "crow": m + 1,
            "transposed_crow": n + 1,
            "transposed_col": nnz,
            "directions": m,
            "pull_offsets": n + 1,
            "pull_crow": m + 1,
            "pull_col": nnz,
            "pull_directions": m,
        }
        wrong = [name for name, size in sizes.items() if t[name].shape != (size,)]
        ends = (t["crow"], t["transposed_crow"], t["pull_crow"])
        if wrong or any(int(crow[0]) != 0 or int(crow[-1]) != nnz for crow in ends):
            raise ValueError(f"Expected one block of {m} rows, {nnz} values and {n} nodes (wrong: {wrong})")
        ones = torch.ones(1).expand(nnz)
        block = cls(
            torch.sparse_csr_tensor(t["crow"], t["col"], ones, size=(m, n), check_invariants=False),
            torch.sparse_csr_tensor(
                t["transposed_crow"], t["transposed_col"], ones, size=(n, m), check_invariants=False
            ),
            t["rows"],
            t["directions"],
            t["direction_offsets"].tolist(),
            unit_values=True,
        )
        block.__dict__["_pull_layout"] = (
            t["pull_offsets"],
            t["pull_crow"],
            t["pull_col"],
            t["pull_directions"],
        )
        return block

    def _carry_built(self, other: StackedTransitions) -> StackedTransitions:
        """``other``, a copy of this structure, with the position arrays built here so far."""
        for name in ("row_of_value", "transpose_order"):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    @property
    def nnz(self) -> int:
        """Stored values, the delta's included."""
        own = int(self.matrix.col_indices().numel())
        return own + (self.delta.nnz if self.delta is not None else 0)

    @property
    def merged(self) -> StackedTransitions:
        """The merged part alone (retracted edges still masked): one plain CSR block."""
        return dataclasses.replace(self, mask=None, delta=None)

    def with_values(self, values: Tensor) -> StackedTransitions:
        """The same structure with other edge values (``(nnz,)``, in ``matrix`` order, then the delta's):
        masks, weights. Masked (retracted) edges stay 0."""
        own = int(self.matrix.col_indices().numel())
        mine = values[:own] if self.mask is None else values[:own] * self.mask
        matrix = torch.sparse_csr_tensor(
            self.matrix.crow_indices(),
            self.matrix.col_indices(),
            mine,
            size=self.matrix.shape,
            check_invariants=False,
        )
        transposed = torch.sparse_csr_tensor(
            self.transposed.crow_indices(),
            self.transposed.col_indices(),
            mine[self.transpose_order],
            size=self.transposed.shape,
            check_invariants=False,
        )
        delta = self.delta.with_values(values[own:]) if self.delta is not None else None
        replaced = dataclasses.replace(
            self, matrix=matrix, transposed=transposed, delta=delta, unit_values=False
        )
        return self._carry_built(replaced)

    @functools.cached_property
    def _pull_layout(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The rows reordered by the node they feed, for the fused kernel that writes each node once:
        ``(offsets (N + 1,), crow (M + 1,), col (nnz,), directions (M,))``; node ``u``'s rows are
        ``offsets[u]..offsets[u + 1]``. A copy, not a view, so that each node's edges are contiguous in
        memory (pulling through a permutation of the rows was 2-3x slower on a 1M-edge graph): about 4 bytes
        per value and 8 per row."""
        offsets, crow, col, directions, order = self._node_ordered()
        if not self.unit_values:  # its stored values are read in this order
            self.__dict__["_pull_order"] = order
        return offsets, crow, col, directions

    @functools.cached_property
    def _pull_order(self) -> Tensor:
        """``(nnz,)``: value ``j`` of the node-ordered copy is stored value ``_pull_order[j]``."""
        return self._node_ordered()[4]

    def _node_ordered(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        n = self.matrix.shape[1]
        index = self.matrix.crow_indices().dtype
        offsets = torch.zeros(n + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(torch.bincount(self.rows, minlength=n), 0)
        rows = torch.argsort(self.rows, stable=True)
        crow = self.matrix.crow_indices().long()
        counts = (crow[1:] - crow[:-1])[rows]
        pulled_crow = torch.zeros(rows.numel() + 1, dtype=torch.long)
        pulled_crow[1:] = torch.cumsum(counts, 0)
        nnz = int(pulled_crow[-1])
        order = torch.repeat_interleave(crow[rows] - pulled_crow[:-1], counts, output_size=nnz)
        order += torch.arange(nnz)
        col = self.matrix.col_indices()[order].to(torch.int32)
        directions = self.directions[rows].to(torch.int32)
        return offsets, pulled_crow.to(index), col, directions, order.to(position_dtype(nnz))

    def edge_block(self, values: Tensor | None = None) -> cpu_kernels.EdgeBlock:
        """This block (the merged part alone) as :func:`graphfuse.gnn.kernels.cpu.propagate` reads it;
        ``values`` ``(nnz,)`` replace the stored ones (masked edges stay 0)."""
        if values is None:
            return self._stored_edge_block
        own = int(self.matrix.col_indices().numel())
        values = values[:own] if self.mask is None else values[:own] * self.mask
        return self._edge_block(values.contiguous())

    def prepare(self) -> StackedTransitions:
        """Build the node-ordered layout the fused kernels and evidence walks read now (on the thread that
        merges), not at the first query that needs it."""
        self._stored_edge_block  # noqa: B018 - a cached property
        if self.delta is not None:
            self.delta.prepare()
        return self

    @functools.cached_property
    def _stored_edge_block(self) -> cpu_kernels.EdgeBlock:
        if self.unit_values:  # one stored 1 for every value, in any order: no reordered copies
            ones = self.matrix.values()
            return self._block(ones, ones)
        return self._edge_block(self.matrix.values())

    def _edge_block(self, values: Tensor) -> cpu_kernels.EdgeBlock:
        return self._block(values[self._pull_order], values[self.transpose_order])

    def _block(self, pulled: Tensor, transposed: Tensor) -> cpu_kernels.EdgeBlock:
        """The kernels' view of this block with ``pulled`` values in the node-ordered layout's order and
        ``transposed`` values in the transpose's."""
        offsets, crow, col, directions = self._pull_layout
        return cpu_kernels.EdgeBlock(
            offsets.numpy(),
            crow.numpy(),
            col.numpy(),
            cpu_kernels.edge_values(pulled),
            directions.numpy(),
            self.transposed.crow_indices().numpy(),
            self.transposed.col_indices().numpy(),
            cpu_kernels.edge_values(transposed),
            self.rows.numpy(),
            self.directions.numpy(),
        )

    def edge_keys(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(source, direction, destination)`` of every stored value, each ``(nnz,)`` int64 (callers pack
        them into keys), matrix order (then the delta's)."""
        rows = self.row_of_value
        keys = (self.matrix.col_indices().long(), self.directions[rows].long(), self.rows[rows].long())
        if self.delta is None:
            return keys
        return tuple(torch.cat(pair) for pair in zip(keys, self.delta.edge_keys(), strict=True))  # type: ignore[return-value]

    def out_degree(self) -> Tensor:
        """``(2R, N)`` sparse CSR: entry ``(d, u)`` counts the edges leaving ``u`` along ``d`` (this block
        alone), without a pass over the edges: they are the values of row ``(inverse of d, u)``, and rows
        are ordered by (direction, node) already, so the out-degree is the row lengths with the two halves
        of the directions swapped."""
        offsets = self.direction_offsets
        r, m = (len(offsets) - 1) // 2, self.rows.numel()
        half = offsets[r]  # rows of the forward directions come before it, the inverse ones after
        counts = torch.diff(self.matrix.crow_indices()).float()
        crow = torch.tensor(
            [o - half for o in offsets[r:]] + [o + m - half for o in offsets[1 : r + 1]],
            dtype=self.rows.dtype,
        )
        return torch.sparse_csr_tensor(
            crow,
            torch.cat([self.rows[half:], self.rows[:half]]),
            torch.cat([counts[half:], counts[:half]]),
            size=(2 * r, self.matrix.shape[1]),
            check_invariants=False,
        )

    def direction(self, d: int) -> RelationAdjacency:
        """The transition of directed relation ``d`` alone: views into this block, no copy."""
        lo, hi = self.direction_offsets[d], self.direction_offsets[d + 1]
        crow = self.matrix.crow_indices()
        first, last = int(crow[lo]), int(crow[hi])
        matrix = torch.sparse_csr_tensor(
            crow[lo : hi + 1] - first,
            self.matrix.col_indices()[first:last],
            self.matrix.values()[first:last],
            size=(hi - lo, self.matrix.shape[1]),
            check_invariants=False,
        )
        delta = self.delta.direction(d) if self.delta is not None else None
        return RelationAdjacency(self.rows[lo:hi], matrix, delta, self.mask is not None)

    def resized(self, num_entities: int, num_relations: int) -> StackedTransitions:
        """The same edges in a graph that has grown to ``num_entities`` and ``num_relations``: new nodes and
        relations have no rows, and inverse directions move up by the new relations. Views, no edge copy."""
        m, (base_rows, base_cols) = self.rows.numel(), self.matrix.shape
        base_relations = (len(self.direction_offsets) - 1) // 2
        if (base_cols, base_relations) == (num_entities, num_relations):
            return self
        added = num_relations - base_relations
        directions = self.directions + added * (self.directions >= base_relations)
        offsets = self.direction_offsets
        offsets = (  # new relations own no rows, forward (after the old ones) or inverse (at the end)
            offsets[: base_relations + 1]
            + [offsets[base_relations]] * added
            + offsets[base_relations + 1 :]
            + [offsets[-1]] * added
        )
        crow = self.transposed.crow_indices()
        transposed_crow = torch.cat([crow, crow[-1:].expand(num_entities - base_cols)])
        replaced = dataclasses.replace(
            self,
            matrix=torch.sparse_csr_tensor(
                self.matrix.crow_indices(),
                self.matrix.col_indices(),
                self.matrix.values(),
                size=(base_rows, num_entities),
                check_invariants=False,
            ),
            transposed=torch.sparse_csr_tensor(
                transposed_crow,
                self.transposed.col_indices(),
                self.transposed.values(),
                size=(num_entities, m),
                check_invariants=False,
            ),
            directions=directions,
            direction_offsets=offsets,
        )
        return self._carry_built(replaced)


_BLOCK_ARRAYS = (
    "crow",
    "col",
    "transposed_crow",
    "transposed_col",
    "rows",
    "directions",
    "direction_offsets",
    "pull_offsets",
    "pull_crow",
    "pull_col",
    "pull_directions",
)


def _membership(offsets: list[int], rows: int) -> Tensor:
    """``(2R, M)`` CSR with a 1 at ``(d, i)`` for every row ``i`` of direction ``d`` (rows grouped by d)."""
    index = position_dtype(rows + 1)
    return torch.sparse_csr_tensor(
        torch.tensor(offsets, dtype=index),
        torch.arange(rows, dtype=index),
        torch.ones(rows),
        size=(len(offsets) - 1, rows),
        check_invariants=False,
    )


# the entity and relation indexes of stored edges (a graph has fewer than 2**31 of each)
EDGE_INDEX = torch.int32


def position_dtype(size: int) -> torch.dtype:
    """The narrowest index type for positions into ``size`` values (int32 below 2**31: half the memory)."""
    return torch.int32 if size < 2**31 else torch.long


def build_transitions(
    heads: Tensor, relations: Tensor, tails: Tensor, num_entities: int, num_relations: int
) -> StackedTransitions:
    """Every directed relation's transition, stacked (see :class:`StackedTransitions`), from distinct edges.

    Rows are ordered by (direction, destination) and values by source within a row. Pure: safe to run on
    any thread over tensors nobody mutates.

    Shapes:
        heads, relations, tails: ``(E,)``.
    """
    n, r = num_entities, num_relations
    heads, relations, tails = heads.long(), relations.long(), tails.long()  # packed into int64 keys below
    directions = torch.cat([relations, relations + r])  # (2E,)
    destinations = torch.cat([tails, heads])
    sources = torch.cat([heads, tails])
    row_key = directions * n + destinations
    if 2 * r * n * n < 2**63:  # one sort of (row, source) keys, distinct since the edges are
        value_key, order = torch.sort(row_key * n + sources)
        row_key, col = value_key // n, value_key % n
    else:
        order = torch.argsort(sources, stable=True)
        order = order[torch.argsort(row_key[order], stable=True)]
        row_key, col = row_key[order], sources[order]
    keys, counts = torch.unique_consecutive(row_key, return_counts=True)  # (M,)
    m, nnz = keys.numel(), col.numel()
    index = position_dtype(max(nnz, n, m))  # of both CSR layouts' indexes
    rows, row_directions = keys % max(n, 1), keys // max(n, 1)
    col = col.to(index)
    crow = torch.zeros(m + 1, dtype=index)
    crow[1:] = torch.cumsum(counts, 0)
    ones = torch.ones(1).expand(nnz)  # one stored 1 for every value of both layouts
    row_of_value = torch.repeat_interleave(torch.arange(m, dtype=index), counts, output_size=nnz)
    transpose_order = _transpose_order(col)
    transposed_crow = torch.zeros(n + 1, dtype=index)
    transposed_crow[1:] = torch.cumsum(torch.bincount(col, minlength=n), 0)
    transposed = torch.sparse_csr_tensor(
        transposed_crow, row_of_value[transpose_order], ones, size=(n, m), check_invariants=False
    )
    del transpose_order, row_of_value  # rebuilt from the matrix where values other than ones are read
    matrix = torch.sparse_csr_tensor(crow, col, ones, size=(m, n), check_invariants=False)
    offsets = torch.searchsorted(row_directions, torch.arange(2 * r + 1)).tolist()
    return StackedTransitions(
        matrix,
        transposed,
        rows.to(index),
        row_directions.to(index),
        offsets,
        unit_values=True,
    )


def _transpose_order(col: Tensor) -> Tensor:
    """``(nnz,)`` the matrix position of each value of the transpose, from the matrix's column of each value:
    its values are in row order, so a stable sort by column orders each column's values by row."""
    return torch.argsort(col, stable=True).to(position_dtype(col.numel()))


def out_degree(
    heads: Tensor,
    relations: Tensor,
    tails: Tensor,
    num_entities: int,
    num_relations: int,
    counts: Tensor | None = None,
) -> Tensor:
    """``(2R, N)`` sparse CSR: entry ``(d, u)`` counts the edges leaving ``u`` along ``d`` (each edge adds
    ``counts`` instead of 1 when given: -1 removes one)."""
    directed = torch.cat([relations, relations + num_relations]).long()  # packed into int64 keys below
    sources = torch.cat([heads, tails])
    n = max(num_entities, 1)
    keys, inverse = torch.unique(directed * n + sources, return_inverse=True)  # sorted by (d, u)
    if counts is None:
        values = torch.bincount(inverse, minlength=keys.numel()).float()
    else:
        values = torch.zeros(keys.numel()).index_add_(0, inverse, torch.cat([counts, counts]).float())
    index = position_dtype(max(keys.numel(), n))
    crow = torch.zeros(2 * num_relations + 1, dtype=index)
    crow[1:] = torch.cumsum(torch.bincount(keys // n, minlength=2 * num_relations), 0)
    return torch.sparse_csr_tensor(
        crow, (keys % n).to(index), values, size=(2 * num_relations, num_entities), check_invariants=False
    )


def _resized_degree(degree: Tensor, num_entities: int, num_relations: int) -> Tensor:
    """A ``(2R_b, N_b)`` out-degree matrix laid out for a graph grown to ``num_relations`` and
    ``num_entities``."""
    base_relations = degree.shape[0] // 2
    if degree.shape == (2 * num_relations, num_entities):
        return degree
    crow = degree.crow_indices()
    added = num_relations - base_relations
    crow = torch.cat(
        [
            crow[: base_relations + 1],
            crow[base_relations : base_relations + 1].expand(added),
            crow[base_relations + 1 :],
            crow[-1:].expand(added),
        ]
    )
    return torch.sparse_csr_tensor(
        crow,
        degree.col_indices(),
        degree.values(),
        size=(2 * num_relations, num_entities),
        check_invariants=False,
    )


@dataclass(frozen=True)
class MergedEdges:
    """The transitions and out-degrees built from one snapshot of a graph's edges."""

    transitions: StackedTransitions
    degree: Tensor  # (2R, N) CSR
    num_entities: int
    num_relations: int

    @property
    def num_edges(self) -> int:
        return int(self.transitions.matrix.col_indices().numel()) // 2

    @functools.cached_property
    def row_keys(self) -> Tensor:
        """``(M,)`` direction * N + destination of each row, ascending."""
        return self.transitions.directions.long() * self.num_entities + self.transitions.rows

    @functools.cached_property
    def value_keys(self) -> Tensor:
        """``(nnz,)`` row * N + source of each value, ascending: built when an edge is first retracted (16
        bytes per edge that a graph never retracted from does not hold)."""
        transitions = self.transitions
        return transitions.row_of_value.long() * self.num_entities + transitions.matrix.col_indices()

    def positions(self, keys: Tensor) -> Tensor:
        """Value positions of merged edges ``keys`` (``(K, 3)``: head, relation, tail), both directions:
        ``(2K,)``."""
        n, r = self.num_entities, self.num_relations
        h, rel, t = keys.unbind(1)
        directions = torch.cat([rel, rel + r])
        destinations, sources = torch.cat([t, h]), torch.cat([h, t])
        row = torch.searchsorted(self.row_keys, directions * n + destinations)
        return torch.searchsorted(self.value_keys, row * n + sources)


@dataclass(frozen=True)
class MergeJob:
    """A snapshot of a graph's edges to merge (:meth:`build` runs on any thread)."""

    token: int
    heads: Tensor
    relations: Tensor
    tails: Tensor
    num_entities: int
    num_relations: int

    def build(self) -> MergedEdges:
        edges = (self.heads, self.relations, self.tails, self.num_entities, self.num_relations)
        transitions = build_transitions(*edges).prepare()
        return MergedEdges(transitions, transitions.out_degree(), self.num_entities, self.num_relations)


@dataclass(frozen=True)
class GraphUpdate:
    """What one :meth:`KnowledgeGraph.add` changed."""

    new_entities: list[int]
    changed_entities: list[int]  # new, renamed or given new aliases
    new_relations: list[int]
    new_edges: int
    removed_edges: int = 0
    described_relations: list[int] = field(default_factory=list)  # given new words by a RelationRecord


UNINDEXED_EDGES = 65_536  # edges appended since a column index was sorted, at most, before it is sorted again


class _PositionIndex:
    """The positions of one edge column's values: the first ``size`` positions sorted by value once (stable,
    so a value's positions stay in insertion order) with where each value's run starts, the edges appended
    since then scanned. About 4 bytes per edge (the order) and 4 per distinct value (the starts).

    Args:
        column: ``(E,)`` the column (heads, relations or tails) as it is now.
    """

    def __init__(self, column: Tensor) -> None:
        self.size = column.numel()
        self.order = torch.argsort(column, stable=True).to(position_dtype(self.size))
        counts = torch.bincount(column) if self.size else torch.zeros(0, dtype=torch.long)
        starts = torch.zeros(counts.numel() + 1, dtype=torch.long)
        torch.cumsum(counts, 0, out=starts[1:])
        # value v is at order[starts[v]:starts[v + 1]]
        self.starts = starts.to(position_dtype(self.size + 1)).numpy()

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], name: str, column: Tensor) -> _PositionIndex:
        """The index of edge column ``name`` (``column``) whose ``order`` and ``starts`` were kept as
        ``<name>_order`` and ``<name>_starts`` (:meth:`KnowledgeGraph.built_layouts`).

        Raises:
            ValueError: they are missing or do not fit ``column``.
        """
        order, starts = arrays.get(f"{name}_order"), arrays.get(f"{name}_starts")
        size = column.numel()
        values = int(column.max()) + 1 if size else 0
        if order is None or starts is None or order.shape != (size,) or starts.shape != (values + 1,):
            raise ValueError(f"Expected an index of {size} positions of {values} values")
        if int(starts[0]) != 0 or int(starts[-1]) != size:
            raise ValueError(f"Expected value runs covering {size} positions")
        index = object.__new__(cls)
        index.size, index.order, index.starts = size, torch.from_numpy(order), starts
        return index

    def positions(self, column: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """``(positions, which)``: every position where ``column`` (this index's column, appended to since)
        holds one of the distinct ``values``, and the index in ``values`` of the value there; each value's
        positions ascending (the sorted ones, then the appended ones)."""
        wanted = values.numpy()
        known = (wanted >= 0) & (wanted < self.starts.size - 1)  # values the index has seen, the rest none
        at = np.where(known, wanted, 0)
        lo = torch.from_numpy(self.starts[at].astype(np.int64))
        counts = torch.from_numpy(np.where(known, self.starts[at + 1] - self.starts[at], 0).astype(np.int64))
        which = torch.repeat_interleave(torch.arange(values.numel()), counts)
        starts = torch.repeat_interleave(lo - (torch.cumsum(counts, 0) - counts), counts)
        positions = self.order[starts + torch.arange(which.numel())].long()
        appended = column[self.size :]
        if appended.numel() and values.numel():
            ordered, by = torch.sort(values)
            at = torch.searchsorted(ordered, appended.to(ordered.dtype)).clamp_(max=values.numel() - 1)
            hit = (ordered[at] == appended).nonzero().flatten()
            positions, which = torch.cat([positions, hit + self.size]), torch.cat([which, by[at[hit]]])
        return positions, which

    def stale(self, column: Tensor) -> bool:
        return column.numel() - self.size > max(UNINDEXED_EDGES, self.size // 8)

    def kept(self, keep: Tensor) -> _PositionIndex:
        """This index after the column lost the positions where ``keep`` ``(E,)`` is False."""
        moved = torch.cumsum(keep, 0) - 1  # old position -> new position
        retained = keep[self.order]
        before = np.zeros(self.size + 1, dtype=np.int64)  # sorted positions retained before each one
        np.cumsum(retained.numpy(), out=before[1:])
        index = object.__new__(_PositionIndex)
        index.size = int(before[-1])
        index.order = moved[self.order[retained]].to(self.order.dtype)
        index.starts = before[self.starts].astype(self.starts.dtype)
        return index


class _EdgeKeys:
    """The ``(head, relation, tail)`` keys of a graph's edges as a set: sorted arrays (12 bytes a key: the
    ``head << 32 | tail`` pair and the relation), with the keys added and removed since they were sorted in
    small Python sets that are folded into the arrays once they grow. A graph built from tensors sorts its
    keys on first use, which a graph built for one batch of questions (:meth:`KnowledgeGraph.subgraph`)
    never needs: only updates and ``has_edge`` read them.
    """

    def __init__(self, heads: Tensor | None = None, rels: Tensor | None = None, tails: Tensor | None = None):
        self._pending = (heads, rels, tails) if heads is not None and heads.numel() else None
        self._pairs = np.empty(0, dtype=np.int64)  # ascending, then by relation
        self._relations = np.empty(0, dtype=np.int32)
        self._added: set[EdgeKey] = set()
        self._removed: set[EdgeKey] = set()
        self._known: dict[EdgeKey, bool] = {}  # stored in the arrays or not, for the keys looked up

    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        pending = self._pending
        if pending is not None:  # two threads may both sort: the same arrays either way
            heads, rels, tails = (column.numpy() for column in pending)
            pairs = (heads.astype(np.int64) << 32) | tails
            order = np.lexsort((rels, pairs))
            self._pairs, self._relations = pairs[order], rels[order].astype(np.int32)
            self._pending = None
        return self._pairs, self._relations

    def _positions(self, keys: list[EdgeKey] | set[EdgeKey]) -> np.ndarray:
        """``(K,)`` where each key is in the sorted arrays, -1 where it is not."""
        pairs, relations = self._sorted()
        wanted = np.array(list(keys), dtype=np.int64).reshape(-1, 3)
        pair = (wanted[:, 0] << 32) | wanted[:, 2]
        lo, hi = np.searchsorted(pairs, pair, "left"), np.searchsorted(pairs, pair, "right")
        out = np.full(len(wanted), -1, dtype=np.int64)
        for step in range(int((hi - lo).max(initial=0))):  # the relations stored between two entities
            at = np.minimum(lo + step, pairs.size - 1)
            out = np.where((lo + step < hi) & (relations[at] == wanted[:, 1]), at, out)
        return out

    def look_up(self, keys: list[EdgeKey]) -> None:
        """Search the arrays for many keys at once; membership tests of them are dictionary reads until
        :meth:`forget` (an update's triples are looked up together, not one search each)."""
        if keys:
            self._known = dict(zip(keys, (self._positions(keys) >= 0).tolist(), strict=True))

    def forget(self) -> None:
        self._known = {}

    def add_many(self, keys: list[EdgeKey]) -> list[EdgeKey]:
        """Add ``keys``; those that were not in the set, each once, in order (one search for them all)."""
        added, removed = self._added, self._removed
        unseen = [key for key in dict.fromkeys(keys) if key not in added]
        if not unseen:
            return []
        fresh = []
        for key, stored in zip(unseen, (self._positions(unseen) >= 0).tolist(), strict=True):
            if not stored:
                added.add(key)
                fresh.append(key)
            elif key in removed:  # stored, retracted, stated again
                removed.discard(key)
                fresh.append(key)
        self._fold_when_due()
        return fresh

    def _stored(self, key: EdgeKey) -> bool:
        known = self._known.get(key)
        if known is not None:
            return known
        pairs, relations = self._sorted()  # one key: a scalar search, a tenth of _positions' cost
        pair = (key[0] << 32) | key[2]
        lo, hi = pairs.searchsorted(pair, "left"), pairs.searchsorted(pair, "right")
        return bool((relations[lo:hi] == key[1]).any())

    def __contains__(self, key: object) -> bool:
        if key in self._added:
            return True
        return key not in self._removed and self._stored(key)  # type: ignore[arg-type]

    def add(self, key: EdgeKey) -> None:
        if key in self._removed:
            self._removed.discard(key)
        elif not self._stored(key):
            self._added.add(key)
        self._fold_when_due()

    def discard(self, key: EdgeKey) -> None:
        if key in self._added:
            self._added.discard(key)
        elif self._stored(key):
            self._removed.add(key)
        self._fold_when_due()

    def __len__(self) -> int:
        return self._sorted()[0].size + len(self._added) - len(self._removed)

    def _fold_when_due(self) -> None:
        pairs, relations = self._sorted()
        if len(self._added) + len(self._removed) <= max(UNINDEXED_EDGES, pairs.size // 8):
            return
        keep = np.ones(pairs.size, dtype=bool)
        keep[self._positions(self._removed)] = False  # every removed key is stored
        added = np.array(list(self._added), dtype=np.int64).reshape(-1, 3)
        pairs = np.concatenate([pairs[keep], (added[:, 0] << 32) | added[:, 2]])
        relations = np.concatenate([relations[keep], added[:, 1].astype(np.int32)])
        order = np.lexsort((relations, pairs))
        self._pairs, self._relations = pairs[order], relations[order]
        self._added, self._removed, self._known = set(), set(), {}


class KnowledgeGraph:
    """Entities, relations and triples of one graph, with per-relation adjacency built on demand.

    Args:
        entities: entity records (ids with optional names and aliases).
        triples: stored facts; their heads and tails become entities when not listed in ``entities``.
    """

    def __init__(self, entities: Iterable[EntityRecord] = (), triples: Iterable[TripleRecord] = ()) -> None:
        self.entity_ids: list[str] = []
        self.entity_index: dict[str, int] = {}
        self.names: list[str] = []
        self.aliases: dict[int, tuple[str, ...]] = {}
        self.types: list[str] = []  # node type per entity, "" when untyped
        self.retractions = 0  # stored edges removed so far: edge positions before them have moved
        self.type_changes = 0  # node types set on existing entities so far
        self.relation_ids: list[str] = []
        self.relation_index: dict[str, int] = {}
        self.relation_records: dict[int, RelationRecord] = {}  # the words users gave, merged, by relation
        self._has_kinds: tuple[int, bool] | None = None  # (type_changes when scanned, whether any is typed)
        self._heads = torch.empty(0, dtype=EDGE_INDEX)
        self._rels = torch.empty(0, dtype=EDGE_INDEX)
        self._tails = torch.empty(0, dtype=EDGE_INDEX)
        self._room: tuple[Tensor, Tensor, Tensor] | None = None  # buffers the columns are prefixes of
        self._edge_keys = _EdgeKeys()
        self._merged: MergedEdges | None = None  # transitions built from a snapshot of the edges
        self._added: dict[EdgeKey, None] = {}  # edges added since that snapshot (the delta)
        self._removed: set[EdgeKey] = set()  # merged edges retracted since (masked)
        self._log: list[tuple[EdgeKey, int]] | None = None  # changes since the snapshot of a merge in flight
        self._merge_token = 0
        self._view: tuple[StackedTransitions, Tensor] | None = None  # merged + delta, as queries read them
        self._directions: dict[int, RelationAdjacency] = {}
        self._changes = {"added": 0, "removed": 0}  # versions of each side of the delta
        self._parts: dict[str, tuple[tuple, object]] = {}  # pieces of the view, by the versions they read
        self.merges = 0  # merges installed so far
        self._of_type: dict[str, Tensor] = {}
        self._position_indexes: dict[str, _PositionIndex] = {}  # by edge column ("heads", "tails")
        self.add(list(entities) + list(triples))

    @classmethod
    def from_tensors(
        cls,
        entity_ids: Sequence[str],
        relation_ids: Sequence[str],
        heads: Tensor,
        relations: Tensor,
        tails: Tensor,
        names: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        aliases: dict[int, tuple[str, ...]] | None = None,
        distinct: bool = False,
    ) -> KnowledgeGraph:
        """A graph from id lists and edge index tensors, without a Python step per edge.

        Repeated edges are stored once (the first, in the given order), as :meth:`add` does.

        Args:
            entity_ids: distinct entity ids; entity ``i`` is ``entity_ids[i]``.
            relation_ids: distinct relation ids; relation ``r`` is ``relation_ids[r]``.
            heads, relations, tails: ``(E,)`` integer indices into those lists.
            names: display names (default: derived from the ids, as for records without a name).
            types: node types, ``""`` for untyped (default: all untyped).
            aliases: linking aliases by entity index (default: none).
            distinct: the edges are known to be distinct (a store's rows): no search for repeats.
        """
        n, r = len(entity_ids), len(relation_ids)
        edges = [torch.as_tensor(column) for column in (heads, relations, tails)]
        if any(column.dim() != 1 or column.dtype.is_floating_point for column in edges):
            raise ValueError(
                "Expected 'heads', 'relations' and 'tails' to be one-dimensional integer tensors "
                f"(got shapes {[tuple(c.shape) for c in edges]}, dtypes {[c.dtype for c in edges]})"
            )
        if len({column.numel() for column in edges}) != 1:
            raise ValueError(f"Expected edge tensors of one length (got {[c.numel() for c in edges]})")
        for name, column, size in zip(("heads", "relations", "tails"), edges, (n, r, n), strict=True):
            if column.numel() and (int(column.min()) < 0 or int(column.max()) >= size):
                raise ValueError(
                    f"Expected '{name}' in [0, {size}) (got [{int(column.min())}, {int(column.max())}])"
                )
        for name, values in (("names", names), ("types", types)):
            if values is not None and len(values) != n:
                raise ValueError(f"Expected {n} '{name}' (got {len(values)})")
        heads, relations, tails = (column.to(EDGE_INDEX) for column in edges)  # in range: checked above
        keep = None if distinct else first_appearances(heads.numpy(), relations.numpy(), tails.numpy(), n, r)
        if keep is not None:
            heads, relations, tails = (column[torch.from_numpy(keep)] for column in (heads, relations, tails))
        graph = cls._from_parts(
            list(entity_ids),
            list(names) if names is not None else [default_name(i) for i in entity_ids],
            list(types) if types is not None else [""] * n,
            dict(aliases or {}),
            list(relation_ids),
            heads,
            relations,
            tails,
        )
        for name, ids, index in (
            ("entity_ids", entity_ids, graph.entity_index),
            ("relation_ids", relation_ids, graph.relation_index),
        ):
            if len(index) != len(ids):
                raise ValueError(f"Expected distinct '{name}' (got {len(ids) - len(index)} repeated)")
        return graph

    def subgraph(self, entities: Tensor) -> KnowledgeGraph:
        """The induced subgraph on ``entities``: every stored edge with both ends among them.

        Sub-entity ``i`` is global entity ``entities[i]`` (pass them ascending to keep the global order, so
        ties between entities break the same way in both graphs). Relations are all kept, with the same
        indices in the same order, so relation vectors line up with both graphs; names, types and aliases
        come along. The edges are found through the index of edges by head: the work is the entities'
        out-edges, not the whole graph.

        Shapes:
            entities: ``(n,)`` distinct global entity indices.
        """
        entities = torch.as_tensor(entities)
        if entities.dim() != 1 or entities.dtype.is_floating_point:
            raise ValueError(
                f"Expected 'entities' to be a one-dimensional integer tensor (got shape "
                f"{tuple(entities.shape)}, dtype {entities.dtype})"
            )
        entities = entities.long()
        n = self.num_entities
        if entities.numel() and (int(entities.min()) < 0 or int(entities.max()) >= n):
            raise ValueError(
                f"Expected 'entities' in [0, {n}) (got [{int(entities.min())}, {int(entities.max())}])"
            )
        local = torch.full((n,), -1, dtype=torch.int32)
        local[entities] = torch.arange(entities.numel(), dtype=torch.int32)
        if int((local >= 0).sum()) != entities.numel():
            raise ValueError("Expected distinct 'entities' (got repeated indices)")
        positions, which = self.edges_of_heads(entities)  # their out-edges only, not a pass over every edge
        tails = local[self._tails[positions]]
        inside = tails >= 0
        positions, order = torch.sort(positions[inside])  # the whole graph's edge order
        heads, rels, tails = which[inside][order].to(EDGE_INDEX), self._rels[positions], tails[inside][order]
        kept = entities.tolist()
        aliases = self.aliases
        induced = self._from_parts(
            [self.entity_ids[i] for i in kept],
            [self.names[i] for i in kept],
            [self.types[i] for i in kept],
            {sub: aliases[i] for sub, i in enumerate(kept) if i in aliases} if aliases else {},
            list(self.relation_ids),
            heads,
            rels,
            tails,
        )
        induced.relation_records = dict(self.relation_records)
        return induced

    @classmethod
    def _from_parts(
        cls,
        entity_ids: list[str],
        names: list[str],
        types: list[str],
        aliases: dict[int, tuple[str, ...]],
        relation_ids: list[str],
        heads: Tensor,
        rels: Tensor,
        tails: Tensor,
    ) -> KnowledgeGraph:
        """A graph from checked parts (distinct ids, distinct in-range edges); the parts are not copied."""
        graph = cls()
        graph.entity_ids = entity_ids
        graph.entity_index = dict(zip(entity_ids, range(len(entity_ids)), strict=True))
        graph.names, graph.types, graph.aliases = names, types, aliases
        graph.relation_ids = relation_ids
        graph.relation_index = dict(zip(relation_ids, range(len(relation_ids)), strict=True))
        graph._heads, graph._rels, graph._tails = heads, rels, tails
        graph._edge_keys = _EdgeKeys(heads, rels, tails)
        return graph

    # ------------------------------------------------------------------------------------------ sizes
    @property
    def num_entities(self) -> int:
        return len(self.entity_ids)

    @property
    def num_relations(self) -> int:
        return len(self.relation_ids)

    @property
    def num_edges(self) -> int:
        return int(self._heads.numel())

    @property
    def edges(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(heads, relations, tails)``, each ``(E,)`` int32 (widen before packing them into keys)."""
        return self._heads, self._rels, self._tails

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(entities={self.num_entities}, relations={self.num_relations}, "
            f"edges={self.num_edges})"
        )

    # ---------------------------------------------------------------------------------------- updates
    def add(self, records: Sequence[Record], triples: TripleColumns | None = None) -> GraphUpdate:
        """Apply records in order (additions, and retractions of stored facts), then ``triples``; visible to
        the next query."""
        if triples is not None and records:
            records, triples = [*records, *triples.records()], None
        if triples is not None:
            return self._add_triples(triples.heads, triples.relations, triples.tails)
        if all(type(record) is TripleRecord for record in records):
            columns = TripleColumns.of(records)  # type: ignore[arg-type]
            return self._add_triples(columns.heads, columns.relations, columns.tails)
        new_entities: list[int] = []
        changed: set[int] = set()
        new_relations: list[int] = []
        described: set[int] = set()
        added: dict[tuple[int, int, int], None] = {}  # new edges, in order
        retracted: set[tuple[int, int, int]] = set()  # stored edges to drop
        self._edge_keys.look_up([key for record in records if (key := self._known_key(record)) is not None])
        for record in records:
            if isinstance(record, Retraction):
                key = self._key(record)
                if key is not None and key in self._edge_keys:
                    self._edge_keys.discard(key)
                    if key in added:
                        del added[key]
                    else:
                        retracted.add(key)
                continue
            if isinstance(record, EntityRecord):
                index = self._entity(record.id, new_entities)
                if record.name is not None and record.name != self.names[index]:
                    self.names[index] = record.name
                    changed.add(index)
                known = self.aliases.get(index, ())
                fresh = tuple(dict.fromkeys(a for a in record.aliases if a not in known))
                if fresh:
                    self.aliases[index] = known + fresh
                    changed.add(index)
                if record.type is not None and record.type != self.types[index]:
                    self.types[index] = record.type
                    self.type_changes += 1
                    self._of_type.clear()
                continue
            if isinstance(record, RelationRecord):
                r = self._relation(record.id, new_relations)
                if self._describe(r, record):
                    described.add(r)
                continue
            h = self._entity(record.head, new_entities)
            t = self._entity(record.tail, new_entities)
            r = self._relation(record.relation, new_relations)
            key = (h, r, t)
            if key in self._edge_keys:
                continue
            self._edge_keys.add(key)
            if key in retracted:  # retracted, then stated again: the stored edge simply stays
                retracted.discard(key)
            else:
                added[key] = None
        self._edge_keys.forget()
        if retracted:
            self._drop(retracted)
        self._append(list(added), retracted, bool(new_entities))
        changed.update(new_entities)
        return GraphUpdate(
            new_entities, sorted(changed), new_relations, len(added), len(retracted), sorted(described)
        )

    def _add_triples(self, heads: list[str], relations: list[str], tails: list[str]) -> GraphUpdate:
        """:meth:`add` for a chunk of triples alone: the same result, with the keys searched and added
        together rather than one record at a time."""
        new_entities: list[int] = []
        new_relations: list[int] = []
        entity, relation = self._entity, self._relation
        keys = [
            (entity(h, new_entities), relation(r, new_relations), entity(t, new_entities))
            for h, r, t in zip(heads, relations, tails, strict=True)
        ]
        added = self._edge_keys.add_many(keys)
        self._append(added, (), bool(new_entities))
        return GraphUpdate(new_entities, list(new_entities), new_relations, len(added))

    def _append(self, added: list[EdgeKey], retracted: Iterable[EdgeKey], new_entities: bool) -> None:
        """Append the new edges' columns, note the changes for merges, and drop views they outdate."""
        if added:
            self._append_columns(torch.tensor(added, dtype=EDGE_INDEX).T)
        if self._merged is not None or self._log is not None:
            for key in retracted:
                self._note(key, -1)
            for key in added:
                self._note(key, 1)
        if added or retracted or new_entities:
            self._view = None
            self._directions = {}

    def _append_columns(self, edges: Tensor) -> None:
        """Append ``(3, K)`` edges to the columns, which stay prefixes of buffers with room to grow (an
        eighth more than they hold): a stream of small updates copies the columns a few times, not at each
        update. Earlier views of the columns (a merge's snapshot) keep what they held."""
        n, k = self._heads.numel(), edges.shape[1]
        columns = (self._heads, self._rels, self._tails)
        room = self._room
        if room is None or room[0].data_ptr() != self._heads.data_ptr() or room[0].numel() < n + k:
            capacity = n + k + max(k, (n + k) // 8)
            room = self._room = tuple(torch.empty(capacity, dtype=c.dtype) for c in columns)  # type: ignore[assignment]
            for buffer, column in zip(room, columns, strict=True):
                buffer[:n] = column
        for buffer, values in zip(room, edges, strict=True):
            buffer[n : n + k] = values
        self._heads, self._rels, self._tails = (buffer[: n + k] for buffer in room)

    def _known_key(self, record: Record) -> EdgeKey | None:
        """The key of a triple or retraction whose entities and relation exist already."""
        return self._key(record) if isinstance(record, TripleRecord | Retraction) else None

    def _key(self, record: Retraction | TripleRecord) -> tuple[int, int, int] | None:
        """The edge a retraction or triple names, when its entities and relation exist."""
        h = self.entity_index.get(record.head)
        r = self.relation_index.get(record.relation)
        t = self.entity_index.get(record.tail)
        return None if h is None or r is None or t is None else (h, r, t)

    def _drop(self, keys: set[tuple[int, int, int]]) -> None:
        """Remove stored edges (one pass over packed keys); entities and relations stay."""
        n, r = self.num_entities, self.num_relations
        wanted = torch.tensor(sorted(keys), dtype=torch.long)  # (K, 3)
        packed = (wanted[:, 0] * r + wanted[:, 1]) * n + wanted[:, 2]
        keep = ~torch.isin((self._heads.long() * r + self._rels) * n + self._tails, packed)
        self._heads, self._rels, self._tails = self._heads[keep], self._rels[keep], self._tails[keep]
        self._room = None
        self._position_indexes = {name: index.kept(keep) for name, index in self._position_indexes.items()}
        self.retractions += len(keys)

    def _note(self, key: EdgeKey, sign: int) -> None:
        """Record an edge added (+1) or retracted (-1) since the merge, and for a merge in flight."""
        if self._log is not None:
            self._log.append((key, sign))
        if self._merged is not None:
            self._changes[_change(self._added, self._removed, key, sign)] += 1

    # ---------------------------------------------------------------------------------------- merges
    @property
    def delta_size(self) -> int:
        """Edges added or retracted since the last merge."""
        return len(self._added) + len(self._removed)

    def merge_due(self) -> bool:
        """Whether a background merge should start: none in flight, and the delta has grown."""
        merged = self._merged
        return merged is not None and self._log is None and self.delta_size >= merge_due_at(merged.num_edges)

    def start_merge(self) -> MergeJob:
        """Snapshot the edges to merge; changes from now on are kept for :meth:`finish_merge`."""
        self._merge_token += 1
        self._log = []
        return MergeJob(
            self._merge_token, self._heads, self._rels, self._tails, self.num_entities, self.num_relations
        )

    def finish_merge(self, job: MergeJob, merged: MergedEdges) -> bool:
        """Install what ``job`` built; the changes made since its snapshot become the new delta. Returns
        False (and installs nothing) when a later merge superseded the job."""
        if job.token != self._merge_token or self._log is None:
            return False
        added: dict[EdgeKey, None] = {}
        removed: set[EdgeKey] = set()
        for key, sign in self._log:
            _change(added, removed, key, sign)
        self._merged, self._added, self._removed, self._log = merged, added, removed, None
        self._parts = {}
        self._view = None
        self._directions = {}
        self.merges += 1
        return True

    def merge(self) -> None:
        """Fold the delta into the merged transitions now, on this thread."""
        job = self.start_merge()
        self.finish_merge(job, job.build())

    def _relation(self, relation_id: str, created: list[int]) -> int:
        r = self.relation_index.get(relation_id)
        if r is None:
            r = self.relation_index[relation_id] = len(self.relation_ids)
            self.relation_ids.append(relation_id)
            created.append(r)
        return r

    def _describe(self, r: int, record: RelationRecord) -> bool:
        """Merge a relation record's words into the stored ones; whether anything changed."""
        known = self.relation_records.get(r, RelationRecord(record.id))
        merged = RelationRecord(
            record.id,
            known.name if record.name is None else record.name,
            known.inverse_name if record.inverse_name is None else record.inverse_name,
            known.aliases + tuple(dict.fromkeys(a for a in record.aliases if a not in known.aliases)),
            known.description if record.description is None else record.description,
        )
        if merged == known and r in self.relation_records:
            return False
        self.relation_records[r] = merged
        return True

    def _entity(self, entity_id: str, created: list[int]) -> int:
        index = self.entity_index.get(entity_id)
        if index is None:
            index = self.entity_index[entity_id] = len(self.entity_ids)
            self.entity_ids.append(entity_id)
            self.names.append(default_name(entity_id))
            self.types.append("")
            self._of_type.clear()
            created.append(index)
        return index

    # ------------------------------------------------------------------------------------- adjacency
    def inverse(self, d: int) -> int:
        """The directed relation walking ``d`` the other way."""
        r = self.num_relations
        return d + r if d < r else d - r

    def relation_of(self, d: int) -> tuple[int, bool]:
        """``(relation index, reversed)`` of directed relation ``d``."""
        r = self.num_relations
        return (d, False) if d < r else (d - r, True)

    def transition(self, d: int) -> RelationAdjacency:
        """The sparse transition of directed relation ``d`` (merged edges, and the delta beside them)."""
        stacked = self.stacked_transitions()
        found = self._directions.get(d)
        if found is None:
            found = self._directions[d] = stacked.direction(d)
        return found

    def prepare(self, built: dict[str, np.ndarray] | None = None) -> None:
        """Merge and build every layout queries read (transitions, degrees, the node-ordered edges, the
        index of edges by head), so that the first query after loading does not pay for it.

        Args:
            built: what :meth:`built_layouts` gave for these same edges (kept beside a store), installed
                instead of sorting the edges again.

        Raises:
            ValueError: ``built`` does not fit this graph; nothing of it was installed.
        """
        if built is not None:
            self._install_built(built)
        self.stacked_transitions().prepare()
        self._position_index("heads", self._heads)
        if cpu_kernels.available(self.out_degree().values()):
            cpu_kernels.degree_by_node(self.out_degree())

    def built_layouts(self) -> dict[str, np.ndarray]:
        """What :meth:`prepare` builds by sorting the edges (the merged transitions with their node-ordered
        layout, the index of edges by head, and those by relation or tail once built) as named arrays, to
        keep and pass back to :meth:`prepare` for a graph with the same edges. Merges first when anything
        was added or retracted since the last merge.

        Raises:
            ValueError: a background merge is in flight.
        """
        if self._log is not None:
            raise ValueError("Expected no merge in flight")
        if self._merged is None or self.delta_size:
            self.merge()
        self.prepare()
        assert self._merged is not None
        if self._position_index("heads", self._heads).size != self.num_edges:
            self._position_indexes["heads"] = _PositionIndex(self._heads)
        sizes = np.array([self.num_entities, self.num_relations, self.num_edges], dtype=np.int64)
        arrays = {**self._merged.transitions.to_arrays(), "sizes": sizes}
        for name, index in self._position_indexes.items():
            if index.size == self.num_edges:  # covers every edge: none appended since it was sorted
                arrays[f"{name}_order"], arrays[f"{name}_starts"] = index.order.numpy(), index.starts
        return arrays

    def _install_built(self, built: dict[str, np.ndarray]) -> None:
        n, r, e = self.num_entities, self.num_relations, self.num_edges
        sizes = built.get("sizes", np.zeros(0, dtype=np.int64)).tolist()
        if sizes != [n, r, e]:
            raise ValueError(
                f"Expected layouts built for {[n, r, e]} entities, relations and edges (got {sizes})"
            )
        transitions = StackedTransitions.from_arrays(built, n)
        offsets = transitions.direction_offsets
        if len(offsets) != 2 * r + 1 or transitions.nnz != 2 * e:
            raise ValueError(f"Expected transitions of {2 * r} directions and {2 * e} values")
        crow = transitions.matrix.crow_indices().long()
        per_relation = crow[offsets[1 : r + 1]] - crow[offsets[:r]]
        if not torch.equal(per_relation, torch.bincount(self._rels.long(), minlength=r)):
            raise ValueError("Expected transitions with as many edges of each relation as the graph")
        columns = {"heads": self._heads, "rels": self._rels, "tails": self._tails}
        indexes = {
            name: _PositionIndex.from_arrays(built, name, column)
            for name, column in columns.items()
            if name == "heads" or f"{name}_order" in built  # the one prepare() builds, and any kept
        }
        self.finish_merge(self.start_merge(), MergedEdges(transitions, transitions.out_degree(), n, r))
        self._position_indexes.update(indexes)

    def stacked_transitions(self) -> StackedTransitions:
        """Every directed relation's transition stacked into one CSR block, with the delta beside it."""
        return self._current()[0]

    def out_degree(self) -> Tensor:
        """Sparse ``(2R, N)`` CSR matrix: entry ``(d, u)`` counts the edges leaving ``u`` along ``d``."""
        return self._current()[1]

    def _current(self) -> tuple[StackedTransitions, Tensor]:
        if self._view is None:
            merged = self._merged
            if merged is None or self.delta_size > delta_limit(merged.num_edges):
                self.merge()
            assert self._merged is not None
            self._view = self._compose(self._merged)
        return self._view

    def _compose(self, merged: MergedEdges) -> tuple[StackedTransitions, Tensor]:
        """The merged transitions with retracted edges masked and the added ones beside them. The mask and
        the delta's matrices are kept until their side of the delta changes."""
        n, r = self.num_entities, self.num_relations
        stacked = merged.transitions.resized(n, r)
        degree = _resized_degree(merged.degree, n, r)
        removed, added = self._delta_tensors()
        if removed.numel():
            version = ("mask", self._changes["removed"])
            if self._parts.get("mask", (None,))[0] != version:
                mask = torch.ones(stacked.nnz)
                mask[merged.positions(removed)] = 0.0
                self._parts["mask"] = (version, mask)
            mask = self._parts["mask"][1]
            stacked = dataclasses.replace(stacked.with_values(mask), mask=mask)
        if added.numel():
            version = ("delta", self._changes["added"], n, r)
            if self._parts.get("delta", (None,))[0] != version:
                self._parts["delta"] = (version, build_transitions(*added.T, n, r))
            stacked = dataclasses.replace(stacked, delta=self._parts["delta"][1])
        if removed.numel() or added.numel():
            counts = torch.cat([torch.ones(added.shape[0]), -torch.ones(removed.shape[0])])
            degree = degree + out_degree(*torch.cat([added, removed]).T, n, r, counts)
        return stacked, degree

    def _delta_tensors(self) -> tuple[Tensor, Tensor]:
        """``(removed, added)`` edges of the delta as ``(K, 3)`` tensors (kept until their side changes)."""
        found = []
        for side, keys in (("removed", self._removed), ("added", self._added)):
            version = (side, self._changes[side])
            cached = self._parts.get(side)
            if cached is None or cached[0] != version:
                cached = self._parts[side] = (version, torch.tensor(list(keys), dtype=torch.long).view(-1, 3))
            found.append(cached[1])
        return found[0], found[1]

    # -------------------------------------------------------------------------------------- queries
    def match_edges(
        self, head: int | None = None, relation: int | None = None, tail: int | None = None
    ) -> Tensor:
        """Indices of the stored edges matching every given part, in insertion order. With a head or a
        tail, only that entity's edges are read (through a sorted index of the column); a relation alone is
        a scan."""
        parts = ((head, "heads", self._heads), (tail, "tails", self._tails), (relation, "", self._rels))
        indexed = next((part for part in parts[:2] if part[0] is not None), None)
        if indexed is None:
            mask = torch.ones(self.num_edges, dtype=torch.bool)
            if relation is not None:
                mask &= self._rels == relation
            return mask.nonzero().flatten()
        value, name, column = indexed
        found, _ = self._position_index(name, column).positions(column, torch.tensor([value]))
        for value, _, column in parts:
            if value is not None:
                found = found[column[found] == value]
        return found

    def edges_of_heads(self, heads: Tensor) -> tuple[Tensor, Tensor]:
        """``(positions, which)``: every stored edge whose head is one of the distinct ``heads``, and the
        index in ``heads`` of its head; many heads at once, through the same index as :meth:`match_edges`."""
        return self._position_index("heads", self._heads).positions(self._heads, heads)

    def _position_index(self, name: str, column: Tensor) -> _PositionIndex:
        index = self._position_indexes.get(name)
        if index is None or index.stale(column):
            index = self._position_indexes[name] = _PositionIndex(column)
        return index

    def entities_of_type(self, type: str) -> Tensor:
        """Indices of the entities of node type ``type``, ascending."""
        found = self._of_type.get(type)
        if found is None:
            found = self._of_type[type] = torch.tensor(
                [i for i, t in enumerate(self.types) if t == type], dtype=torch.long
            )
        return found

    def has_edge(self, head: int, relation: int, tail: int) -> bool:
        """Whether ``head -relation-> tail`` is a stored fact."""
        return (head, relation, tail) in self._edge_keys

    def has_edges(self, keys: list[EdgeKey]) -> list[bool]:
        """:meth:`has_edge` of many ``(head, relation, tail)`` keys, searched together."""
        self._edge_keys.look_up(keys)
        try:
            return [key in self._edge_keys for key in keys]
        finally:
            self._edge_keys.forget()

    def relation_text(self, r: int) -> str:
        """The text a relation is encoded from: its name (given by a relation record, else its id in plain
        words) between the most common kinds of its heads and tails where entities have kinds."""
        return self.relation_phrases(r).forward[0]

    def relation_phrases(self, r: int) -> RelationPhrases:
        """Every text relation ``r`` is matched by, each way, and what its answers are each way
        (:func:`~graphfuse.gnn.data.relation_text.relation_phrases`): the kinds of its heads and tails
        where entities have kinds, else the names of the entities it connects most often."""
        edges, _ = self._position_index("rels", self._rels).positions(self._rels, torch.tensor([r]))
        heads, tails = self._heads[edges], self._tails[edges]
        record = self.relation_records.get(r)
        if self.has_kinds():
            sample = slice(0, KIND_SAMPLE)
            return relation_phrases(
                self.relation_ids[r],
                record,
                (self.types[h] for h in heads[sample].tolist()),
                (self.types[t] for t in tails[sample].tolist()),
            )
        spread = slice(None, None, -(-heads.numel() // EXAMPLE_SAMPLE) or 1)
        return relation_phrases(
            self.relation_ids[r],
            record,
            head_examples=self._most_connected(heads[spread]),
            tail_examples=self._most_connected(tails[spread]),
        )

    def has_kinds(self) -> bool:
        """Whether any entity has a node type (one scan per change of types, not per call)."""
        if self._has_kinds is None or self._has_kinds[0] != self.type_changes:
            self._has_kinds = (self.type_changes, any(self.types))
        return self._has_kinds[1]

    def _most_connected(self, entities: Tensor, k: int = EXAMPLES_PER_SIDE) -> list[str]:
        """Names of the ``k`` entities most frequent in ``entities``, most frequent first."""
        if entities.numel() == 0:
            return []
        found, counts = entities.unique(return_counts=True)
        top = found[torch.argsort(counts, descending=True, stable=True)[:k]]
        return [self.names[i] for i in top.tolist()]


def _change(added: dict[EdgeKey, None], removed: set[EdgeKey], key: EdgeKey, sign: int) -> str:
    """Fold one change into a delta (``added``: edges not merged, ``removed``: merged edges retracted);
    returns the side it changed."""
    if sign > 0:
        if key in removed:
            removed.discard(key)
            return "removed"
        added[key] = None
        return "added"
    if key in added:
        del added[key]
        return "added"
    removed.add(key)
    return "removed"


def warm_up_kernels() -> None:
    """Compile (or load from numba's cache) every fused kernel for float32 inputs, on a one-edge graph's
    layout, so that no query pays for it."""
    if cpu_kernels.njit is None:
        return
    crow, col = torch.tensor([0, 1, 1]), torch.tensor([0])
    x = torch.ones(2, 1)
    cpu_kernels.add_rows(crow, col, torch.ones(1), torch.tensor([1, 0]), x, torch.zeros(2, 1))
    edges = build_transitions(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]), 2, 1).edge_block()
    cells = (np.array([0]), np.array([0]))
    degree = out_degree(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]), 2, 1)
    edges.edges_from(np.array([0]))  # propagate's choice between pushing and pulling
    for delta in (None, edges):  # every signature a server meets, so that none compiles under a query
        for push in (False, True):
            for exclude in (None, cells):
                for live in (None, degree):
                    moved, _ = cpu_kernels.propagate(
                        edges, delta, x, torch.ones(1, 2), cap=1.0, exclude=exclude, threshold=0.5, push=push,
                        degree=live,
                    )  # fmt: skip
    cpu_kernels.live_directions(degree, cpu_kernels.summarise(moved, 0.5))
    for push in (False, True):
        cpu_kernels.propagate(
            edges,
            None,
            x,
            torch.ones(1, 2),
            push=push,
            mix_into=cpu_kernels.HopMix(x[None], torch.ones(1, 2), x.clone()),
        )
    cpu_kernels.count_reached(torch.stack([moved, moved]), 2)
    cpu_kernels.read_words(x, x[:, None], torch.ones(2, 1, dtype=torch.bool), 1.0)
    cpu_kernels.relation_softmax(
        x, torch.ones(2, 1), cpu_kernels.live_words(degree, cpu_kernels.summarise(moved, 0.5))
    )
    for delta in (None, edges):
        cpu_kernels.walk_back(
            edges, delta, x.numpy(), x.numpy()[None], 0, np.ones((1, 2), np.float32), 0.01, 1, 1, 1, 8
        )
