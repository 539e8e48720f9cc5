"""The question reasoner learns relation paths from (question, answers) pairs alone."""

from __future__ import annotations

import random

import pytest
import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.gnn.evaluation.qa_metrics import answer_f1, qa_metrics
from graphfuse.gnn.inference.reasoner import Question, TrainedReasoner
from graphfuse.gnn.models.question_reasoner import QuestionReasoner, QuestionReasonerConfig
from graphfuse.gnn.training.question_reasoner import (
    QADataset,
    TrainConfig,
    hop_loss,
    topic_block,
    train_question_reasoner,
)

# Question "templates": a relation path walked from the topic (an index >= R walks a relation backwards).
TEMPLATES = [(0,), (3,), (1,), (3, 1), (3, 4), (1, 2)]  # R = 3: r0 starred, r1 directed, r2 born_in


def movie_world(seed: int = 0) -> KnowledgeGraph:
    rng = random.Random(seed)
    triples = []
    for m in range(40):
        for a in rng.sample(range(30), 2):
            triples.append(TripleRecord(f"movie{m}", "starred", f"actor{a}"))
        triples.append(TripleRecord(f"movie{m}", "directed", f"director{rng.randrange(12)}"))
    for d in range(12):
        triples.append(TripleRecord(f"director{d}", "born_in", f"city{rng.randrange(5)}"))
    return KnowledgeGraph([], triples)


def dataset(graph: KnowledgeGraph, count: int, seed: int) -> QADataset:
    """Questions whose vector says only which template they follow; answers come from the graph."""
    rng = random.Random(seed)
    vectors, topics, answers, hops = [], [], [], []
    while len(topics) < count:
        t = rng.randrange(len(TEMPLATES))
        start = rng.randrange(graph.num_entities)
        x = torch.zeros(graph.num_entities, 1)
        x[start] = 1.0
        for d in TEMPLATES[t]:
            x = graph.transition(d).apply(x).clamp(max=1.0)
        x[start] = 0.0
        reached = x.flatten().nonzero().flatten().tolist()
        if not reached:
            continue
        vectors.append(torch.nn.functional.one_hot(torch.tensor(t), 8).float() + 0.05 * torch.randn(8))
        topics.append([start])
        answers.append(reached)
        hops.append(len(TEMPLATES[t]))
    return QADataset(torch.stack(vectors), topics, answers, hops)


def test_learns_one_and_two_hop_templates() -> None:
    torch.manual_seed(0)
    graph = movie_world()
    relation_vectors = torch.nn.functional.normalize(torch.randn(graph.num_relations, 8), dim=1)
    train = dataset(graph, 600, seed=1)
    held = dataset(graph, 150, seed=2)
    model = train_question_reasoner(
        graph,
        relation_vectors,
        train,
        QuestionReasonerConfig(text_dim=8, hops=2, dropout=0.0, token_attention=False),
        TrainConfig(epochs=8, batch_size=32, lr=1e-2),
    )
    reasoner = TrainedReasoner(model)
    ranked, committed = [], []
    for i in range(len(held)):
        question = Question(held.questions[i], ((held.topics[i][0], 1.0),), 5, 2)
        result = reasoner.reason(graph, relation_vectors, [question])[0]
        ranked.append([a.entity for a in result.answers])
        committed.append({a.entity for a in result.answers if a.score >= 0.5})
    metrics = qa_metrics(ranked, committed, held.answers, held.hops)
    assert metrics["1"].hits_at_1 >= 0.95, metrics
    assert metrics["2"].hits_at_1 >= 0.9, metrics
    two_hop = next(i for i in range(len(held)) if held.hops[i] == 2)
    answer = reasoner.reason(
        graph, relation_vectors, [Question(held.questions[two_hop], ((held.topics[two_hop][0], 1.0),), 1, 2)]
    )[0].answers[0]
    assert answer.hops == 2 and len(answer.evidence[0].hops) == 2


