"""The answer head re-ranks candidates the propagation cannot tell apart by how well their names fit."""

from __future__ import annotations

import random

import pytest
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.gnn.inference.reasoner import Question, TrainedReasoner
from graphfuse.gnn.models.answer_head import AnswerHead, AnswerHeadConfig, candidate_features
from graphfuse.gnn.models.question_reasoner import QuestionReasoner, QuestionReasonerConfig
from graphfuse.gnn.training.question_reasoner import QADataset, fit_answer_head

D = 8


def tagged_films(seed: int = 0) -> tuple[KnowledgeGraph, torch.Tensor]:
    """Films linked by one relation to a genre and to a free-form tag; name vectors: genres near axis 0,
    tags near axis 1, films on axis 2."""
    rng = random.Random(seed)
    triples = []
    for m in range(40):
        triples.append(TripleRecord(f"film{m}", "tagged", f"genre{rng.randrange(5)}"))
        triples.append(TripleRecord(f"film{m}", "tagged", f"tag{rng.randrange(10)}"))
    graph = KnowledgeGraph([], triples)
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.zeros(graph.num_entities, D)
    for i, name in enumerate(graph.entity_ids):
        axis = 0 if name.startswith("genre") else 1 if name.startswith("tag") else 2
        vectors[i, axis] = 1.0
    vectors += 0.2 * torch.randn(graph.num_entities, D, generator=generator)
    return graph, torch.nn.functional.normalize(vectors, dim=1)


def questions(graph: KnowledgeGraph, count: int, seed: int) -> QADataset:
    """ "Which genre is film m" (vector on axis 0) or "which tags has film m" (axis 1)."""
    rng = random.Random(seed)
    vectors, topics, answers = [], [], []
    for _ in range(count):
        film = graph.entity_index[f"film{rng.randrange(40)}"]
        kind = rng.randrange(2)
        prefix = "genre" if kind == 0 else "tag"
        heads, _, tails = graph.edges
        neighbours = tails[heads == film].tolist()
        vectors.append(torch.eye(D)[kind])
        topics.append([film])
        answers.append([e for e in neighbours if graph.entity_ids[e].startswith(prefix)])
    return QADataset(torch.stack(vectors), topics, answers, [1] * count)


def hits_at_1(reasoner: TrainedReasoner, graph, relations, entity_vectors, data: QADataset) -> float:  # noqa: ANN001
    batch = [Question(data.questions[i], ((data.topics[i][0], 1.0),), 1, 1) for i in range(len(data))]
    results = reasoner.reason(graph, relations, batch, entity_vectors)
    return sum(r.answers[0].entity in a for r, a in zip(results, data.answers, strict=True)) / len(data)


def test_candidate_features_and_an_unfitted_head_keep_the_reasoner_score() -> None:
    scores = torch.tensor([[0.9, 0.0], [0.2, 0.5], [0.0, 0.7]])  # (N=3, B=2)
    entity_vectors = torch.nn.functional.normalize(torch.randn(3, D), dim=1)
    questions = torch.nn.functional.normalize(torch.randn(2, D), dim=1)
    candidates, features = candidate_features(
        scores, [scores], torch.ones(2, 1), questions, entity_vectors, 2
    )
    assert candidates.tolist() == [[0, 1], [2, 1]]
    assert features.shape == (2, 2, 4)
    torch.testing.assert_close(features[0, 0, 1], entity_vectors[0] @ questions[0])
    head = AnswerHead(AnswerHeadConfig(hops=1, candidates=2))
    torch.testing.assert_close(
        torch.sigmoid(head(features)), scores.T.gather(1, candidates), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("zero_shot", [False, True])
def test_the_head_learns_which_reached_entities_the_question_asks_for(zero_shot: bool) -> None:
    graph, entity_vectors = tagged_films()
    relations = torch.nn.functional.normalize(torch.eye(D)[3:4], dim=1)
    model = QuestionReasoner(QuestionReasonerConfig(text_dim=D, hops=1, token_attention=False)).eval()
    held = questions(graph, 200, seed=2)
    before = hits_at_1(TrainedReasoner(model), graph, relations, entity_vectors, held)
    config = AnswerHeadConfig(hops=1, zero_shot=zero_shot)  # zero-shot: the path search's answers as input
    fit_answer_head(model, graph, relations, entity_vectors, questions(graph, 300, seed=1), config)
    after = hits_at_1(TrainedReasoner(model), graph, relations, entity_vectors, held)
    assert after >= 0.95 and after >= before + 0.3, (before, after)
    restored = QuestionReasoner.from_checkpoint(model.checkpoint())
    assert restored.answer_head is not None and restored.answer_head.config.zero_shot == zero_shot
    assert hits_at_1(TrainedReasoner(restored), graph, relations, entity_vectors, held) == after
    # without name vectors the reasoner answers from propagation alone
    plain = TrainedReasoner(restored).reason(
        graph, relations, [Question(held.questions[0], ((held.topics[0][0], 1.0),), 5, 1)]
    )
    assert all(a.score <= 1.0 for a in plain[0].answers)
