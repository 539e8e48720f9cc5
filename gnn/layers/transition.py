"""The sparse kernel under every propagation layer: ``sum_d T_d @ (x * w_d)`` over all directed relations."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from graphfuse.gnn.data.graph import StackedTransitions
from graphfuse.gnn.kernels import cpu as cpu_kernels


class _WeightedTransition(torch.autograd.Function):
    """Hand-written gradients: sparse autograd would transpose (sort) the matrix and scatter into the few
    weight rows on every backward pass; the precomputed transpose and direction-membership matrices turn both
    into sparse products."""

    @staticmethod
    def forward(  # noqa: ANN205
        ctx,
        x: Tensor,
        weights: Tensor,
        stacked: StackedTransitions,
        values: Tensor | None,  # noqa: ANN001
    ):
        if values is not None:
            stacked = stacked.with_values(values if values.dim() == 1 else values[0])
        moved = stacked.matrix @ x  # (M, C): every directed relation's input in one product
        scale = weights.T[stacked.directions]  # (M, C): each row's relation weight, per column
        ctx.stacked = stacked
        ctx.blocks = values.shape[0] if values is not None and values.dim() == 2 else 0
        ctx.save_for_backward(x, moved, scale)
        return torch.zeros_like(x).index_add_(0, stacked.rows, moved * scale)  # (N, C)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, Tensor | None]:  # noqa: ANN001
        stacked: StackedTransitions = ctx.stacked
        x, moved, scale = ctx.saved_tensors
        need_x, need_weights, _, need_values = ctx.needs_input_grad
        grad_rows = grad[stacked.rows]  # (M, C)
        grad_x = stacked.transposed @ (grad_rows * scale) if need_x else None  # (N, C)
        grad_weights = (stacked.membership @ (grad_rows * moved)).T if need_weights else None  # (C, 2R)
        grad_values = None
        if need_values:
            sources = stacked.matrix.col_indices()
            products = (grad_rows * scale)[stacked.row_of_value] * x[sources]  # (nnz, C)
            if ctx.blocks:  # per-block values: each block of columns gets its own edge gradients
                grad_values = products.view(products.shape[0], ctx.blocks, -1).sum(-1).T  # (B, nnz)
            else:
                grad_values = products.sum(-1)  # (nnz,)
        return grad_x, grad_weights, None, grad_values


CHUNK_ELEMENTS = 1 << 24  # without gradients, rows are moved in chunks of at most this many values


def weighted_transition(
    x: Tensor, weights: Tensor, stacked: StackedTransitions, values: Tensor | None = None
) -> Tensor:
    r"""``sum_d T_d @ (x * w_d)``: one CSR product over every directed relation for a whole block.

    A weight scales a whole column, so it commutes with :math:`T_d`: the product moves ``x`` along every
    directed relation at once and the weights are applied per row afterwards. On CPU without gradients the
    fused kernel runs (:func:`fused_transition`); elsewhere, without gradients, the rows go in chunks, so
    memory stays bounded on large graphs and wide blocks.

    Args:
        x: ``(N, C)`` entity states, one column per (question, feature).
        weights: ``(C, 2R)`` weight of each directed relation for each column.
        stacked: the graph's :class:`~graphfuse.gnn.data.graph.StackedTransitions`.
        values: optional ``(nnz,)`` per-edge values replacing the 1s (0 removes an edge); gradients flow
            into them, which is how an answer's edges are scored for its explanation. ``(B, nnz)`` values,
            whose rows must be equal, split the columns into B equal blocks (one per query) and give each
            block its own edge gradients: B explanations from one backward pass.

    Shapes:
        returns ``(N, C)``.
    """
    if cpu_kernels.available(x, weights, *([values] if values is not None else [])):
        return fused_transition(
            x, weights, stacked, values if values is None or values.dim() == 1 else values[0]
        )[0]
    if stacked.delta is not None or stacked.mask is not None:  # merged edges, and the delta beside them
        merged, own = stacked.merged, int(stacked.matrix.col_indices().numel())
        merged_values = None
        if values is not None:
            merged_values = values[..., :own] if stacked.mask is None else values[..., :own] * stacked.mask
        out = _weighted_block(x, weights, merged, merged_values)
        if stacked.delta is not None:
            delta_values = values[..., own:] if values is not None else None
            if out.requires_grad or (delta_values is not None and delta_values.requires_grad):
                return out + _weighted_block(x, weights, stacked.delta, delta_values)
            _weighted_block(x, weights, stacked.delta, delta_values, out=out)
        return out
    return _weighted_block(x, weights, stacked, values)


def _weighted_block(
    x: Tensor,
    weights: Tensor,
    stacked: StackedTransitions,
    values: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """:func:`weighted_transition` over one plain CSR block; without gradients it adds into ``out`` when
    given."""
    tracked = [t for t in (x, weights, values) if t is not None and t.requires_grad]
    if torch.is_grad_enabled() and tracked:
        return _WeightedTransition.apply(x, weights, stacked, values)
    if values is not None:
        stacked = stacked.with_values(values if values.dim() == 1 else values[0])
    rows = stacked.rows.numel()
    step = max(1, CHUNK_ELEMENTS // max(x.shape[1], 1))
    if rows <= step:
        moved = stacked.matrix @ x  # (M, C)
        scale_by_direction(moved, weights, stacked.direction_offsets)
        return (torch.zeros_like(x) if out is None else out).index_add_(0, stacked.rows, moved)
    crow, col, vals = stacked.matrix.crow_indices(), stacked.matrix.col_indices(), stacked.matrix.values()
    out = torch.zeros_like(x) if out is None else out
    for start in range(0, rows, step):
        end = min(start + step, rows)
        lo, hi = int(crow[start]), int(crow[end])
        chunk = torch.sparse_csr_tensor(
            crow[start : end + 1] - lo,
            col[lo:hi],
            vals[lo:hi],
            size=(end - start, x.shape[0]),
            check_invariants=False,
        )
        moved = chunk @ x  # (chunk rows, C)
        scale_by_direction(moved, weights, stacked.direction_offsets, start)
        out.index_add_(0, stacked.rows[start:end], moved)
    return out


def fused_transition(
    x: Tensor,
    weights: Tensor,
    stacked: StackedTransitions,
    values: Tensor | None = None,
    **options,  # noqa: ANN003 - cpu_kernels.propagate's: summary, cap, exclude, threshold, out, push
) -> tuple[Tensor, cpu_kernels.Summary]:
    """:func:`weighted_transition` by the fused CPU kernel (:func:`graphfuse.gnn.kernels.cpu.propagate`),
    merged edges and delta in one pass; returns the moved mass and its summary."""
    own = int(stacked.matrix.col_indices().numel())
    delta = None
    if stacked.delta is not None:
        delta = stacked.delta.edge_block(values[own:] if values is not None else None)
    return cpu_kernels.propagate(stacked.edge_block(values), delta, x, weights, **options)


def directed_edge_index(
    edge_index: Tensor, edge_type: Tensor | None, num_relations: int
) -> tuple[Tensor, Tensor]:
    """A PyG edge list over relations as one over directed relations, in the order of
    :class:`~graphfuse.gnn.data.graph.StackedTransitions`: the edges ``(u, r, v)``, then their inverses
    ``(v, r + R, u)``.

    Args:
        edge_index: ``(2, E)`` sources, then targets (PyG's ``source_to_target`` flow).
        edge_type: ``(E,)`` relation of each edge, in ``[0, num_relations)``.
        num_relations: R.

    Shapes:
        returns ``edge_index`` ``(2, 2E)`` and ``edge_type`` ``(2E,)``.
    """
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"Expected 'edge_index' of shape (2, E) (got {tuple(edge_index.shape)})")
    edges = edge_index.shape[1]
    if edge_type is None or edge_type.shape != (edges,):
        got = None if edge_type is None else tuple(edge_type.shape)
        raise ValueError(f"Expected 'edge_type' of shape {(edges,)} beside 'edge_index' (got {got})")
    if edges and not 0 <= int(edge_type.min()) <= int(edge_type.max()) < num_relations:
        low, high = int(edge_type.min()), int(edge_type.max())
        raise ValueError(f"Expected 'edge_type' in [0, {num_relations}) (got {low}..{high})")
    inverse = edge_index.flip(0)
    return torch.cat([edge_index, inverse], dim=1), torch.cat([edge_type, edge_type + num_relations])


def scale_by_direction(moved: Tensor, weights: Tensor, offsets: list[int], first_row: int = 0) -> None:
    """Multiply, in place, each row of ``moved`` (rows ``first_row ..`` of the stacked matrix) by its
    direction's weight per column: rows come in one block per direction, so a broadcast per block replaces
    an ``(M, C)`` gather of the weights.

    Shapes:
        moved: ``(rows, C)``; weights: ``(C, 2R)``.
    """
    last_row = first_row + moved.shape[0]
    for d in range(len(offsets) - 1):
        lo, hi = max(offsets[d], first_row), min(offsets[d + 1], last_row)
        if lo < hi:
            moved[lo - first_row : hi - first_row].mul_(weights[:, d])


def live_directions(degree: Tensor, x: Tensor, threshold: float) -> Tensor:
    """``(C, 2R)`` bool: whether an entity holding more than ``threshold`` in column ``c`` has an edge along
    direction ``d`` (``degree``: the graph's ``(2R, N)`` out-degree CSR)."""
    return Frontier(x, threshold).live_directions(degree)


@dataclass
class Cells:
    """Cells ``(nodes[i], columns[i])`` of an ``(N, C)`` block: where the topics of the questions are."""

    nodes: Tensor
    columns: Tensor
    num_nodes: int

    @functools.cached_property
    def by_node(self) -> tuple[np.ndarray, np.ndarray]:
        """``(nodes, columns)`` ordered by node, as the fused kernels read them."""
        order = np.argsort(self.nodes.numpy(), kind="stable")
        return self.nodes.numpy()[order], self.columns.numpy()[order]


@dataclass
class Frontier:
    """Mass on the graph's nodes ``(N, C)``, one column per question, as propagation hands it from hop to hop.

    A node holding more than ``threshold`` in a column makes the directions leaving it live there
    (:meth:`live_directions`). On CPU without gradients, :meth:`move` runs the fused kernel, which also
    records, while it writes the mass, which nodes hold any (the next hop skips the others) and which
    columns of each exceed the threshold: the frontier's ``summary``, so no further pass reads the block.
    """

    mass: Tensor
    threshold: float
    summary: cpu_kernels.Summary | None = None

    @property
    def fused(self) -> bool:
        """Whether :meth:`move` runs the fused CPU kernel."""
        return cpu_kernels.available(self.mass) and not torch.is_grad_enabled()

    @classmethod
    def start(
        cls, mass: Tensor, threshold: float, cells: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Frontier, Cells]:
        """The frontier of an initial block of non-negative mass, and the cells that hold it: ``cells``
        ``(nodes, columns)`` when the caller knows them (no pass over the block is needed then)."""
        frontier = cls(mass, threshold)
        if cells is not None:
            nodes, columns = cells
            if frontier.fused:
                frontier.summary = cpu_kernels.summarise_cells(
                    nodes.numpy(), columns.numpy(), mass[nodes, columns].numpy(), mass.shape, threshold
                )
            return frontier, Cells(nodes, columns, mass.shape[0])
        if not frontier.fused:
            return frontier, Cells(*(mass > 0).nonzero(as_tuple=True), mass.shape[0])
        frontier.summary = cpu_kernels.summarise(mass, threshold)
        nodes = torch.from_numpy(frontier.summary.active.nonzero()[0])
        held, columns = (mass[nodes] > 0).nonzero(as_tuple=True)
        return frontier, Cells(nodes[held], columns, mass.shape[0])

    def live_directions(self, degree: Tensor) -> Tensor:
        """``(C, 2R)`` bool: whether a node over the threshold in column ``c`` has an edge along ``d``
        (``degree``: the graph's ``(2R, N)`` out-degree CSR)."""
        if self.summary is None and cpu_kernels.available(self.mass.detach(), degree.values()):
            self.summary = cpu_kernels.summarise(self.mass.detach(), self.threshold)
        if self.summary is not None and self.summary.alive.shape[1]:
            return cpu_kernels.live_directions(degree, self.summary)
        return (degree @ (self.mass.detach() > self.threshold).to(degree.dtype)).T > 0

    def live_words(self, degree: Tensor) -> np.ndarray:
        """:meth:`live_directions` packed as :func:`graphfuse.gnn.kernels.cpu.live_words` gives them (fused
        kernels only)."""
        if self.summary is None or not self.summary.alive.shape[1]:  # none yet, or a last hop's
            self.summary = cpu_kernels.summarise(self.mass.detach(), self.threshold)
        return cpu_kernels.live_words(degree, self.summary)

    def move(
        self,
        weights: Tensor,
        stacked: StackedTransitions,
        *,
        cap: float = 1.0,
        exclude: Cells | None = None,
        out: Tensor | None = None,
        mix_into: cpu_kernels.HopMix | None = None,
        last: bool = False,
        degree: Tensor | None = None,
    ) -> Frontier:
        """``min(cap, sum_d T_d @ (mass * w_d))`` with the ``exclude`` cells set to 0,
        written into ``out`` when given; with ``mix_into``, its mix with earlier levels is written too
        (both fused kernel only, see :func:`graphfuse.gnn.kernels.cpu.propagate`). On the ``last`` hop the
        kernel does not record which columns exceed the threshold (no hop follows to ask which directions are
        live); otherwise, given the graph's out-degree, the fused kernel also records the live directions,
        which :meth:`live_directions` then reads.

        Shapes:
            weights: ``(C, 2R)``; out: ``(N, C)``.
        """
        if self.fused and cpu_kernels.available(weights):
            cells = exclude.by_node if exclude is not None else None
            mass, summary = fused_transition(
                self.mass,
                weights,
                stacked,
                summary=self.summary,
                cap=cap,
                exclude=cells,
                threshold=None if last else self.threshold,
                out=out,
                mix_into=mix_into,
                degree=None if last else degree,
            )
            return Frontier(mass, self.threshold, summary)
        if mix_into is not None:
            raise ValueError("only the fused CPU kernel mixes levels as it writes: give no 'mix_into'")
        moved = weighted_transition(self.mass, weights, stacked)
        mass = moved.clamp_(max=cap) if not moved.requires_grad else moved.clamp(max=cap)
        if exclude is not None:
            mass[exclude.nodes, exclude.columns] = 0.0
        return Frontier(mass, self.threshold)
