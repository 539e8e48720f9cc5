"""Answer-vs-not head: re-scores a reasoner's strongest candidates from their propagation scores and the
similarity of their names to the question.

Propagation alone ranks every entity a relation path reaches equally ("what genre is X" reaches genres and
tags alike when both relations carry weight); an entity's name often says whether it is the kind of thing
asked for. The head sees, per candidate, the mixed score, the score after each hop, the hop attention and
cos(question, entity name), and returns the probability that the candidate answers the question. It is fitted
after the reasoner, on the reasoner's own candidates (see
:func:`graphfuse.gnn.training.question_reasoner.fit_answer_head`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn


@dataclass
class AnswerHeadConfig:
    hops: int = 3
    candidates: int = 32  # strongest entities per question that the head re-scores
    hidden: int = 32
    zero_shot: bool = False  # also read the zero-shot path search's probability (candidates by the sum)


def candidate_features(
    scores: Tensor,
    hop_scores: list[Tensor],
    hop_attention: Tensor,
    questions: Tensor,
    entity_vectors: Tensor,
    k: int,
    zero_shot: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The ``k`` strongest candidates of each question and their features.

    With ``zero_shot`` (the zero-shot reasoner's answer probabilities), candidates are the strongest by the
    sum of both scores, and the zero-shot probability is one more feature.

    Shapes:
        scores: ``(N, B)``; hop_scores: T x ``(N, B)``; hop_attention: ``(B, T)``; questions: ``(B, D)``;
        entity_vectors: ``(N, D)`` normalised (zero rows for unnamed entities); zero_shot: ``(N, B)``.
        returns ``(candidates (B, K), features (B, K, 2T + 2 (+ 1)))``.
    """
    k = min(k, scores.shape[0])
    ranking = scores if zero_shot is None else scores + zero_shot
    candidates = torch.topk(ranking.T, k, dim=1).indices  # (B, K)
    top = scores.T.gather(1, candidates)  # (B, K)
    per_hop = torch.stack([h.T.gather(1, candidates) for h in hop_scores], dim=-1)  # (B, K, T)
    weighted = per_hop * hop_attention[:, None, :]  # (B, K, T)
    named = entity_vectors[candidates].to(questions.dtype)  # (B, K, D); stored vectors may be fp16
    similarity = torch.einsum("bkd,bd->bk", named, questions)  # (B, K)
    logit = torch.logit(top.clamp(1e-4, 1 - 1e-4))  # in [-9.2, 9.2]
    features = [logit[..., None], similarity[..., None], per_hop, weighted]
    if zero_shot is not None:
        features.append(zero_shot.T.gather(1, candidates)[..., None])
    return candidates, torch.cat(features, dim=-1)


class AnswerHead(nn.Module):
    """A small MLP over :func:`candidate_features`, starting as the identity on the reasoner's own score."""

    def __init__(self, config: AnswerHeadConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AnswerHeadConfig()
        features = 2 * config.hops + 2 + int(config.zero_shot)
        self.mlp = nn.Sequential(nn.Linear(features, config.hidden), nn.GELU(), nn.Linear(config.hidden, 1))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, features: Tensor) -> Tensor:
        """``(B, K)`` answer logits: the reasoner's own logit plus a learned correction."""
        logit = features[..., 0]
        scaled = torch.cat([logit[..., None] / 10, features[..., 1:]], dim=-1)  # every feature ~ [-1, 1]
        return logit + self.mlp(scaled).squeeze(-1)

    def checkpoint(self) -> dict:
        return {"config": asdict(self.config), "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> AnswerHead:
        head = cls(AnswerHeadConfig(**checkpoint["config"]))
        head.load_state_dict(checkpoint["state_dict"])
        return head.eval()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(candidates={self.config.candidates}, hidden={self.config.hidden})"
