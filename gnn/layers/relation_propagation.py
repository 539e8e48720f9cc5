"""One hop of question-conditioned propagation: mass moves along every relation, weighted per question."""

from __future__ import annotations

from torch import Tensor, nn

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.kernels.cpu import HopMix
from graphfuse.gnn.layers.transition import Cells, Frontier


class RelationPropagation(nn.Module):
    r"""Moves a block of entity scores one hop, with a weight per question and directed relation.

    .. math::
        X' = \min\Big(1, \sum_d T_d \, (X \odot w_d)\Big)

    where :math:`T_d` is the sparse transition of directed relation :math:`d` (inverse edges included) and
    :math:`w_d` the ``(B,)`` weights of that relation for each question. All questions move together: one
    CSR product over all directed relations for the whole ``(N, B)`` block (see
    :class:`~graphfuse.gnn.data.graph.StackedTransitions`), never one propagation per question.

    Shapes:
        frontier.mass: ``(N, B)``; weights: ``(B, 2R)``; ``exclude``: cells set to 0 (the questions'
        topics); out: ``(N, B)``, where the fused kernel writes the new mass; mix_into: where the fused
        kernel also writes the mix of the earlier levels and the new one
        (:class:`graphfuse.gnn.kernels.cpu.HopMix`); last: no hop follows (see
        :meth:`~graphfuse.gnn.layers.transition.Frontier.move`); returns the frontier of the ``(N, B)``
        result.
    """

    def forward(
        self,
        graph: KnowledgeGraph,
        frontier: Frontier,
        weights: Tensor,
        exclude: Cells | None = None,
        out: Tensor | None = None,
        mix_into: HopMix | None = None,
        last: bool = False,
    ) -> Frontier:
        if weights.shape != (frontier.mass.shape[1], 2 * graph.num_relations):
            raise ValueError(
                f"Expected 'weights' of shape {(frontier.mass.shape[1], 2 * graph.num_relations)} "
                f"(got {tuple(weights.shape)})"
            )
        return frontier.move(
            weights,
            graph.stacked_transitions(),
            cap=1.0,
            exclude=exclude,
            out=out,
            mix_into=mix_into,
            last=last,
            degree=graph.out_degree(),
        )

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"
