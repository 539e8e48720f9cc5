"""A trainable question reasoner in the style of TransferNet / NSM, over encoded relation names.

Per hop, a small network turns the encoded question (and, by attention, its token states) into an
*instruction*; the directed relations that
leave the current frontier get a softmax distribution from cos(instruction, relation-name embedding +
direction embedding); mass moves from the topic entities along the weighted relations; the answer mixes the
hops by a learned hop attention. Relations compete (a softmax, not independent gates), so following a wrong
relation costs the right one its weight.
Nothing is tied to one graph's ids: relations enter only through their encoded names, so a model trained on
one graph runs on any other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnn.graph import KnowledgeGraph
from gnn.layers import RelationPropagation
from gnn.layers.transition import live_directions
from gnn.models.answer_head import AnswerHead, AnswerHeadConfig


@dataclass
class QuestionReasonerConfig:
    text_dim: int = 384  # encoder output size (instructions and relations live in this space)
    hops: int = 3  # propagation steps (the answer mixes all of them)
    live_mass: float = 0.01  # entities with at least this score decide which relations can be followed
    dropout: float = 0.1
    token_attention: bool = True  # each hop also attends over the question's token states (word order:
    # "directed the films starred by" vs "starred in the films directed by")
    max_temperature: float = 100.0  # cap of the learned relation-softmax temperature


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
    the first step. With ``token_attention``, each hop also attends over the question's token states from
    that same state (NSM's instruction attention): a pooled sentence vector barely tells "who directed the
    films starred by" from "who starred in the films directed by", the words around the gap do. Whether to
    stop after hop t is read the same way.

    Args:
        config: sizes and hop count.
    """

    def __init__(self, config: QuestionReasonerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or QuestionReasonerConfig()
        d = config.text_dim
        # inputs of the instruction and stop heads: question, previous relation, hop (, attended words)
        width = (4 if config.token_attention else 3) * d
        self.hop_embedding = nn.Embedding(config.hops, d)
        if config.token_attention:
            self.token_norm = nn.LayerNorm(d)
            self.token_query = nn.Linear(3 * d, d)
        self.instruction = nn.Sequential(  # correction added to the question vector, per hop
            nn.Linear(width, 2 * d), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(2 * d, d)
        )
        self.stop = nn.Sequential(nn.Linear(width, d), nn.GELU(), nn.Linear(d, 1))  # answer-here logit
        self.relation = nn.Linear(d, d)  # correction added to the relation-name vector
        self.direction = nn.Embedding(2, d)  # forward, reversed
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.propagate = RelationPropagation()
        self.answer_head: AnswerHead | None = None  # fitted after the reasoner (gnn.train.fit_answer_head)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start as the zero-shot matcher: instruction = question, relation = its name, cosine logits."""
        queries = [self.token_query] if self.config.token_attention else []
        for module in (*self.instruction, *self.stop, *queries):
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
        self,
        graph: KnowledgeGraph,
        relation_vectors: Tensor,
        questions: Tensor,
        topics: Tensor,
        tokens: Tensor | None = None,
        token_mask: Tensor | None = None,
    ) -> ReasonerOutput:
        """Score every entity for every question.

        Shapes:
            relation_vectors: ``(R, D)``; questions: ``(B, D)``; topics: ``(N, B)`` initial mass;
            tokens: ``(B, L, D)`` the questions' token states and token_mask ``(B, L)`` (True on real tokens),
            both required with ``token_attention`` (see :func:`token_inputs`).
        """
        if topics.shape != (graph.num_entities, questions.shape[0]):
            raise ValueError(
                f"Expected 'topics' of shape {(graph.num_entities, questions.shape[0])} "
                f"(got {tuple(topics.shape)})"
            )
        if self.config.token_attention:
            if tokens is None or token_mask is None:
                raise ValueError("this model attends over the questions' words: give 'tokens', 'token_mask'")
            if tokens.shape[0] != questions.shape[0] or token_mask.shape != tokens.shape[:2]:
                raise ValueError(
                    f"Expected 'tokens' (B, L, D) and 'token_mask' (B, L) for B={questions.shape[0]} "
                    f"(got {tuple(tokens.shape)} and {tuple(token_mask.shape)})"
                )
            words = self.token_norm(tokens)  # (B, L, D)
        directed = self.directed_relations(relation_vectors)  # (2R, D)
        keys = F.normalize(directed, dim=-1)
        degree = graph.out_degree()  # (2R, N)
        topic_entities, topic_columns = (topics > 0).nonzero(as_tuple=True)
        x = topics
        previous = torch.zeros_like(questions)  # (B, D): the relation followed at the previous hop
        hop_scores, weights, stop_logits = [], [], []
        for t in range(self.config.hops):
            state = torch.cat(
                [questions, previous, self.hop_embedding.weight[t].expand_as(questions)], dim=-1
            )
            if self.config.token_attention:
                query = self.token_query(state)  # (B, D)
                attention_logits = torch.einsum("bd,bld->bl", query, words) / math.sqrt(query.shape[-1])
                word_weights = torch.softmax(attention_logits.masked_fill(~token_mask, float("-inf")), -1)
                state = torch.cat([state, torch.einsum("bl,bld->bd", word_weights, words)], dim=-1)
            instruction = questions + self.instruction(state)  # (B, D)
            temperature = self.log_temperature.exp().clamp(max=self.config.max_temperature)
            logits = temperature * F.normalize(instruction, dim=-1) @ keys.T  # (B, 2R)
            # Relations compete only among those that leave the current frontier: a direction with no edge
            # from where the mass is cannot be the next step.
            live = live_directions(degree, x.detach(), self.config.live_mass)  # (B, 2R)
            w = torch.softmax(logits.masked_fill(~live, float("-inf")), dim=-1).nan_to_num(0.0)  # (B, 2R)
            x = self.propagate(graph, x, w)  # (N, B)
            x[topic_entities, topic_columns] = 0.0  # never back to a topic
            previous = w @ directed  # (B, D)
            stop_logits.append(
                self.stop(torch.cat([questions, previous, state[:, 2 * questions.shape[1] :]], -1))
            )
            hop_scores.append(x)
            weights.append(w)
        attention = torch.softmax(torch.cat(stop_logits, dim=-1), dim=-1)  # (B, T)
        scores = hop_scores[0] * attention[:, 0]  # (N, B)
        for t in range(1, self.config.hops):
            scores.addcmul_(hop_scores[t], attention[:, t])
        return ReasonerOutput(scores, hop_scores, torch.stack(weights), attention)

    def checkpoint(self) -> dict:
        """What :meth:`from_checkpoint` needs: config and weights (the answer head's included)."""
        head = asdict(self.answer_head.config) if self.answer_head is not None else None
        return {"config": asdict(self.config), "answer_head": head, "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> QuestionReasoner:
        # checkpoints from before token attention lack the key and were trained without it
        model = cls(QuestionReasonerConfig(**{"token_attention": False, **checkpoint["config"]}))
        if checkpoint.get("answer_head") is not None:
            model.answer_head = AnswerHead(AnswerHeadConfig(**checkpoint["answer_head"]))
        model.load_state_dict(checkpoint["state_dict"])
        return model.eval()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{self.__class__.__name__}(text_dim={c.text_dim}, hops={c.hops}, "
            f"token_attention={c.token_attention}, answer_head={self.answer_head is not None})"
        )


def token_inputs(states: Sequence[Tensor]) -> dict[str, Tensor]:
    """The model's ``tokens`` and ``token_mask`` arguments from one ``(L_b, D)`` tensor per question (any
    float dtype): ``(B, L, D)`` float32 states padded with zeros to the longest question, ``(B, L)`` True on
    real tokens."""
    tokens = nn.utils.rnn.pad_sequence([s.float() for s in states], batch_first=True)  # (B, L, D)
    lengths = torch.tensor([s.shape[0] for s in states])
    return {"tokens": tokens, "token_mask": torch.arange(tokens.shape[1]) < lengths[:, None]}
