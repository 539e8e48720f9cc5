"""The sparse kernel under every propagation layer: ``sum_d T_d @ (x * w_d)`` over all directed relations."""

from __future__ import annotations

import torch
from torch import Tensor

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
            stacked = stacked.with_values(values)
        moved = stacked.matrix @ x  # (M, C): every directed relation's input in one product
        scale = weights.T[stacked.directions]  # (M, C): each row's relation weight, per column
        ctx.stacked = stacked
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
            sources, _, _ = stacked.edge_keys()
            crow = stacked.matrix.crow_indices()
            row_of_value = torch.repeat_interleave(torch.arange(stacked.rows.numel()), torch.diff(crow))
            grad_values = ((grad_rows * scale)[row_of_value] * x[sources]).sum(-1)  # (nnz,)
        return grad_x, grad_weights, None, grad_values


def weighted_transition(
    x: Tensor, weights: Tensor, stacked: StackedTransitions, values: Tensor | None = None
) -> Tensor:
    r"""``sum_d T_d @ (x * w_d)``: one CSR product over every directed relation for a whole block.

    A weight scales a whole column, so it commutes with :math:`T_d`: the product moves ``x`` along every
    directed relation at once and the weights are applied per row afterwards.

    Args:
        x: ``(N, C)`` entity states, one column per (question, feature).
        weights: ``(C, 2R)`` weight of each directed relation for each column.
        stacked: the graph's :class:`~gnn.graph.StackedTransitions`.
        values: optional ``(nnz,)`` per-edge values replacing the 1s (0 removes an edge); gradients flow
            into them, which is how an answer's edges are scored for its explanation.

    Shapes:
        returns ``(N, C)``.
    """
    return _WeightedTransition.apply(x, weights, stacked, values)
