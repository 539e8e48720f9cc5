"""The Ask handler: a question's topic entities linked, the question encoded, the graph reasoned over (batched
with other callers' questions), and the answers named with their evidence and a fused answer text."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from graphfuse.gnn.inference.fusion import fuse_answer_text
from graphfuse.gnn.inference.inferred_answers import with_inferred_answers
from graphfuse.gnn.inference.linking import strip_mentions, strip_topics
from graphfuse.gnn.inference.reasoner import (
    Question,
    Reasoning,
    TrainedReasoner,
    ZeroShotReasoner,
    count_words,
)
from graphfuse.gnn.inference.subgraph import SubgraphConfig, reason_capped
from graphfuse.server.core.errors import InvalidArgument, NotFound
from graphfuse.server.core.named import MATCH_CONFIDENCE, LinkedEntity, NamedEvidence, Topic, named_evidence
from graphfuse.server.core.reason_batcher import ReasonBatcher
from graphfuse.server.core.registry import Clock, GraphRegistry, Timing
from graphfuse.server.core.state import GraphState

MAX_READINGS = 4  # mentions of one question tried as its topic, at most


@dataclass(frozen=True)
class AnswerResult:
    entity_id: str
    name: str
    score: float
    inferred: bool
    hops: int
    evidence: tuple[NamedEvidence, ...]


@dataclass
class AskResult:
    answers: list[AnswerResult]
    text: str
    topic_entities: list[LinkedEntity]
    question_tokens: int
    region_entities: int
    region_edges: int
    timing: Timing


class AskHandler:
    """Answers questions on the registry's graphs; its batcher runs the reasoning of concurrent questions
    on the registry's compute thread as one pass.

    Args:
        registry: the graphs, the shared encode batcher, the compute thread and the limits.
    """

    def __init__(self, registry: GraphRegistry) -> None:
        self.registry = registry
        self.batcher: ReasonBatcher | None = None

    async def start(self) -> None:
        self.batcher = ReasonBatcher(
            self.registry.compute,
            self._reason,
            "questions",
            max_queued=self.registry.limits.max_queued_texts,
        )
        await self.batcher.start()
        self.registry.queues.append(self.batcher)

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()

    @property
    def _reasoner_batcher(self) -> ReasonBatcher:
        self.registry.check_ready()
        assert self.batcher is not None
        return self.batcher

    async def ask(
        self,
        graph: str,
        question: str,
        topic_entities: Sequence[str] = (),
        top_k: int = 0,
        max_hops: int = 0,
        truncate: bool = False,
        deadline: float | None = None,
        min_sequence: int = 0,
    ) -> AskResult:
        """Answer one question: link (compute thread), encode (shared batcher), reason (compute thread).

        ``min_sequence``: first wait until this replica has applied that update (see `wait_for_sequence`).
        """
        registry, limits = self.registry, self.registry.limits
        await registry.wait_for_sequence(min_sequence, deadline, graph)
        state = registry.graph(graph)
        encoder, _ = registry.check_ready()
        registry.check_text(question, "question")
        top_k = registry.check_top_k(top_k)
        if max_hops < 0 or max_hops > limits.max_hops:
            raise InvalidArgument(f"max_hops must be between 0 and {limits.max_hops} (got {max_hops})")
        max_hops = max_hops or limits.default_hops
        registry.check_queue_delay("question")
        clock = Clock()
        queued = time.perf_counter()

        def link() -> tuple[list[tuple[list[Topic], str]], int]:
            clock.add("queue_us", queued)
            tokens = encoder.count_tokens([question])[0]
            if tokens > encoder.max_tokens and not truncate:
                raise InvalidArgument(
                    f"question has {tokens} tokens, more than the model's limit of {encoder.max_tokens}; "
                    "shorten it or ask for truncation"
                )
            return self._readings(state, question, topic_entities), tokens

        readings, tokens = await registry.on_compute(link)
        began = time.perf_counter()
        encoded = await registry.shared_batcher.encode(
            [text for _, text in readings],
            truncate=True,
            deadline=deadline,
            token_states=state.reasoner.wants_token_states,
            max_queue_delay=registry.queue_bound,
        )
        queued = clock.add("encode_us", began)

        if not readings[0][0]:  # nothing linked: by meaning, the whole question against the entity names
            vector = (
                await registry.shared_batcher.encode(
                    [question], truncate=True, deadline=deadline, max_queue_delay=registry.queue_bound
                )
            ).vectors[0]
            readings = [(await registry.on_compute(self._nearest_topic, state, vector), readings[0][1])]
            queued = clock.add("encode_us", queued)
        asked = [
            Question(
                encoded.vectors[i],
                tuple((e.index, e.score) for e in reading_topics),
                top_k,
                max_hops,
                encoded.token_states[i] if encoded.token_states else None,
                count_words(text),
            )
            for i, (reading_topics, text) in enumerate(readings)
        ]
        reasonings = await asyncio.gather(  # batched with each other and with other callers' questions
            *(self._reasoner_batcher.submit(state, q, deadline, registry.queue_bound) for q in asked)
        )
        best = max(range(len(readings)), key=lambda i: _top_score(reasonings[i]))
        reasoning, topics = reasonings[best], readings[best][0]
        found = reasoning.answers
        if state.link_predictor is not None and topics:
            topic = max(topics, key=lambda t: t.score).index
            found = await registry.on_compute(
                with_inferred_answers,
                state.link_predictor,
                state.graph,
                reasoning,
                topic,
                top_k,
                state.reasoner.config.calibration,
            )
        clock.add("reason_us", queued)
        answers = [
            AnswerResult(
                state.graph.entity_ids[a.entity],
                state.graph.names[a.entity],
                a.score,
                a.inferred,
                a.hops,
                tuple(named_evidence(state.graph, e, a.inferred) for e in a.evidence),
            )
            for a in found
        ]
        return AskResult(
            answers,
            fuse_answer_text(state.graph, found),
            [t.linked(state.graph) for t in topics],
            tokens,
            reasoning.touched_entities,
            reasoning.touched_edges,
            clock.done(),
        )

    @staticmethod
    def _readings(state: GraphState, question: str, given: Sequence[str]) -> list[tuple[list[Topic], str]]:
        """The ways to read a question: topic entities (given ones resolved, else found in the text) and the
        question without them, as the graph's reasoner reads it. With several mentions found in the text and
        the zero-shot reasoner, each mention is tried as the topic, the others left as words ("What is a
        succubus a kind of?": "kind" is an entity of WordNet too); otherwise one reading with every topic."""
        placeholder = state.reasoner.topic_placeholder
        if given:
            topics = []
            for i, text in enumerate(given):
                found = state.linker.lookup(text)
                if not found:
                    raise NotFound(f"topic_entities[{i}] {text!r} is not an entity of graph {state.name!r}")
                topics += [Topic(e, 1.0, text, "given") for e, _ in found]
            return [(topics, strip_topics(state.linker, question, (t.index for t in topics), placeholder))]
        mentions = state.linker.find_mentions(question)
        topics = [
            Topic(e, MATCH_CONFIDENCE[m.method], m.text, m.method) for m in mentions for e in m.entities
        ]
        texts = list(dict.fromkeys(t.mention for t in topics))
        if len(texts) < 2 or not isinstance(state.reasoner, ZeroShotReasoner):
            return [(topics, strip_mentions(question, mentions, placeholder))]
        named = {text: sum(t.mention == text for t in topics) for text in texts}
        texts.sort(key=lambda text: (named[text], -len(text)))  # the most specific mentions are tried first
        readings = []
        for text in texts[:MAX_READINGS]:
            chosen = [t for t in topics if t.mention == text]
            # a mention names one entity: naming several, each is that one only so likely
            chosen = [dataclasses.replace(t, score=t.score / len(chosen)) for t in chosen]
            entities = {t.index for t in chosen}
            stripped = [m for m in mentions if entities & set(m.entities)]  # as strip_topics finds them
            readings.append((chosen, strip_mentions(question, stripped, placeholder)))
        return readings

    def _nearest_topic(self, state: GraphState, vector: Tensor) -> list[Topic]:
        if state.graph.num_entities == 0:
            return []
        scores, indices = state.entity_vectors.nearest(vector, 1)
        if float(scores[0]) < self.registry.config.link_threshold:
            return []
        return [Topic(int(indices[0]), float(scores[0]), "", "embedding")]

    def _reason(self, state: GraphState, questions: list[Question]) -> list[Reasoning]:
        """One batch of questions on the compute thread; on very large graphs, on the capped subgraph around
        their topic entities (gnn/inference/subgraph.py)."""
        reasoner = state.reasoner
        depth = (
            reasoner.model.config.hops
            if isinstance(reasoner, TrainedReasoner)
            else max(q.max_hops for q in questions)
        )
        config = SubgraphConfig(
            max_entities=self.registry.config.reason_subgraph_entities,
            hops=depth,
            min_graph_edges=self.registry.config.reason_subgraph_min_edges,
        )
        return reason_capped(reasoner, state.graph, state.relations, questions, config, state.entity_vectors)


def _top_score(reasoning: Reasoning) -> float:
    return reasoning.answers[0].score if reasoning.answers else 0.0
