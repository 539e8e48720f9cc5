"""The sparse kernel under every propagation layer: ``sum_d T_d @ (x * w_d)`` over all directed relations."""

from __future__ import annotations

import torch
from torch import Tensor

from gnn import cpu_kernels
from gnn.graph import StackedTransitions


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
    directed relation at once and the weights are applied per row afterwards. Without gradients the rows go
    in chunks, so memory stays bounded on large graphs and wide blocks.

    Args:
        x: ``(N, C)`` entity states, one column per (question, feature).
        weights: ``(C, 2R)`` weight of each directed relation for each column.
        stacked: the graph's :class:`~gnn.graph.StackedTransitions`.
        values: optional ``(nnz,)`` per-edge values replacing the 1s (0 removes an edge); gradients flow
            into them, which is how an answer's edges are scored for its explanation. ``(B, nnz)`` values,
            whose rows must be equal, split the columns into B equal blocks (one per query) and give each
            block its own edge gradients: B explanations from one backward pass.

    Shapes:
        returns ``(N, C)``.
    """
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
    matrix = stacked.matrix
    if cpu_kernels.available(x, weights, matrix.values()):  # one fused pass, no (M, C) block
        return cpu_kernels.weighted_rows(
            matrix.crow_indices(),
            matrix.col_indices(),
            matrix.values(),
            stacked.rows,
            stacked.direction_offsets,
            x,
            weights,
            torch.zeros_like(x) if out is None else out,
        )
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
    if cpu_kernels.available(x, degree.values()):
        return cpu_kernels.live_directions(degree, x, threshold)
    return (degree @ (x > threshold).to(degree.dtype)).T > 0