def test_hop_loss_reads_only_known_hop_counts() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [0.5, 1.0, 3.0], [1.0, 1.0, 1.0]])
    expected = (
        torch.nn.functional.cross_entropy(logits[0:1], torch.tensor([0]))
        + torch.nn.functional.cross_entropy(logits[2:3], torch.tensor([2]))
    ) / 2
    # hop counts 0 (unknown) and 5 (beyond the model's three hops) are left out
    torch.testing.assert_close(hop_loss(logits, [1, 0, 3, 5]), expected)
    assert hop_loss(logits, [0, 0, 0, 0]).item() == 0.0


def test_hop_counts_steer_the_hop_attention() -> None:
    """ "directed" and "directed, directed^-1, directed" reach the same director (each movie has one), so
    the answers cannot tell hop 1 from hop 3: only the labelled hop counts can (without them every
    question is answered at the same hop)."""
    torch.manual_seed(0)
    graph = movie_world()
    relations = torch.nn.functional.normalize(torch.randn(graph.num_relations, 8), dim=1)
    rng = random.Random(3)
    vectors, topics, answers, hops = [], [], [], []
    for _ in range(400):
        path = rng.choice([(1,), (1, 4, 1)])
        movie = graph.entity_index[f"movie{rng.randrange(40)}"]
        x = torch.zeros(graph.num_entities, 1)
        x[movie] = 1.0
        for d in path:
            x = graph.transition(d).apply(x).clamp(max=1.0)
        vectors.append(torch.nn.functional.one_hot(torch.tensor(len(path) - 1), 8).float())
        topics.append([movie])
        answers.append(x.flatten().nonzero().flatten().tolist())
        hops.append(len(path))
    data = QADataset(torch.stack(vectors), topics, answers, hops)
    model = train_question_reasoner(
        graph,
        relations,
        data,
        QuestionReasonerConfig(text_dim=8, hops=3, dropout=0.0, token_attention=False),
        TrainConfig(epochs=8, batch_size=32, lr=1e-2, hop_weight=1.0),
    )
    with torch.no_grad():
        output = model(graph, relations, data.questions, topic_block(graph.num_entities, data.topics))
    followed = (output.hop_attention.argmax(1) == torch.tensor(hops) - 1).float().mean().item()
    assert followed >= 0.95
    assert all(output.scores[:, i].argmax().item() in answers[i] for i in range(len(data)))


def mixed_world(seed: int = 0) -> KnowledgeGraph:
    """Every entity has edges of both relations, so a topic's edges never tell which relation comes first."""
    rng = random.Random(seed)
    triples = [
        TripleRecord(f"e{i}", relation, f"e{rng.randrange(30)}")
        for i in range(30)
        for relation in ("wrote", "edited")
        for _ in range(2)
    ]
    return KnowledgeGraph([], triples)


def word_order_dataset(graph: KnowledgeGraph, count: int, seed: int) -> QADataset:
    """Two templates with the same words in opposite order ("wrote, then edited" vs "edited, then wrote"):
    the pooled vectors are equal, only the token states (word + position) tell them apart."""
    rng = random.Random(seed)
    words, positions = torch.eye(8)[:2], torch.eye(8)[2:4]
    vectors, topics, answers, hops, tokens = [], [], [], [], []
    while len(topics) < count:
        order = rng.randrange(2)
        path = (0, 1) if order == 0 else (1, 0)
        start = rng.randrange(graph.num_entities)
        x = torch.zeros(graph.num_entities, 1)
        x[start] = 1.0
        for d in path:
            x = graph.transition(d).apply(x).clamp(max=1.0)
        x[start] = 0.0
        reached = x.flatten().nonzero().flatten().tolist()
        if not reached:
            continue
        vectors.append(torch.nn.functional.normalize(words.sum(0) + positions.sum(0), dim=0))
        tokens.append(torch.stack([words[path[0]] + positions[0], words[path[1]] + positions[1]]))
        topics.append([start])
        answers.append(reached)
        hops.append(2)
    return QADataset(torch.stack(vectors), topics, answers, hops, tokens)


