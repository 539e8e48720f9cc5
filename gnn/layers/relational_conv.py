"""One layer of relation-conditioned message passing (NBFNet's generalized Bellman-Ford iteration)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from graphfuse.gnn.data.graph import StackedTransitions
from graphfuse.gnn.layers.transition import directed_edge_index, weighted_transition


class RelationalConv(MessagePassing):
    r"""Messages ``h_u * w_d`` (DistMult) along every directed relation, aggregated with the boundary state.

    .. math::
        a_v = b_v + \sum_{(u, d, v)} h_u \odot w_d, \qquad
        h'_v = \mathrm{ReLU}\Big(\mathrm{LN}\big(W [h_v;\ \bar a_v;\ \bar a_v s_v]\big)\Big)

    where :math:`\bar a_v = a_v / (\deg v + 1)` is the mean message and
    :math:`s_v = \log(\deg v + 2) / \delta` a PNA degree scaler (:math:`\delta` the graph's mean of
    :math:`\log(\deg + 2)`), so a node's update sees both the average and the amount of evidence arriving.

    The graph comes in one of two forms. A :class:`~graphfuse.gnn.data.graph.StackedTransitions` takes
    PyG's fused path: :meth:`propagate` is given its CSR matrix and :meth:`message_and_aggregate` sums over
    all directed relations for every query and feature in one product
    (:func:`~graphfuse.gnn.layers.transition.weighted_transition`). A PyG ``edge_index`` with ``edge_type``
    (as in a ``Data``) takes the per-edge path: :meth:`message` per edge, PyG's sum per target; each edge
    ``(u, r, v)`` also sends along its inverse ``(v, r + R, u)``, as the stacked transitions do
    (:func:`~graphfuse.gnn.layers.transition.directed_edge_index`). Both give the same result.

    Args:
        dim (int): state size.

    Shapes:
        graph: a :class:`~graphfuse.gnn.data.graph.StackedTransitions`, or ``edge_index`` ``(2, E)`` with
        ``edge_type`` ``(E,)`` in ``[0, R)``; h, boundary: ``(N, B, dim)``; relation: ``(B, 2R, dim)``
        per-query vector of each directed relation; degree: ``(N,)``; values: optional ``(nnz,)`` or
        ``(B, nnz)`` edge values of the stacked transitions (see
        :func:`~graphfuse.gnn.layers.transition.weighted_transition`), or ``(E,)`` weights of the edges of
        ``edge_index`` (an edge's inverse takes its weight); returns ``(N, B, dim)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(aggr="add", node_dim=0)
        self.dim = dim
        self.linear = nn.Linear(3 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.linear.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self,
        graph: StackedTransitions | Tensor,
        h: Tensor,
        relation: Tensor,
        boundary: Tensor,
        degree: Tensor,
        values: Tensor | None = None,
        edge_type: Tensor | None = None,
    ) -> Tensor:
        n, b, d = h.shape
        stacked, edge_weight = None, None
        if isinstance(graph, StackedTransitions):
            if edge_type is not None:
                raise ValueError("Expected no 'edge_type' with stacked transitions (their rows hold it)")
            stacked, adjacency = graph, graph.matrix  # a sparse matrix: propagate takes the fused path
        else:
            adjacency, edge_type = directed_edge_index(graph, edge_type, relation.shape[1] // 2)
            if values is not None:
                if values.shape != (graph.shape[1],):
                    raise ValueError(
                        f"Expected 'values' of shape {(graph.shape[1],)} beside 'edge_index' "
                        f"(got {tuple(values.shape)})"
                    )
                edge_weight, values = torch.cat([values, values]), None
        summed = self.propagate(
            adjacency,
            x=h,
            relation=relation,
            stacked=stacked,
            values=values,
            edge_type=edge_type,
            edge_weight=edge_weight,
        )
        mean = (summed + boundary) / (degree + 1).view(n, 1, 1)
        log_degree = torch.log(degree + 2)
        amplify = (log_degree / log_degree.mean().clamp(min=math.log(2))).view(n, 1, 1)
        update = self.linear(torch.cat([h, mean, mean * amplify], dim=-1))
        return torch.relu(self.norm(update))

    def message(self, x_j: Tensor, relation: Tensor, edge_type: Tensor, edge_weight: Tensor | None) -> Tensor:
        message = x_j * relation[:, edge_type].transpose(0, 1)  # (E, B, dim)
        return message if edge_weight is None else message * edge_weight.view(-1, 1, 1)

    def message_and_aggregate(
        self, adj_t: Tensor, x: Tensor, relation: Tensor, stacked: StackedTransitions, values: Tensor | None
    ) -> Tensor:
        n, b, d = x.shape
        weights = relation.permute(0, 2, 1).reshape(b * d, -1)  # (B*d, 2R)
        return weighted_transition(x.reshape(n, b * d), weights, stacked, values).view(n, b, d)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim})"
