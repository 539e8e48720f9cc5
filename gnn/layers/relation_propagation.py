"""One hop of question-conditioned propagation: mass moves along every relation, weighted per question."""

from __future__ import annotations

from torch import Tensor
from torch_geometric.nn import MessagePassing

from graphfuse.gnn.data.graph import KnowledgeGraph, StackedTransitions
from graphfuse.gnn.kernels.cpu import HopMix
from graphfuse.gnn.layers.transition import Cells, Frontier, directed_edge_index


class RelationPropagation(MessagePassing):
    r"""Moves a block of entity scores one hop, with a weight per question and directed relation.

    .. math::
        X' = \min\Big(1, \sum_d T_d \, (X \odot w_d)\Big)

    where :math:`T_d` is the sparse transition of directed relation :math:`d` (inverse edges included) and
    :math:`w_d` the ``(B,)`` weights of that relation for each question. All questions move together, never
    one propagation per question.

    The graph comes in one of two forms. A :class:`~graphfuse.gnn.data.graph.KnowledgeGraph` takes PyG's
    fused path: :meth:`propagate` is given its stacked CSR matrix and :meth:`message_and_aggregate` moves
    the frontier by :meth:`~graphfuse.gnn.layers.transition.Frontier.move`, one product over all directed
    relations for the whole ``(N, B)`` block (the fused CPU kernel without gradients, which also caps,
    clears the ``exclude`` cells and records the frontier's summary as it writes). A PyG ``edge_index`` with
    ``edge_type`` (as in a ``Data``) takes the per-edge path: :meth:`message` per edge, PyG's sum per target,
    then :meth:`update` caps and clears; each edge ``(u, r, v)`` also sends along its inverse
    ``(v, r + R, u)``, as the stacked transitions do
    (:func:`~graphfuse.gnn.layers.transition.directed_edge_index`). Both give the same mass.

    Shapes:
        graph: a :class:`~graphfuse.gnn.data.graph.KnowledgeGraph`, or ``edge_index`` ``(2, E)`` with
        ``edge_type`` ``(E,)`` in ``[0, R)``; frontier.mass: ``(N, B)``; weights: ``(B, 2R)``; ``exclude``:
        cells set to 0 (the questions' topics); out: ``(N, B)``, where the fused kernel writes the new mass;
        mix_into: where the fused kernel also writes the mix of the earlier levels and the new one
        (:class:`graphfuse.gnn.kernels.cpu.HopMix`; a knowledge graph only); last: no hop follows (see
        :meth:`~graphfuse.gnn.layers.transition.Frontier.move`); returns the frontier of the ``(N, B)``
        result.
    """

    def __init__(self) -> None:
        super().__init__(aggr="add", node_dim=0)

    def forward(
        self,
        graph: KnowledgeGraph | Tensor,
        frontier: Frontier,
        weights: Tensor,
        exclude: Cells | None = None,
        out: Tensor | None = None,
        mix_into: HopMix | None = None,
        last: bool = False,
        edge_type: Tensor | None = None,
    ) -> Frontier:
        stacked, degree = None, None
        if isinstance(graph, KnowledgeGraph):
            if weights.shape != (frontier.mass.shape[1], 2 * graph.num_relations):
                raise ValueError(
                    f"Expected 'weights' of shape {(frontier.mass.shape[1], 2 * graph.num_relations)} "
                    f"(got {tuple(weights.shape)})"
                )
            if edge_type is not None:
                raise ValueError("Expected no 'edge_type' with a knowledge graph (its transitions hold it)")
            stacked, degree = graph.stacked_transitions(), graph.out_degree()
            adjacency = stacked.matrix  # a sparse matrix: propagate takes the fused path
        else:
            if weights.dim() != 2 or weights.shape[0] != frontier.mass.shape[1] or weights.shape[1] % 2:
                raise ValueError(
                    f"Expected 'weights' of shape ({frontier.mass.shape[1]}, 2R) (got {tuple(weights.shape)})"
                )
            if mix_into is not None:
                raise ValueError("only the fused CPU kernel mixes levels as it writes: give no 'mix_into'")
            adjacency, edge_type = directed_edge_index(graph, edge_type, weights.shape[1] // 2)
        return self.propagate(
            adjacency,
            mass=frontier.mass,
            weights=weights,
            edge_type=edge_type,
            frontier=frontier,
            stacked=stacked,
            exclude=exclude,
            into=out,  # not 'out': the name propagate gives its result
            mix_into=mix_into,
            last=last,
            degree=degree,
        )

    def message(self, mass_j: Tensor, weights: Tensor, edge_type: Tensor) -> Tensor:
        return mass_j * weights.T[edge_type]  # (E, B)

    def message_and_aggregate(
        self,
        adj_t: Tensor,
        frontier: Frontier,
        weights: Tensor,
        stacked: StackedTransitions,
        exclude: Cells | None,
        into: Tensor | None,
        mix_into: HopMix | None,
        last: bool,
        degree: Tensor,
    ) -> Frontier:
        return frontier.move(
            weights,
            stacked,
            cap=1.0,
            exclude=exclude,
            out=into,
            mix_into=mix_into,
            last=last,
            degree=degree,
        )

    def update(self, inputs: Tensor | Frontier, frontier: Frontier, exclude: Cells | None) -> Frontier:
        if isinstance(inputs, Frontier):  # message_and_aggregate's: capped and cleared as it moved
            return inputs
        mass = inputs.clamp(max=1.0)  # (N, B)
        if exclude is not None:
            mass[exclude.nodes, exclude.columns] = 0.0
        return Frontier(mass, frontier.threshold)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"