def two_hop_hits(
    model: QuestionReasoner, graph: KnowledgeGraph, relations: torch.Tensor, held: QADataset
) -> float:
    topics = topic_block(graph.num_entities, held.topics)
    with torch.no_grad():
        scores = model(graph, relations, held.questions, topics, **held.token_block(range(len(held)))).scores
    top = scores.argmax(0).tolist()
    return sum(top[i] in held.answers[i] for i in range(len(held))) / len(held)


def test_token_attention_tells_word_order_apart() -> None:
    graph = mixed_world()
    relations = torch.nn.functional.normalize(torch.eye(8)[:2] + 0.1, dim=1)  # relation names ~ the words
    train, held = word_order_dataset(graph, 600, seed=1), word_order_dataset(graph, 200, seed=2)
    config = TrainConfig(epochs=8, batch_size=32, lr=1e-2)
    hits = {}
    for attention in (True, False):
        torch.manual_seed(0)
        data = train if attention else QADataset(train.questions, train.topics, train.answers, train.hops)
        model_config = QuestionReasonerConfig(text_dim=8, hops=2, dropout=0.0, token_attention=attention)
        model = train_question_reasoner(graph, relations, data, model_config, config)
        hits[attention] = two_hop_hits(model, graph, relations, held)
    assert hits[True] >= 0.9, hits
    assert hits[False] <= hits[True] - 0.2, hits  # the pooled vector alone cannot tell the orders apart


def test_attending_model_needs_token_states() -> None:
    graph = mixed_world()
    model = QuestionReasoner(QuestionReasonerConfig(text_dim=8, hops=2)).eval()
    topics = topic_block(graph.num_entities, [[0]])
    with pytest.raises(ValueError, match="token_mask"):
        model(graph, torch.randn(2, 8), torch.randn(1, 8), topics)
    reasoner = TrainedReasoner(model)
    assert reasoner.wants_token_states
    with pytest.raises(ValueError, match=r"questions\[0\] has no token states"):
        reasoner.reason(graph, torch.randn(2, 8), [Question(torch.randn(8), ((0, 1.0),))])


@pytest.mark.parametrize("attention", [True, False])
def test_checkpoint_round_trip_gives_the_same_scores(attention: bool) -> None:
    graph = movie_world()
    model = QuestionReasoner(QuestionReasonerConfig(text_dim=8, hops=2, token_attention=attention)).eval()
    restored = QuestionReasoner.from_checkpoint(model.checkpoint())
    vectors = torch.randn(graph.num_relations, 8)
    questions = torch.randn(3, 8)
    topics = topic_block(graph.num_entities, [[0], [1], [2]])
    words = QADataset(questions, [[0]] * 3, [[1]] * 3, [], [torch.randn(n, 8) for n in (2, 5, 3)])
    block = words.token_block(range(3)) if attention else {}
    with torch.no_grad():
        torch.testing.assert_close(
            model(graph, vectors, questions, topics, **block).scores,
            restored(graph, vectors, questions, topics, **block).scores,
        )


def test_answer_f1() -> None:
    assert answer_f1({1, 2}, {2, 3}) == 0.5
    assert answer_f1(set(), {1}) == 0.0
    assert answer_f1({1}, {1}) == 1.0


def test_expected_calibration_error() -> None:
    from graphfuse.gnn.evaluation.qa_metrics import expected_calibration_error

    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert expected_calibration_error([0.95, 0.95], [True, False]) == pytest.approx(0.45)
    assert expected_calibration_error([0.2, 0.8], [False, True]) == pytest.approx(0.2)
    assert expected_calibration_error([], []) == 0.0


