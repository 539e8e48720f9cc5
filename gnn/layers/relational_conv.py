"""One layer of relation-conditioned message passing (NBFNet's generalized Bellman-Ford iteration)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from graphfuse.gnn.data.graph import StackedTransitions
from graphfuse.gnn.layers.transition import weighted_transition


class RelationalConv(nn.Module):
    r"""Messages ``h_u * w_d`` (DistMult) along every directed relation, aggregated with the boundary state.

    .. math::
        a_v = b_v + \sum_{(u, d, v)} h_u \odot w_d, \qquad
        h'_v = \mathrm{ReLU}\Big(\mathrm{LN}\big(W [h_v;\ \bar a_v;\ \bar a_v s_v]\big)\Big)

    where :math:`\bar a_v = a_v / (\deg v + 1)` is the mean message and
    :math:`s_v = \log(\deg v + 2) / \delta` a PNA degree scaler (:math:`\delta` the graph's mean of
    :math:`\log(\deg + 2)`), so a node's update sees both the average and the amount of evidence arriving.
    The sum over edges is one CSR product over all directed relations for every query and feature at once
    (:func:`~graphfuse.gnn.layers.transition.weighted_transition`).

    Args:
        dim (int): state size.

    Shapes:
        h, boundary: ``(N, B, dim)``; relation: ``(B, 2R, dim)`` per-query vector of each directed relation;
        degree: ``(N,)``; returns ``(N, B, dim)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(3 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self,
        stacked: StackedTransitions,
        h: Tensor,
        relation: Tensor,
        boundary: Tensor,
        degree: Tensor,
        values: Tensor | None = None,
    ) -> Tensor:
        n, b, d = h.shape
        weights = relation.permute(0, 2, 1).reshape(b * d, -1)  # (B*d, 2R)
        summed = weighted_transition(h.reshape(n, b * d), weights, stacked, values).view(n, b, d)
        mean = (summed + boundary) / (degree + 1).view(n, 1, 1)
        log_degree = torch.log(degree + 2)
        amplify = (log_degree / log_degree.mean().clamp(min=math.log(2))).view(n, 1, 1)
        update = self.linear(torch.cat([h, mean, mean * amplify], dim=-1))
        return torch.relu(self.norm(update))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim})"
