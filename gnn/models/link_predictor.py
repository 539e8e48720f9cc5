"""Relation-conditioned link prediction in the style of NBFNet (Zhu et al., 2021).

A query ``(h, d, ?)`` over directed relation ``d`` starts a boundary state that is zero everywhere except at
``h``, where it holds the query's embedding; T :class:`~graphfuse.gnn.layers.RelationalConv` layers whose
relation vectors are projected from the query spread it over the graph (a learned generalized Bellman-Ford);
one pass scores every entity as a tail. ``(?, r, t)`` is the query ``(t, inverse r, ?)``. Entities carry no
learned embedding, so new entities are scored without retraining.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from graphfuse.gnn.data.graph import StackedTransitions
from graphfuse.gnn.layers import RelationalConv


@dataclass
class LinkPredictorConfig:
    num_relations: int  # R of the training graph; the model knows 2R directed relations
    dim: int = 32
    layers: int = 6


def in_degree(stacked: StackedTransitions, num_entities: int, values: Tensor | None = None) -> Tensor:
    """Incoming edges per entity over every directed relation (weighted by ``values``), ``(N,)``."""
    counts = torch.diff(stacked.matrix.crow_indices()).to(torch.float32)
    if values is not None:
        shared = values.detach() if values.dim() == 1 else values.detach()[0]
        counts = torch.zeros(stacked.rows.numel()).index_add_(0, stacked.row_of_value, shared)
    return torch.zeros(num_entities).index_add_(0, stacked.rows, counts)


class LinkPredictor(nn.Module):
    """NBFNet-style tail scorer over a graph's stacked transitions.

    Args:
        config: relation count and sizes.
    """

    def __init__(self, config: LinkPredictorConfig) -> None:
        super().__init__()
        self.config = config
        d, directions = config.dim, 2 * config.num_relations
        self.query = nn.Embedding(directions, d)
        self.relation = nn.ModuleList(nn.Linear(d, directions * d) for _ in range(config.layers))
        self.convs = nn.ModuleList(RelationalConv(d) for _ in range(config.layers))
        self.score = nn.Sequential(nn.Linear(2 * d, 2 * d), nn.ReLU(), nn.Linear(2 * d, 1))
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))  # probability = sigmoid(a * logit + b)

    def forward(
        self,
        stacked: StackedTransitions,
        num_entities: int,
        heads: Tensor,
        directions: Tensor,
        values: Tensor | None = None,
        direction_map: Tensor | None = None,
    ) -> Tensor:
        """Logits of every entity as the tail of each query.

        Args:
            stacked: the graph's transitions (its directed relations may differ from the model's: see
                ``direction_map``).
            num_entities: N.
            heads: ``(B,)`` query entities; directions: ``(B,)`` model directed relations.
            values: optional ``(nnz,)`` edge values (0 hides an edge, e.g. the training queries' own edges),
                or ``(B, nnz)`` equal rows to get per-query edge gradients (explanations).
            direction_map: optional ``(2R_graph,)`` model direction of each graph direction, -1 where the
                model does not know it (messages along it are dropped).

        Shapes:
            returns ``(B, N)``.
        """
        b, d = heads.numel(), self.config.dim
        query = self.query(directions)  # (B, d)
        boundary = torch.zeros(num_entities, b, d, dtype=query.dtype)
        boundary[heads, torch.arange(b)] = query
        degree = in_degree(stacked, num_entities, values)
        h = boundary
        for relation, conv in zip(self.relation, self.convs, strict=True):
            vectors = relation(query).view(b, -1, d)  # (B, 2R_model, d)
            if direction_map is not None:
                vectors = torch.cat([vectors, vectors.new_zeros(b, 1, d)], dim=1)[:, direction_map]
            h = h + conv(stacked, h, vectors, boundary, degree, values)
        features = torch.cat([h, query.unsqueeze(0).expand(num_entities, b, d)], dim=-1)
        return self.score(features).squeeze(-1).T  # (B, N)

    def probability(self, logits: Tensor) -> Tensor:
        """Calibrated probability that each scored triple holds."""
        a, b = self.calibration
        return torch.sigmoid(a * logits + b)

    def checkpoint(self) -> dict[str, Any]:
        return {"kind": "link_predictor", "config": asdict(self.config), "state": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> LinkPredictor:
        if checkpoint.get("kind") != "link_predictor":
            raise KeyError("not a link predictor checkpoint")
        model = cls(LinkPredictorConfig(**checkpoint["config"]))
        model.load_state_dict(checkpoint["state"])
        return model.eval()


class LinkEnsemble(nn.Module):
    """Link predictors trained from different seeds, scoring together: the mean of their log-softmax over the
    entities (a query's answer distribution), with its own calibration.

    Args:
        members: trained predictors of one configuration.
    """

    def __init__(self, members: list[LinkPredictor]) -> None:
        super().__init__()
        if not members or any(m.config != members[0].config for m in members):
            raise ValueError("Expected one or more link predictors of the same configuration")
        self.config = members[0].config
        self.members = nn.ModuleList(members)
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """As :meth:`LinkPredictor.forward`, averaged over the members' answer distributions (log space)."""
        return torch.stack([F.log_softmax(m(*args, **kwargs), dim=-1) for m in self.members]).mean(0)

    probability = LinkPredictor.probability

    def checkpoint(self) -> dict[str, Any]:
        return {
            "kind": "link_ensemble",
            "members": [m.checkpoint() for m in self.members],
            "calibration": self.calibration,
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> LinkEnsemble:
        if checkpoint.get("kind") != "link_ensemble":
            raise KeyError("not a link ensemble checkpoint")
        model = cls([LinkPredictor.from_checkpoint(m) for m in checkpoint["members"]])
        model.calibration.copy_(checkpoint["calibration"])
        return model.eval()