def test_a_checkpoint_from_before_token_attention_and_the_answer_head_still_loads() -> None:
    model = QuestionReasoner(QuestionReasonerConfig(text_dim=8, hops=2, token_attention=False))
    checkpoint = model.checkpoint()
    del checkpoint["answer_head"]
    del checkpoint["config"]["token_attention"], checkpoint["config"]["max_temperature"]
    del checkpoint["config"]["topic_placeholder"]
    restored = QuestionReasoner.from_checkpoint(checkpoint)
    assert not restored.config.token_attention and restored.answer_head is None
    assert TrainedReasoner(restored).topic_placeholder == ""  # read with the topics' mentions dropped
    assert not TrainedReasoner(restored).wants_token_states


def _random_inputs(graph: KnowledgeGraph, batch: int, attention: bool, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.randn(graph.num_relations, 8, generator=generator)
    questions = torch.randn(batch, 8, generator=generator)
    topics = topic_block(
        graph.num_entities, [[b % graph.num_entities, (3 * b + 1) % 40] for b in range(batch)]
    )
    lengths = [2 + b % 4 for b in range(batch)]
    states = [torch.randn(n, 8, generator=generator) for n in lengths]
    words = QADataset(questions, [[0]] * batch, [[1]] * batch, [], states).token_block(range(batch))
    return vectors, questions, topics, words if attention else {}


@pytest.mark.parametrize("attention", [True, False])
def test_inference_matches_the_training_path(monkeypatch: pytest.MonkeyPatch, attention: bool) -> None:
    """Without gradients on CPU the forward runs the fused kernels and cached first layers; it scores as
    the path training runs (torch's products, layers rebuilt) does."""
    from graphfuse.gnn.kernels import cpu as cpu_kernels

    graph = movie_world()
    model = QuestionReasoner(QuestionReasonerConfig(text_dim=8, hops=3, token_attention=attention)).eval()
    torch.nn.init.normal_(model.relation.weight, std=0.3)  # corrections away from zero-shot
    torch.nn.init.normal_(model.instruction[-1].weight, std=0.3)
    vectors, questions, topics, words = _random_inputs(graph, 6, attention)
    with torch.no_grad():
        fused = model(graph, vectors, questions, topics, **words)
        monkeypatch.setattr(cpu_kernels, "available", lambda *tensors: False)
        reference = model(graph, vectors, questions, topics, **words)
    torch.testing.assert_close(fused.scores, reference.scores, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.relation_weights, reference.relation_weights)
    torch.testing.assert_close(fused.hop_attention, reference.hop_attention)
    assert fused.scores.max() > 0


def test_inference_caches_follow_the_weights_and_the_relations() -> None:
    graph = movie_world()
    model = QuestionReasoner(QuestionReasonerConfig(text_dim=8, hops=2, token_attention=True)).eval()
    vectors, questions, topics, words = _random_inputs(graph, 4, True)

    def scores(relation_vectors: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(graph, relation_vectors, questions, topics, **words).scores

    def fresh(relation_vectors: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            copy = QuestionReasoner.from_checkpoint(model.checkpoint())
            return copy(graph, relation_vectors, questions, topics, **words).scores

    first = scores(vectors)
    for weight, change in [  # one at a time, in place, as an optimiser step or load_state_dict would
        (model.relation.weight, 0.5),
        (model.direction.weight, 0.3),
        (model.stop[0].bias, 1.0),
        (model.instruction[-1].weight, 0.2),
    ]:
        before = scores(vectors)
        with torch.no_grad():
            weight.add_(change)
        torch.testing.assert_close(scores(vectors), fresh(vectors))
        assert not torch.allclose(scores(vectors), before)
    assert not torch.allclose(scores(vectors), first)
    other = torch.randn(graph.num_relations, 8)
    torch.testing.assert_close(scores(other), fresh(other))
    vectors.mul_(-1.0)  # the same tensor, changed in place
    torch.testing.assert_close(scores(vectors), fresh(vectors))
