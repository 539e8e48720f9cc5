"""One hop of question-conditioned propagation: mass moves along every relation, weighted per question."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gnn.graph import KnowledgeGraph, StackedTransitions


class _WeightedTransition(torch.autograd.Function):
    """``sum_d T_d @ (x * w_d)`` with hand-written gradients.

    Sparse autograd would transpose (sort) the matrix and scatter into the few weight rows on every backward
    pass; the precomputed transpose and direction-membership matrices turn both into sparse products.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weights: Tensor, stacked: StackedTransitions) -> Tensor:  # noqa: ANN001
        moved = stacked.matrix @ x  # (M, B): every directed relation's mass in one product
        scale = weights.T[stacked.directions]  # (M, B): each row's relation weight, per question
        ctx.stacked = stacked
        ctx.save_for_backward(moved, scale)
        return torch.zeros_like(x).index_add_(0, stacked.rows, moved * scale)  # (N, B)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # noqa: ANN001
        stacked: StackedTransitions = ctx.stacked
        moved, scale = ctx.saved_tensors
        grad_rows = grad[stacked.rows]  # (M, B)
        grad_x = stacked.transposed @ (grad_rows * scale) if ctx.needs_input_grad[0] else None  # (N, B)
        grad_weights = (stacked.membership @ (grad_rows * moved)).T if ctx.needs_input_grad[1] else None
        return grad_x, grad_weights, None


class RelationPropagation(nn.Module):
    r"""Moves a block of entity scores one hop, with a weight per question and directed relation.

    .. math::
        X' = \min\Big(1, \sum_d T_d \, (X \odot w_d)\Big)

    where :math:`T_d` is the sparse transition of directed relation :math:`d` (inverse edges included) and
    :math:`w_d` the ``(B,)`` weights of that relation for each question. All questions move together: one
    CSR product over all directed relations for the whole ``(N, B)`` block (see
    :class:`~gnn.graph.StackedTransitions`), never one propagation per question.

    Shapes:
        x: ``(N, B)``; weights: ``(B, 2R)``; returns ``(N, B)``.
    """

    def forward(self, graph: KnowledgeGraph, x: Tensor, weights: Tensor) -> Tensor:
        if weights.shape != (x.shape[1], 2 * graph.num_relations):
            raise ValueError(
                f"Expected 'weights' of shape {(x.shape[1], 2 * graph.num_relations)} "
                f"(got {tuple(weights.shape)})"
            )
        return _WeightedTransition.apply(x, weights, graph.stacked_transitions()).clamp(max=1.0)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"
