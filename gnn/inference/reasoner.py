"""The zero-shot question reasoner: relation-path propagation from topic entities, answers with evidence."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.inference.evidence import Evidence, EvidenceWalker, path_walker
from graphfuse.gnn.inference.propagate import (
    PathSearchConfig,
    PathSearchResult,
    RelationPath,
    search_relation_paths,
)
from graphfuse.gnn.inference.relation_vectors import RelationVectors
from graphfuse.gnn.kernels import cpu as cpu_kernels
from graphfuse.gnn.models.answer_head import AnswerHeadConfig, candidate_features
from graphfuse.gnn.models.question_reasoner import QuestionReasoner, ReasonerOutput, token_inputs


@dataclass(frozen=True, slots=True)
class Question:
    """One question for the reasoner: its encoded text and topic entities (entity index, weight)."""

    vector: Tensor  # (D,) normalised
    topics: tuple[tuple[int, float], ...]
    top_k: int = 10
    max_hops: int = 3
    tokens: Tensor | None = None  # (L, D) the encoder's token states, for reasoners that attend over words
    words: int = 0  # words of the text as read (see `count_words`); 0: unknown


_WORD = re.compile(r"[^\W\d_]+")


def count_words(text: str) -> int:
    """Words of a question as the reasoner reads it (runs of letters)."""
    return len(_WORD.findall(text))


@dataclass(frozen=True, slots=True)
class Answer:
    entity: int
    score: float  # probability that the entity answers the question
    hops: int
    evidence: tuple[Evidence, ...]
    inferred: bool = False  # True when the evidence needs a predicted edge


@dataclass
class Reasoning:
    answers: list[Answer]
    paths: list[RelationPath] = field(default_factory=list)
    touched_entities: int = 0
    touched_edges: int = 0


@dataclass
class ReasonerConfig:
    search: PathSearchConfig = field(default_factory=PathSearchConfig)
    evidence_per_answer: int = 3  # evidence paths returned per answer
    min_score: float = 1e-4  # answers below this probability are dropped
    # Platt scaling (slope, offset on the logit) of the zero-shot answer probabilities; (1, 0) keeps them
    calibration: tuple[float, float] = (1.0, 0.0)


def zero_shot_config() -> ReasonerConfig:
    """The zero-shot reasoner's settings, chosen on the development wordings of five graphs
    (``python -m bench.any_graph --questions dev``): a longer path must match the question clearly better,
    the more so the shorter the question (length penalty 0.2 at five words, 0.04 less per word more, between
    0.05 and 0.3), what a direction's answers are counts (0.2), a question that no path matches better than
    0.5 keeps most of its mass on "no path fits", and the probabilities are Platt-scaled to the rate at
    which the top answer was right."""
    return ReasonerConfig(
        PathSearchConfig(
            length_penalty=0.2,
            penalty_per_word=0.04,
            reference_words=5,
            penalty_range=(0.05, 0.3),
            answer_weight=0.2,
            abstain_score=0.5,
        ),
        calibration=(0.33, 0.52),
    )


class ZeroShotReasoner:
    """Answers questions by question-relation similarity alone (no training).

    Args:
        config: search and evidence settings.
    """

    wants_token_states = False
    topic_placeholder = ""  # the question is read with its topics' mentions dropped

    def __init__(self, config: ReasonerConfig | None = None) -> None:
        self.config = config or zero_shot_config()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.config})"

    @torch.inference_mode()
    def reason(
        self,
        graph: KnowledgeGraph,
        relation_vectors: Tensor | RelationVectors,
        questions: Sequence[Question],
        entity_vectors: Tensor | None = None,  # noqa: ARG002 - one signature for every reasoner
    ) -> list[Reasoning]:
        """Answer a batch of questions in one propagation.

        Shapes:
            relation_vectors: the relations' encoded phrases, or ``(R, D)`` encodings of their names alone.
        """
        if not questions:
            return []
        count = relation_names(relation_vectors).shape[0]
        if count != graph.num_relations:
            raise ValueError(f"Expected {graph.num_relations} relation vectors (got {count})")
        if graph.num_relations == 0:
            return [Reasoning([]) for _ in questions]
        vectors = torch.stack([q.vector for q in questions])  # (B, D)
        topics = topic_mass(graph.num_entities, questions)
        result = search_paths(
            graph,
            relation_vectors,
            vectors,
            topics,
            [q.max_hops for q in questions],
            self.config.search,
            [q.words for q in questions],
        )
        return [
            Reasoning(
                self._answers(
                    graph, topics[:, b], result.answer_probability[:, b], result.paths[b], question
                ),
                result.paths[b],
                result.touched_entities[b],
                result.touched_edges[b],
            )
            for b, question in enumerate(questions)
        ]

    def _answers(
        self,
        graph: KnowledgeGraph,
        topics: Tensor,
        probability: Tensor,
        paths: list[RelationPath],
        question: Question,
    ) -> list[Answer]:
        """The top answers of one question, each with evidence from the most probable paths reaching it."""
        k = min(question.top_k, int((probability > self.config.min_score).sum()))
        if k == 0:
            return []
        scores, entities = torch.topk(probability, k)
        scores = calibrated(scores, self.config.calibration)
        walkers: dict[int, EvidenceWalker] = {}  # by path
        answers = []
        for score, entity in zip(scores.tolist(), entities.tolist(), strict=True):
            evidence: list[Evidence] = []
            limit = self.config.evidence_per_answer
            for index, path in enumerate(paths):
                if len(evidence) >= limit:
                    break
                if index not in walkers:
                    walkers[index] = path_walker(graph, topics, path.directions)
                walks = walkers[index].walk(entity, len(path.directions), limit - len(evidence))
                evidence.extend(Evidence(walk.hops, path.probability) for walk in walks)
            hops = len(evidence[0].hops) if evidence else 0
            answers.append(Answer(entity, score, hops, tuple(evidence)))
        return answers


def calibrated(probability: Tensor, calibration: tuple[float, float]) -> Tensor:
    """``sigmoid(slope * logit(p) + offset)``: Platt scaling, monotone, so rankings stay."""
    slope, offset = calibration
    if (slope, offset) == (1.0, 0.0):
        return probability
    return torch.sigmoid(slope * torch.logit(probability, eps=1e-6) + offset)


def search_paths(
    graph: KnowledgeGraph,
    relation_vectors: Tensor | RelationVectors,
    vectors: Tensor,
    topics: Tensor,
    max_hops: list[int],
    config: PathSearchConfig,
    words: list[int] | None = None,
) -> PathSearchResult:
    """The zero-shot relation-path search for questions ``(B, D)`` of ``words`` words each from their
    ``(N, B)`` topic mass; relations given by their names alone match the same both ways."""
    relations = (
        relation_vectors
        if isinstance(relation_vectors, RelationVectors)
        else RelationVectors.from_names(relation_vectors)
    )
    names = relations.names
    return search_relation_paths(
        graph,
        relations.direction_similarity(vectors),
        names @ names.T,
        topics,
        max_hops,
        config,
        relations.answer_fit(vectors),
        words,
    )


def relation_names(relation_vectors: Tensor | RelationVectors) -> Tensor:
    """The ``(R, D)`` name vectors trained reasoners read."""
    return relation_vectors.names if isinstance(relation_vectors, RelationVectors) else relation_vectors


def head_candidates(
    output: ReasonerOutput,
    graph: KnowledgeGraph,
    relation_vectors: Tensor,
    vectors: Tensor,
    topics: Tensor,
    entity_vectors: Tensor,
    head: AnswerHeadConfig,
    search: PathSearchConfig,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """What an answer head reads for a batch the reasoner answered: ``(candidates (B, K), features (B, K, F),
    zero-shot answer probabilities (N, B) when the head reads them)``."""
    zero_shot = None
    if head.zero_shot:
        hops = [len(output.hop_scores)] * vectors.shape[0]
        zero_shot = search_paths(graph, relation_vectors, vectors, topics, hops, search).answer_probability
    candidates, features = candidate_features(
        output.scores,
        output.hop_scores,
        output.hop_attention,
        vectors,
        entity_vectors,
        head.candidates,
        zero_shot,
    )
    return candidates, features, zero_shot


def topic_cells(questions: Sequence[Question]) -> tuple[Tensor, Tensor, Tensor]:
    """``(entities, columns, weights)``: each question's topic entities with their linking confidence (the
    highest where one is linked twice), those of positive weight only, ordered by entity then column."""
    best: dict[tuple[int, int], float] = {}
    for column, question in enumerate(questions):
        for entity, weight in question.topics:
            if weight > 0:
                best[entity, column] = max(best.get((entity, column), 0.0), weight)
    cells = sorted(best)
    return (
        torch.tensor([entity for entity, _ in cells], dtype=torch.long),
        torch.tensor([column for _, column in cells], dtype=torch.long),
        torch.tensor([best[cell] for cell in cells], dtype=torch.float32),
    )


def topic_mass(
    num_entities: int, questions: Sequence[Question], cells: tuple[Tensor, Tensor, Tensor] | None = None
) -> Tensor:
    """``(N, B)`` initial mass: each question's topic entities with their linking confidence (from their
    :func:`topic_cells` when already computed)."""
    entities, columns, weights = cells if cells is not None else topic_cells(questions)
    topics = torch.zeros(num_entities, len(questions))
    topics[entities, columns] = weights
    return topics


class TrainedReasoner:
    """Answers with a trained :class:`QuestionReasoner`; evidence follows the strongest weighted edges.

    Args:
        model: the trained model.
        config: evidence settings (its search settings are unused).
        description: what the model is (shown to clients).
    """

    def __init__(
        self, model: QuestionReasoner, config: ReasonerConfig | None = None, description: str = ""
    ) -> None:
        self.model = model.eval()
        self.config = config or ReasonerConfig()
        self.description = description or repr(model)

    @property
    def wants_token_states(self) -> bool:
        """Whether questions must carry their token states (``Question.tokens``)."""
        return self.model.config.token_attention

    @property
    def topic_placeholder(self) -> str:
        """What stands where a topic's mention was in the question
        (:func:`graphfuse.gnn.inference.linking.strip_mentions`)."""
        return self.model.config.topic_placeholder

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.model!r})"

    @torch.inference_mode()
    def reason(
        self,
        graph: KnowledgeGraph,
        relation_vectors: Tensor | RelationVectors,
        questions: Sequence[Question],
        entity_vectors: Tensor | None = None,
    ) -> list[Reasoning]:
        """Answer a batch of questions in one propagation (``max_hops`` caps the hops of each question).

        With the entities' name vectors ``(N, D)``, a model with an answer head re-scores its strongest
        candidates of questions that may use every hop (see :mod:`graphfuse.gnn.models.answer_head`).
        """
        if not questions:
            return []
        if graph.num_relations == 0:
            return [Reasoning([]) for _ in questions]
        relation_vectors = relation_names(relation_vectors)  # the model was trained on names alone
        cells = topic_cells(questions)
        topics = topic_mass(graph.num_entities, questions, cells)
        vectors = torch.stack([q.vector for q in questions])  # (B, D)
        words = {}
        if self.wants_token_states:
            missing = [i for i, q in enumerate(questions) if q.tokens is None]
            if missing:
                raise ValueError(f"questions[{missing[0]}] has no token states (the reasoner reads words)")
            words = token_inputs([q.tokens for q in questions])
        output = self.model(graph, relation_vectors, vectors, topics, **words, topic_cells=cells[:2])
        hops = self.model.config.hops
        head = self.model.answer_head
        rescored = None
        zero_shot = None
        if head is not None and entity_vectors is not None and entity_vectors.shape[0] == graph.num_entities:
            search = self.config.search
            candidates, features, zero_shot = head_candidates(
                output, graph, relation_vectors, vectors, topics, entity_vectors, head.config, search
            )
            rescored = candidates, torch.sigmoid(head(features))  # (B, K) each
        limits = [max(1, min(question.max_hops, hops)) for question in questions]
        by_head = [rescored is not None and limit == hops for limit in limits]  # the head ranks these
        attention = output.hop_attention  # (B, T)
        within: dict[int, Tensor] = {}  # hop limit -> (N, B) scores of answers within that many hops
        touched: dict[int, Tensor] = {}  # hop limit -> (B,) entities with mass, topics included
        levels = output.hop_block if output.hop_block is not None else torch.stack(output.hop_scores)
        # hop scores are 0 on each question's topics (the model never moves mass back to them)
        topic_counts = torch.bincount(cells[1], minlength=len(questions)).to(torch.int32)
        for limit in set(limits):
            within[limit] = (
                output.scores
                if limit == hops
                else sum(output.hop_scores[i] * attention[:, i] for i in range(limit))
            )
            reached = (
                cpu_kernels.count_reached(levels, limit)
                if cpu_kernels.available(levels)
                else (levels[:limit] > 0).any(0).sum(0, dtype=torch.int32)
            )
            touched[limit] = topic_counts + reached
        ranked: dict[int, tuple[Tensor, Tensor]] = {}  # question -> (scores, entities), best first
        for limit in set(limits):
            members = [b for b, lim in enumerate(limits) if lim == limit and not by_head[b]]
            if not members:
                continue
            k = min(max(questions[b].top_k for b in members), graph.num_entities)
            top = torch.topk(within[limit][:, members], k, dim=0)  # (k, B')
            for column, b in enumerate(members):
                values, indices = (
                    top.values[: questions[b].top_k, column],
                    top.indices[: questions[b].top_k, column],
                )
                keep = values > self.config.min_score
                ranked[b] = values[keep], indices[keep]
        results = []
        for b, question in enumerate(questions):
            limit = limits[b]
            if by_head[b]:
                assert rescored is not None
                entities, probabilities = rescored[0][b], rescored[1][b]
                kept = within[limit][entities, b] > self.config.min_score
                if zero_shot is not None:
                    kept |= zero_shot[entities, b] > self.config.min_score
                entities, probabilities = entities[kept], probabilities[kept]
                top_scores, order = torch.sort(probabilities, descending=True)
                top_scores, entities = top_scores[: question.top_k], entities[order[: question.top_k]]
            else:
                top_scores, entities = ranked[b]
            answers = []
            if entities.numel():
                carried = torch.stack(  # (T', k): each hop's share of each answer's score
                    [output.hop_scores[t][entities, b] * attention[b, t] for t in range(limit)]
                )
                answer_hops = carried.argmax(0) + 1  # the hop carrying most of each answer's mass
                walker = EvidenceWalker(graph, topics, levels, b, output.relation_weights[:, b])
                for score, entity, hop in zip(
                    top_scores.tolist(), entities.tolist(), answer_hops.tolist(), strict=True
                ):
                    evidence = walker.walk(entity, hop, self.config.evidence_per_answer)
                    answers.append(Answer(entity, min(score, 1.0), hop, tuple(evidence)))
            results.append(Reasoning(answers, [], int(touched[limit][b]), 0))
        return results
