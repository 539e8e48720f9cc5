"""Training of the question reasoner on (question vector, topic entities, answers) examples."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.propagate import PathSearchConfig
from graphfuse.gnn.inference.reasoner import head_candidates
from graphfuse.gnn.models.answer_head import AnswerHead, AnswerHeadConfig
from graphfuse.gnn.models.question_reasoner import QuestionReasoner, QuestionReasonerConfig, token_inputs


@dataclass
class QADataset:
    """Encoded questions with their topic and answer entity indices; ``hops`` is 0 when unknown."""

    questions: Tensor  # (M, D)
    topics: list[list[int]]
    answers: list[list[int]]
    hops: list[int] = field(default_factory=list)
    tokens: list[Tensor] | None = None  # per question (L_i, D) token states (fp16 keeps them small)

    def __len__(self) -> int:
        return len(self.topics)

    def subset(self, indices: Sequence[int]) -> QADataset:
        return QADataset(
            self.questions[list(indices)],
            [self.topics[i] for i in indices],
            [self.answers[i] for i in indices],
            [self.hops[i] for i in indices] if self.hops else [],
            [self.tokens[i] for i in indices] if self.tokens is not None else None,
        )

    def token_block(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The ``tokens``/``token_mask`` arguments of the model for these questions (empty without tokens)."""
        if self.tokens is None:
            return {}
        return token_inputs([self.tokens[i] for i in indices])


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-5
    answer_weight: float = 10.0  # answers count this many times a non-answer in the loss
    hop_weight: float = 0.01  # of hop_loss, on the questions whose hop count is known
    max_grad_norm: float = 1.0  # gradients are clipped to this norm (long runs diverged without it)
    seed: int = 0


def topic_block(num_entities: int, topics: Sequence[Sequence[int]]) -> Tensor:
    """``(N, B)`` initial mass: 1 on each question's topic entities."""
    block = torch.zeros(num_entities, len(topics))
    for column, entities in enumerate(topics):
        block[list(entities), column] = 1.0
    return block


def answer_loss(scores: Tensor, target: Tensor, answer_weight: float) -> Tensor:
    """Weighted squared error between entity scores and answer indicators (TransferNet's loss)."""
    weight = 1.0 + (answer_weight - 1.0) * target
    return (weight * (scores - target).pow(2)).sum() / weight.sum() * scores.shape[1]


def hop_loss(hop_logits: Tensor, hops: Sequence[int]) -> Tensor:
    """Mean cross-entropy of the hop attention ``(B, T)`` (as logits) against each question's known hop
    count; questions with an unknown (0) or out-of-range count are left out.

    Answers alone can teach a shortcut: "who are the actors in the films directed by the director of X"
    earns partial credit from X's own actors at hop 1, and once the first hop's relation softmax and the hop
    attention saturate there, the three-hop route gets almost no gradient (MetaQA, seed 0: 20 of the
    template's 22 held-out questions answered at hop 1). Where the data says how many hops a question takes,
    this loss keeps the attention on that hop from the first step.
    """
    target = torch.tensor(hops, dtype=torch.long) - 1
    known = (target >= 0) & (target < hop_logits.shape[1])
    if not known.any():
        return hop_logits.new_zeros(())
    return torch.nn.functional.cross_entropy(hop_logits[known], target[known])


def train_question_reasoner(
    graph: KnowledgeGraph,
    relation_vectors: Tensor,
    data: QADataset,
    model_config: QuestionReasonerConfig | None = None,
    config: TrainConfig | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> QuestionReasoner:
    """Fit a :class:`QuestionReasoner` by propagating each batch and regressing entity scores on answers.

    Args:
        on_step: called as ``on_step(step, total_steps, loss)`` after every optimiser step (progress bars).
    """
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    model_config = model_config or QuestionReasonerConfig(
        text_dim=relation_vectors.shape[1], token_attention=data.tokens is not None
    )
    if model_config.token_attention and data.tokens is None:
        raise ValueError("the model attends over the questions' words: the dataset needs token states")
    model = QuestionReasoner(model_config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = (len(data) + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, config.lr, total_steps=max(total, 1), pct_start=0.1
    )
    order = list(range(len(data)))
    rng = random.Random(config.seed)
    step = 0
    model.train()
    for _ in range(config.epochs):
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            topics = topic_block(graph.num_entities, [data.topics[i] for i in batch])
            target = topic_block(graph.num_entities, [data.answers[i] for i in batch])
            output = model(graph, relation_vectors, data.questions[batch], topics, **data.token_block(batch))
            loss = answer_loss(output.scores, target, config.answer_weight)
            if config.hop_weight and data.hops:
                loss = loss + config.hop_weight * hop_loss(output.hop_logits, [data.hops[i] for i in batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimiser.step()
            schedule.step()
            step += 1
            if on_step is not None:
                on_step(step, total, loss.item())
    return model.eval()


def fit_answer_head(
    model: QuestionReasoner,
    graph: KnowledgeGraph,
    relation_vectors: Tensor,
    entity_vectors: Tensor,
    data: QADataset,
    config: AnswerHeadConfig | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
) -> AnswerHead:
    """Fit an :class:`AnswerHead` on the frozen reasoner's candidates for ``data``; attach it to ``model``.

    The reasoner runs once over ``data``; the head then learns, with binary cross-entropy, which of each
    question's candidates are answers, from their scores and the similarity of their names to the question.
    """
    config = config or AnswerHeadConfig(hops=model.config.hops)
    model.answer_head = None
    model.eval()
    features, labels = [], []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            batch = list(range(start, min(start + batch_size, len(data))))
            topics = topic_block(graph.num_entities, [data.topics[i] for i in batch])
            questions = data.questions[batch]
            output = model(graph, relation_vectors, questions, topics, **data.token_block(batch))
            candidates, batch_features, _ = head_candidates(
                output, graph, relation_vectors, questions, topics, entity_vectors, config, PathSearchConfig()
            )
            answers = topic_block(graph.num_entities, [data.answers[i] for i in batch])  # (N, B)
            labels.append(answers.T.gather(1, candidates))
            features.append(batch_features)
    x, y = torch.cat(features).clone(), torch.cat(labels).clone()  # (M, K, F), (M, K)
    torch.manual_seed(seed)
    head = AnswerHead(config)
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for rows in torch.randperm(x.shape[0], generator=generator).split(256):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x[rows]), y[rows])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.answer_head = head.eval()
    return model.answer_head
