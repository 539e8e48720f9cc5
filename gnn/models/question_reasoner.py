"""A trainable question reasoner in the style of TransferNet / NSM, over encoded relation names.

Per hop, a small network turns the encoded question into an *instruction*; the directed relations that
leave the current frontier get a softmax distribution from cos(instruction, relation-name embedding +
direction embedding); mass moves from the topic entities along the weighted relations; the answer mixes the
hops by a learned hop attention. Relations compete (a softmax, not independent gates), so following a wrong
relation costs the right one its weight.
Nothing is tied to one graph's ids: relations enter only through their encoded names, so a model trained on
one graph runs on any other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnn.graph import KnowledgeGraph
from gnn.layers import RelationPropagation


@dataclass
class QuestionReasonerConfig:
    text_dim: int = 384  # encoder output size (instructions and relations live in this space)
    hops: int = 3  # propagation steps (the answer mixes all of them)
    live_mass: float = 0.01  # entities with at least this score decide which relations can be followed
    dropout: float = 0.1


@dataclass
class ReasonerOutput:
    scores: Tensor  # (N, B) answer scores in [0, 1]; topic entities zero
    hop_scores: list[Tensor]  # T x (N, B): entity scores after each hop
    relation_weights: Tensor  # (T, B, 2R)
    hop_attention: Tensor  # (B, T)


class QuestionReasoner(nn.Module):
    """Question-conditioned multi-hop propagation.

    Each hop's instruction reads the question *and the relation followed at the previous hop* (NSM's
    recurrent instructions), so "the films written by X, which genres" (written_by^-1 then has_genre) and
    "films sharing writers with X, which genres" (written_by, written_by^-1, has_genre) can part ways after
    the first step. Whether to stop after hop t is read the same way.

    Args:
        config: sizes and hop count.
    """

    def __init__(self, config: QuestionReasonerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or QuestionReasonerConfig()
        d = config.text_dim
        self.hop_embedding = nn.Embedding(config.hops, d)
        self.instruction = nn.Sequential(  # correction added to the question vector, per hop
            nn.Linear(3 * d, 2 * d), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(2 * d, d)
        )
        self.stop = nn.Sequential(
            nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, 1)
        )  # answer-here logit per hop
        self.relation = nn.Linear(d, d)  # correction added to the relation-name vector
        self.direction = nn.Embedding(2, d)  # forward, reversed
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.propagate = RelationPropagation()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start as the zero-shot matcher: instruction = question, relation = its name, cosine logits."""
        for module in (*self.instruction, *self.stop):
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        for module in (self.instruction[-1], self.relation):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        nn.init.normal_(self.hop_embedding.weight, std=0.1)
        nn.init.zeros_(self.direction.weight)
        nn.init.constant_(self.log_temperature, math.log(10.0))

    def directed_relations(self, relation_vectors: Tensor) -> Tensor:
        """``(2R, D)``: relation-name vectors, corrected, forward then reversed."""
        relations = relation_vectors + self.relation(relation_vectors)  # (R, D)
        return torch.cat([relations + self.direction.weight[0], relations + self.direction.weight[1]])

    def forward(
        self, graph: KnowledgeGraph, relation_vectors: Tensor, questions: Tensor, topics: Tensor
    ) -> ReasonerOutput:
        """Score every entity for every question.

        Shapes:
            relation_vectors: ``(R, D)``; questions: ``(B, D)``; topics: ``(N, B)`` initial mass.
        """
        if topics.shape != (graph.num_entities, questions.shape[0]):
            raise ValueError(
                f"Expected 'topics' of shape {(graph.num_entities, questions.shape[0])} "
                f"(got {tuple(topics.shape)})"
            )
        directed = self.directed_relations(relation_vectors)  # (2R, D)
        keys = F.normalize(directed, dim=-1)
        degree = graph.out_degree()  # (2R, N)
        x = topics
        previous = torch.zeros_like(questions)  # (B, D): the relation followed at the previous hop
        hop_scores, weights, stop_logits = [], [], []
        for t in range(self.config.hops):
            state = torch.cat(
                [questions, previous, self.hop_embedding.weight[t].expand_as(questions)], dim=-1
            )
            instruction = questions + self.instruction(state)  # (B, D)
            logits = self.log_temperature.exp() * F.normalize(instruction, dim=-1) @ keys.T  # (B, 2R)
            # Relations compete only among those that leave the current frontier: a direction with no edge
            # from where the mass is cannot be the next step.
            live = (degree @ (x.detach() > self.config.live_mass).float()).T > 0  # (B, 2R)
            w = torch.softmax(logits.masked_fill(~live, float("-inf")), dim=-1).nan_to_num(0.0)  # (B, 2R)
            x = self.propagate(graph, x, w).masked_fill(
                topics > 0, 0.0
            )  # (N, B); paths never revisit a topic
            previous = w @ directed  # (B, D)
            stop_logits.append(
                self.stop(torch.cat([questions, previous, state[:, 2 * questions.shape[1] :]], -1))
            )
            hop_scores.append(x)
            weights.append(w)
        attention = torch.softmax(torch.cat(stop_logits, dim=-1), dim=-1)  # (B, T)
        scores = sum(attention[:, t] * hop_scores[t] for t in range(self.config.hops))  # (N, B)
        return ReasonerOutput(scores, hop_scores, torch.stack(weights), attention)

    def checkpoint(self) -> dict:
        """What :meth:`from_checkpoint` needs: config and weights."""
        return {"config": asdict(self.config), "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> QuestionReasoner:
        model = cls(QuestionReasonerConfig(**checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"])
        return model.eval()

    def __repr__(self) -> str:
        c = self.config
        return f"{self.__class__.__name__}(text_dim={c.text_dim}, hops={c.hops})"
