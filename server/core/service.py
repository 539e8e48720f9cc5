"""The service layer: typed requests in, typed results out, no transport.

Model and graph work runs on one compute thread (the event loop stays free for I/O); durable writes run on
one store thread. Every graph is read and mutated on the compute thread only, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from graphfuse.encoder import BatcherConfig, DeadlineExpired, EncodeBatcher, EncoderConfig, TextEncoder
from graphfuse.gnn.data.graph import KnowledgeGraph, warm_up_kernels
from graphfuse.gnn.data.records import (
    EntityRecord,
    Record,
    RelationRecord,
    Retraction,
    TripleRecord,
    validate_record,
)
from graphfuse.gnn.data.relation_text import RelationPhrases
from graphfuse.gnn.formats.datasets import load_umls_demo
from graphfuse.gnn.inference.evidence import Evidence, EvidenceHop
from graphfuse.gnn.inference.fusion import fuse_answer_text
from graphfuse.gnn.inference.inferred_answers import with_inferred_answers
from graphfuse.gnn.inference.link_predictions import InferredTriple, LinkPattern, infer_many
from graphfuse.gnn.inference.linking import nearest_entities, normalize, strip_mentions, strip_topics
from graphfuse.gnn.inference.reasoner import Question, Reasoning, TrainedReasoner, ZeroShotReasoner
from graphfuse.gnn.inference.subgraph import SubgraphConfig, reason_capped
from graphfuse.server.core.config import ServerConfig
from graphfuse.server.core.errors import InvalidArgument, NotFound, Unavailable
from graphfuse.server.core.permissions import authorize, visible
from graphfuse.server.core.reason_batcher import ReasonBatcher
from graphfuse.server.core.state import GraphState
from graphfuse.server.storage.checkpoints import TASKS, checkpoint_path
from graphfuse.server.storage.store import (
    GraphExistsError,
    GraphMeta,
    GraphNotFoundError,
    GraphStore,
    WriteResult,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
MATCH_CONFIDENCE = {"exact": 1.0, "alias": 0.95}  # linking score of a name/id match and of an alias match
EXPLAIN_PATHS = 3  # evidence paths per inferred Lookup triple
GRAPH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_LISTED_RELATIONS = 1000  # relations GetGraphInfo names (and describes), the first by id
MAX_READINGS = 4  # mentions of one question tried as its topic, at most


# ------------------------------------------------------------------------------------------ results
@dataclass
class Timing:
    queue_us: int = 0
    encode_us: int = 0
    reason_us: int = 0
    total_us: int = 0


@dataclass(frozen=True)
class NamedHop:
    head_id: str
    head_name: str
    relation: str
    tail_id: str
    tail_name: str
    reversed: bool
    weight: float


@dataclass(frozen=True)
class NamedEvidence:
    hops: tuple[NamedHop, ...]
    weight: float
    inferred: bool = False
    pattern: str = ""  # the relation-path pattern the path is an example of (Lookup's pattern evidence)


@dataclass(frozen=True)
class AnswerResult:
    entity_id: str
    name: str
    score: float
    inferred: bool
    hops: int
    evidence: tuple[NamedEvidence, ...]


@dataclass(frozen=True)
class LinkedEntity:
    id: str
    name: str
    score: float
    mention: str
    method: str


@dataclass
class AskResult:
    answers: list[AnswerResult]
    text: str
    topic_entities: list[LinkedEntity]
    question_tokens: int
    region_entities: int
    region_edges: int
    timing: Timing


@dataclass(frozen=True)
class FactResult:
    head_id: str
    head_name: str
    relation: str
    tail_id: str
    tail_name: str
    score: float
    inferred: bool = False
    evidence: tuple[NamedEvidence, ...] = ()


@dataclass
class LookupResult:
    triples: list[FactResult]  # stored facts first, then inferred triples
    total_facts: int
    resolved: list[LinkedEntity]
    resolved_relation: str
    region_entities: int
    region_edges: int
    timing: Timing
    link_predictor: str = ""


@dataclass
class EmbedResult:
    vectors: Tensor  # (n, D)
    tokens: list[int]
    timing: Timing


@dataclass
class IngestResult:
    accepted: bool
    records: int
    new_triples: int = 0
    new_entities: int = 0
    removed_triples: int = 0
    stream_sequence: int = 0  # replicated mode: the chunk's last sequence on the update stream
    errors: list[tuple[int, str]] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)


@dataclass(frozen=True)
class GraphModels:
    """What answers a graph's calls: Ask's reasoner, Lookup's link predictor and recommender."""

    reasoner: str
    link_predictor: str
    recommender: str


@dataclass(frozen=True)
class RelationWords:
    """A relation's words: those its relation records gave (a bare record when none did) and the phrases
    questions are matched against, each way, built from them."""

    record: RelationRecord
    phrases: RelationPhrases


@dataclass(frozen=True)
class GraphDetails:
    """What GetGraphInfo says of a graph: stored metadata, relation ids and words (at most
    :data:`MAX_LISTED_RELATIONS` of each, sorted by id; none while the graph is not loaded), and the
    models that serve it."""

    meta: GraphMeta
    relations: list[str]
    models: GraphModels
    relation_words: list[RelationWords] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceInfo:
    model: str
    dimensions: int
    device: str
    precision: str
    max_tokens: int
    graphs: list[str]
    applied_sequence: int = 0


def _retraction_errors(state: GraphState, records: Sequence[Record]) -> list[tuple[int, str]]:
    """Retractions naming a relation or entity the graph does not have (nor gains earlier in the chunk)."""
    graph = state.graph
    relations: set[str] = set()
    entities: set[str] = set()
    errors = []
    for i, record in enumerate(records):
        if isinstance(record, TripleRecord):
            relations.add(record.relation)
            entities.update((record.head, record.tail))
        elif isinstance(record, EntityRecord):
            entities.add(record.id)
        elif isinstance(record, RelationRecord):
            relations.add(record.id)
        elif isinstance(record, Retraction):
            if record.relation not in graph.relation_index and record.relation not in relations:
                errors.append(
                    (i, f"remove_triple: relation {record.relation!r} is not in graph {state.name!r}")
                )
                continue
            for what, entity in (("head", record.head), ("tail", record.tail)):
                if entity not in graph.entity_index and entity not in entities:
                    errors.append(
                        (i, f"remove_triple: {what} {entity!r} is not an entity of graph {state.name!r}")
                    )
                    break
    return errors


class _Unembedded(Exception):
    """Raised on the compute thread by work that needs vectors of `texts` it was not given."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__(texts)
        self.texts = texts


class _Clock:
    """Stage timer: ``clock.add("encode_us", since)`` adds the microseconds since ``since`` to that stage."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.timing = Timing()

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        setattr(self.timing, stage, getattr(self.timing, stage) + int((now - since) * 1e6))
        return now

    def done(self) -> Timing:
        self.timing.total_us = int((time.perf_counter() - self.start) * 1e6)
        return self.timing


# ------------------------------------------------------------------------------------------ service
class GraphService:
    """Graphs, encoder and reasoner behind typed async methods.

    Args:
        config: server configuration (limits, data directory, model).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.encoder: TextEncoder | None = None
        self.batcher: EncodeBatcher | None = None
        self.reason_batcher: ReasonBatcher | None = None  # Ask
        self.link_batcher: ReasonBatcher | None = None  # Lookup inference: link prediction
        self.recommend_batcher: ReasonBatcher | None = None  # Lookup inference: recommendations
        # With an update stream (server/stream.py): Ingest publishes there, and this replica applies it
        self.publisher: Any = None  # has `async publish(graph, records, create, key) -> sequence`
        self.consumer: Any = None  # has `applied` and `async wait_for(sequence, timeout) -> bool`
        self.store: GraphStore | None = None
        self.graphs: dict[str, GraphState] = {}
        self.ready = False
        self._watcher: asyncio.Task | None = None
        self._compute = ThreadPoolExecutor(1, thread_name_prefix="graphfuse-compute")
        self._io = ThreadPoolExecutor(1, thread_name_prefix="graphfuse-store")
        self._merger = ThreadPoolExecutor(1, thread_name_prefix="graphfuse-merge")
        self._merges: dict[str, asyncio.Task] = {}  # graph -> its background merge in flight

    # ---------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Open the store, load the model and every stored graph, warm up; then mark ready."""
        started = time.perf_counter()
        self.store = await self._on_io(GraphStore, self.config.data_dir)
        self.encoder = await self.on_compute(
            TextEncoder,
            EncoderConfig(
                model_dir=self.config.model_dir, device=self.config.device, precision=self.config.precision
            ),
        )
        if self.config.demo and not await self._on_io(self.store.has_graph, self.config.default_graph):
            log.info("loading the UMLS demo graph into %s", self.store.path)
            await self._on_io(self._store_demo)
        for meta in await self._on_io(self.store.list_graphs):
            await self._load_graph(meta.name)
        await self.on_compute(self.encoder.encode, ["warm-up question about a graph"])
        await self.on_compute(warm_up_kernels)
        self.batcher = EncodeBatcher(  # model and graph work share one thread: no oversubscription on 2 cores
            self.encoder,
            BatcherConfig(
                max_wait_ms=self.config.batch_wait_ms, max_queued_texts=self.limits.max_queued_texts
            ),
            executor=self._compute,
        )
        await self.batcher.start()
        self.reason_batcher = ReasonBatcher(
            self._compute,
            self._reason,
            "questions",
            max_queued=self.limits.max_queued_texts,
        )
        self.link_batcher, self.recommend_batcher = (  # one pass serves either, each kind queues apart
            ReasonBatcher(
                self._compute, _infer_lookups, what, max_batch=size, max_queued=self.limits.max_queued_texts
            )
            for what, size in (
                ("lookups", self.config.link_batch),
                ("recommendations", self.config.recommend_batch),
            )
        )
        for batcher in self._batchers:
            await batcher.start()
        self._watcher = asyncio.create_task(self._watch_checkpoints())
        self.ready = True
        log.info(
            "ready in %.1f s: model %s on %s, graphs %s",
            time.perf_counter() - started,
            self.encoder.name,
            self.encoder.device,
            ", ".join(f"{n} ({s.graph.num_edges} edges)" for n, s in self.graphs.items()) or "none",
        )

    def _store_demo(self) -> None:
        assert self.store is not None
        self.store.create_graph(self.config.default_graph, "UMLS semantic network (demo, from pykeen)")
        self.store.write(self.config.default_graph, load_umls_demo())

    async def _load_graph(self, name: str) -> None:
        assert self.store is not None and self.encoder is not None
        entities, triples = await self._on_io(self.store.read_graph, name)
        relations = await self._on_io(self.store.read_relations, name)

        def build() -> GraphState:
            assert self.encoder is not None and self.store is not None
            graph = KnowledgeGraph(entities, triples)
            graph.add(relations)  # after the triples, so relations are numbered as before relation records
            state = GraphState(name, graph, self.encoder.dimensions, self.encoder.device)
            state.graph.prepare()
            state.embed_names(self.encoder, self.store)
            for task in TASKS:
                state.use_checkpoint(checkpoint_path(self.config.data_dir, name, task), task)
            return state

        state = await self.on_compute(build)
        self.graphs[name] = state
        log.info("graph %s: %s", name, state.graph)

    async def _watch_checkpoints(self) -> None:
        """Pick up checkpoints written by `graphfuse train` (or removed) without a restart."""
        while True:
            await asyncio.sleep(self.config.checkpoint_poll_seconds)
            for name, state in list(self.graphs.items()):
                for task in TASKS:
                    path = checkpoint_path(self.config.data_dir, name, task)
                    try:
                        await self.on_compute(state.use_checkpoint, path, task)
                    except Exception:  # one bad file must not stop the watching of every other
                        log.exception("graph %s: reading %s failed", name, path)

    async def close(self) -> None:
        self.ready = False
        for task in (self._watcher, *self._merges.values()):
            if task is not None:
                task.cancel()
        if self.batcher is not None:
            await self.batcher.close()
        for batcher in self._batchers:
            await batcher.close()
        if self.store is not None:
            await self._on_io(self.store.close)
        self._compute.shutdown(wait=True)
        self._io.shutdown(wait=True)
        self._merger.shutdown(wait=False, cancel_futures=True)

    async def on_compute(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._compute, fn, *args)

    async def _on_io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    def _reason(self, state: GraphState, questions: list[Question]) -> list[Reasoning]:
        """One batch of questions on the compute thread; on very large graphs, on the capped subgraph around
        their topic entities (gnn/subgraph.py)."""
        reasoner = state.reasoner
        depth = (
            reasoner.model.config.hops
            if isinstance(reasoner, TrainedReasoner)
            else max(q.max_hops for q in questions)
        )
        config = SubgraphConfig(
            max_entities=self.config.reason_subgraph_entities,
            hops=depth,
            min_graph_edges=self.config.reason_subgraph_min_edges,
        )
        return reason_capped(reasoner, state.graph, state.relations, questions, config, state.entity_vectors)

    def _check_ready(self) -> tuple[TextEncoder, GraphStore]:
        if not self.ready or self.encoder is None or self.store is None:
            raise Unavailable("the server is starting (loading the model and graphs); retry shortly")
        return self.encoder, self.store

    @property
    def _batcher(self) -> EncodeBatcher:
        self._check_ready()
        assert self.batcher is not None
        return self.batcher

    @property
    def _reasoner_batcher(self) -> ReasonBatcher:
        self._check_ready()
        assert self.reason_batcher is not None
        return self.reason_batcher

    def _lookup_batcher(self, recommending: bool) -> ReasonBatcher:
        self._check_ready()
        batcher = self.recommend_batcher if recommending else self.link_batcher
        assert batcher is not None
        return batcher

    @property
    def _batchers(self) -> list[ReasonBatcher]:
        """The reasoning batchers that are running."""
        found = (self.reason_batcher, self.link_batcher, self.recommend_batcher)
        return [batcher for batcher in found if batcher is not None]

    def _graph(self, name: str) -> GraphState:
        self._check_ready()
        graph = name or self.config.default_graph
        _check_graph_name(graph)
        authorize(graph)
        state = self.graphs.get(graph)
        if state is None:
            raise NotFound(f"graph {graph!r} not found (known: {', '.join(sorted(self.graphs)) or 'none'})")
        return state

    # --------------------------------------------------------------------------------------- info
    def info(self) -> ServiceInfo:
        encoder, _ = self._check_ready()
        return ServiceInfo(
            encoder.name,
            encoder.dimensions,
            str(encoder.device),
            encoder.precision,
            encoder.max_tokens,
            visible(sorted(self.graphs)),
            self.consumer.applied if self.consumer is not None else 0,
        )

    # -------------------------------------------------------------------------------------- embed
    async def embed(self, texts: Sequence[str], truncate: bool, deadline: float | None = None) -> EmbedResult:
        """Encode ``texts`` batched with other callers' texts; ``deadline`` is a ``time.monotonic()`` time."""
        self._check_ready()
        if not texts:
            raise InvalidArgument("texts is empty; send at least one text")
        if len(texts) > self.limits.max_texts:
            raise InvalidArgument(
                f"texts has {len(texts)} entries, more than the limit of {self.limits.max_texts}"
            )
        for i, text in enumerate(texts):
            self._check_text(text, f"texts[{i}]")
        clock = _Clock()
        encoded = await self._batcher.encode(texts, truncate=truncate, deadline=deadline)
        clock.add("encode_us", clock.start)
        return EmbedResult(encoded.vectors, encoded.tokens, clock.done())

    async def _embed_names(self, texts: list[str]) -> Tensor:
        """Vectors (len(texts), D) of graph names: from the store's cache where it has them, the rest through
        the shared batcher one window at a time (so other callers' texts interleave), then cached."""
        encoder, store = self._check_ready()
        cached = await self._on_io(store.get_embeddings, encoder.name, texts)
        todo = sorted({text for text in texts if text not in cached})
        chunk = self._batcher.max_window_texts
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            encoded = await self._batcher.encode(part, truncate=True)
            cached.update((text, vector.numpy()) for text, vector in zip(part, encoded.vectors, strict=True))
        if todo:
            await self._on_io(store.put_embeddings, encoder.name, {text: cached[text] for text in todo})
        return torch.from_numpy(np.stack([cached[text] for text in texts]))

    async def _on_compute_with_vectors(
        self,
        fn: Callable[[dict[str, Tensor]], T],
        clock: _Clock,
        deadline: float | None,
        truncate: bool = True,
    ) -> T:
        """``fn(vectors)`` on the compute thread. When it raises `_Unembedded`, those texts are encoded
        through the shared batcher and it runs again with their vectors (queue_us and encode_us count)."""
        vectors: dict[str, Tensor] = {}
        while True:
            submitted = time.perf_counter()

            def attempt(submitted: float = submitted) -> T:
                clock.add("queue_us", submitted)
                return fn(vectors)

            try:
                return await self.on_compute(attempt)
            except _Unembedded as missing:
                texts = [text for text in missing.texts if text not in vectors]
                assert texts, "asked again for vectors it was given"
                began = time.perf_counter()
                encoded = await self._batcher.encode(texts, truncate=truncate, deadline=deadline)
                vectors.update(zip(texts, encoded.vectors, strict=True))
                clock.add("encode_us", began)

    def _check_text(self, text: str, what: str) -> None:
        if not text.strip():
            raise InvalidArgument(f"{what} is empty")
        if len(text) > self.limits.max_text_chars:
            raise InvalidArgument(
                f"{what} has {len(text)} characters, more than the limit of {self.limits.max_text_chars}"
            )

    # ------------------------------------------------------------------------------------- graphs
    async def create_graph(self, name: str, description: str = "", replicate: bool = True) -> GraphMeta:
        """Create an empty graph; with an update stream (and ``replicate``), on every replica through it."""
        _, store = self._check_ready()
        _check_graph_name(name)
        authorize(name, write=True)
        if self.publisher is not None and replicate:
            if name in self.graphs:
                raise GraphExistsError(f"graph {name!r} exists")
            sequence = await self.publisher.publish(name, [], True, uuid.uuid4().hex, description)
            await self.wait_for_sequence(sequence, None)
            return await self._on_io(store.get_graph, name)
        meta = await self._on_io(store.create_graph, name, description)
        encoder = self.encoder
        assert encoder is not None
        self.graphs[name] = GraphState(name, KnowledgeGraph(), encoder.dimensions, encoder.device)
        return meta

    async def delete_graph(self, name: str, replicate: bool = True) -> bool:
        """Delete a graph; with an update stream (and ``replicate``), on every replica through it."""
        _, store = self._check_ready()
        _check_graph_name(name)
        authorize(name, write=True)
        if self.publisher is not None and replicate:
            if name not in self.graphs:
                return False
            await self.wait_for_sequence(await self.publisher.delete_graph(name, uuid.uuid4().hex), None)
            return True
        deleted = await self._on_io(store.delete_graph, name)
        self.graphs.pop(name, None)
        return deleted

    async def list_graphs(self) -> list[GraphMeta]:
        _, store = self._check_ready()
        graphs = await self._on_io(store.list_graphs)
        readable = set(visible(g.name for g in graphs))
        return [g for g in graphs if g.name in readable]

    async def graph_info(self, name: str) -> GraphDetails:
        """Stored metadata, relation ids and words, and the models that serve a graph."""
        _, store = self._check_ready()
        _check_graph_name(name)
        authorize(name)
        try:
            meta = await self._on_io(store.get_graph, name)
        except GraphNotFoundError as error:
            raise NotFound(str(error)) from error
        state = self.graphs.get(name)
        if state is None:
            return GraphDetails(meta, [], GraphModels("", "", ""))
        words = [
            RelationWords(record, phrases)
            for record, phrases in await self.on_compute(state.relation_words, MAX_LISTED_RELATIONS)
        ]
        return GraphDetails(
            meta,
            [w.record.id for w in words],
            GraphModels(state.reasoner_name, state.link_predictor_name, state.recommender_name),
            words,
        )

    async def ingest(self, graph: str, records: Sequence[Record], create: bool = False) -> IngestResult:
        """Validate a chunk whole, make it durable, then make it visible; a bad chunk changes nothing."""
        _, store = self._check_ready()
        clock = _Clock()
        _check_graph_name(graph, "chunk graph")
        authorize(graph, write=True)
        if len(records) > self.limits.max_records_per_chunk:
            raise InvalidArgument(
                f"chunk has {len(records)} records, more than the limit of "
                f"{self.limits.max_records_per_chunk}"
            )
        errors = [(i, reason) for i, record in enumerate(records) if (reason := validate_record(record))]
        if errors:
            return IngestResult(False, len(records), errors=errors, timing=clock.done())
        missing = graph not in self.graphs
        if missing and not create:
            raise NotFound(f"graph {graph!r} not found; create it first or set create_graph")
        if not missing:
            errors = await self.retraction_errors(graph, records)
            if errors:
                return IngestResult(False, len(records), errors=errors, timing=clock.done())
        if self.publisher is not None:  # replicated: every replica applies it from the stream
            _check_graph_name(graph, "chunk graph")
            sequence = await self.publisher.publish(graph, records, missing, uuid.uuid4().hex)
            return IngestResult(True, len(records), stream_sequence=sequence, timing=clock.done())
        if missing:
            try:
                await self.create_graph(graph)
            except ValueError:  # created meanwhile by another stream
                pass
        began = time.perf_counter()
        written = await self.write_and_apply(graph, records)
        clock.add("encode_us", began)
        return IngestResult(
            True,
            len(records),
            written.new_triples,
            written.new_entities,
            written.removed_triples,
            timing=clock.done(),
        )

    async def wait_for_sequence(self, sequence: int, deadline: float | None) -> None:
        """Return once this replica has applied update ``sequence`` (read-your-writes), else UNAVAILABLE
        when the deadline (default 5 s) passes first."""
        if not sequence:
            return
        if self.consumer is None:
            raise InvalidArgument("min_sequence needs a server that consumes an update stream (--nats)")
        timeout = 5.0 if deadline is None else max(0.0, deadline - time.monotonic() - 0.05)
        if not await self.consumer.wait_for(sequence, timeout):
            applied = self.consumer.applied
            raise Unavailable(
                f"this replica has applied update sequence {applied}, {sequence - applied} behind the "
                f"requested min_sequence {sequence}; retry, or ask another replica"
            )

    async def retraction_errors(self, graph: str, records: Sequence[Record]) -> list[tuple[int, str]]:
        """``(index, reason)`` of retractions naming a relation or entity the graph lacks."""
        if not any(isinstance(record, Retraction) for record in records):
            return []  # nothing to check: no hop to the compute thread
        return await self.on_compute(_retraction_errors, self.graphs[graph], records)

    async def stream_position(self, stream: str) -> int:
        _, store = self._check_ready()
        return await self._on_io(store.stream_position, stream)

    async def set_stream_position(self, stream: str, sequence: int) -> None:
        _, store = self._check_ready()
        await self._on_io(store.set_stream_position, stream, sequence)

    async def write_and_apply(
        self, graph: str, records: Sequence[Record], position: tuple[str, int] | None = None
    ) -> WriteResult:
        """Make valid records durable (with the stream ``position`` they come from, in the same transaction),
        then visible: graph, linker, and name vectors through the shared batcher."""
        _, store = self._check_ready()
        written: WriteResult = await self._on_io(store.write, graph, records, position)
        state = self.graphs[graph]
        _, names = await self.on_compute(state.apply, records)
        self._merge_when_due(state)
        if names.texts:
            vectors = await self._embed_names(names.texts)
            await self.on_compute(state.set_name_vectors, names, vectors)
        return written

    def _merge_when_due(self, state: GraphState) -> None:
        """Fold the graph's delta into its merged transitions in the background once it has grown: the
        snapshot and the swap take the compute thread briefly, the build runs on the merge thread."""
        if state.name in self._merges or not state.graph.merge_due():
            return
        name = state.name
        task = self._merges[name] = asyncio.create_task(self._merge(state))
        task.add_done_callback(
            lambda done: self._merges.pop(name) if self._merges.get(name) is done else None
        )

    async def _merge(self, state: GraphState) -> None:
        graph = state.graph
        started = time.perf_counter()
        try:
            job = await self.on_compute(graph.start_merge)
            merged = await asyncio.get_running_loop().run_in_executor(self._merger, job.build)
            installed = await self.on_compute(graph.finish_merge, job, merged)
        except Exception:  # the delta stays readable; a later update tries again
            log.exception("graph %s: background merge failed", state.name)
            return
        log.debug(
            "graph %s: merged %d edges in %.2f s (installed: %s, delta now %d)",
            state.name,
            job.heads.numel(),
            time.perf_counter() - started,
            installed,
            graph.delta_size,
        )

    # ------------------------------------------------------------------------------------- reason
    def _check_top_k(self, top_k: int, field_name: str = "top_k") -> int:
        if top_k < 0 or top_k > self.limits.max_top_k:
            raise InvalidArgument(f"{field_name} must be between 0 and {self.limits.max_top_k} (got {top_k})")
        return top_k or self.limits.default_top_k

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
        await self.wait_for_sequence(min_sequence, deadline)
        state = self._graph(graph)
        encoder, _ = self._check_ready()
        self._check_text(question, "question")
        top_k = self._check_top_k(top_k)
        if max_hops < 0 or max_hops > self.limits.max_hops:
            raise InvalidArgument(f"max_hops must be between 0 and {self.limits.max_hops} (got {max_hops})")
        max_hops = max_hops or self.limits.default_hops
        clock = _Clock()
        queued = time.perf_counter()

        def link() -> tuple[list[tuple[list[_Topic], str]], int]:
            clock.add("queue_us", queued)
            tokens = encoder.count_tokens([question])[0]
            if tokens > encoder.max_tokens and not truncate:
                raise InvalidArgument(
                    f"question has {tokens} tokens, more than the model's limit of {encoder.max_tokens}; "
                    "shorten it or ask for truncation"
                )
            return self._readings(state, question, topic_entities), tokens

        readings, tokens = await self.on_compute(link)
        began = time.perf_counter()
        encoded = await self._batcher.encode(
            [text for _, text in readings],
            truncate=True,
            deadline=deadline,
            token_states=state.reasoner.wants_token_states,
        )
        queued = clock.add("encode_us", began)

        if not readings[0][0]:  # nothing linked: by meaning, the whole question against the entity names
            vector = (await self._batcher.encode([question], truncate=True, deadline=deadline)).vectors[0]
            readings = [(await self.on_compute(self._nearest_topic, state, vector), readings[0][1])]
            queued = clock.add("encode_us", queued)
        asked = [
            Question(
                encoded.vectors[i],
                tuple((e.index, e.score) for e in reading_topics),
                top_k,
                max_hops,
                encoded.token_states[i] if encoded.token_states else None,
            )
            for i, (reading_topics, _) in enumerate(readings)
        ]
        reasonings = await asyncio.gather(  # batched with each other and with other callers' questions
            *(self._reasoner_batcher.submit(state, q, deadline) for q in asked)
        )
        best = max(range(len(readings)), key=lambda i: _top_score(reasonings[i]))
        reasoning, topics = reasonings[best], readings[best][0]
        found = reasoning.answers
        if state.link_predictor is not None and topics:
            topic = max(topics, key=lambda t: t.score).index
            found = await self.on_compute(
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
                tuple(_named_evidence(state.graph, e, a.inferred) for e in a.evidence),
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
    def _readings(state: GraphState, question: str, given: Sequence[str]) -> list[tuple[list[_Topic], str]]:
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
                topics += [_Topic(e, 1.0, text, "given") for e, _ in found]
            return [(topics, strip_topics(state.linker, question, (t.index for t in topics), placeholder))]
        mentions = state.linker.find_mentions(question)
        topics = [
            _Topic(e, MATCH_CONFIDENCE[m.method], m.text, m.method) for m in mentions for e in m.entities
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

    def _nearest_topic(self, state: GraphState, vector: Tensor) -> list[_Topic]:
        if state.graph.num_entities == 0:
            return []
        scores, indices = nearest_entities(vector, state.entity_vectors, 1)
        if float(scores[0]) < self.config.link_threshold:
            return []
        return [_Topic(int(indices[0]), float(scores[0]), "", "embedding")]

    async def lookup(
        self,
        graph: str,
        head: str = "",
        relation: str = "",
        tail: str = "",
        top_k: int = 0,
        *,
        exclude_facts: bool = False,
        facts_only: bool = False,
        min_score: float = 0.0,
        evidence: bool = True,
        deadline: float | None = None,
        min_sequence: int = 0,
    ) -> LookupResult:
        """Stored facts matching the given parts, then triples inferred by the graph's link predictor.

        ``top_k`` bounds the facts and the inferred triples separately; ``min_sequence`` as for `ask`.
        """
        await self.wait_for_sequence(min_sequence, deadline)
        state = self._graph(graph)
        self._check_ready()
        if not (head or relation or tail):
            raise InvalidArgument("give at least one of head, relation and tail")
        for value, name in ((head, "head"), (relation, "relation"), (tail, "tail")):
            if value:
                self._check_text(value, name)
        top_k = self._check_top_k(top_k)
        if not 0.0 <= min_score <= 1.0:
            raise InvalidArgument(f"min_score must be between 0 and 1 (got {min_score})")
        if exclude_facts and facts_only:
            raise InvalidArgument("exclude_facts and facts_only together leave nothing to return")
        clock = _Clock()

        def resolve(
            vectors: dict[str, Tensor],
        ) -> tuple[list[LinkedEntity], LinkPattern, list[FactResult], int]:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExpired("the deadline passed while the lookup waited for the compute thread")
            began = time.perf_counter()
            head_text = self._user_id(state, head)
            unmatched = [t for t in (head_text, tail) if t and not self._match_entity(state, t)]
            unmatched += [relation] if relation and self._match_relation(state, relation) is None else []
            if any(text not in vectors for text in unmatched):
                raise _Unembedded(unmatched)
            resolved = []
            ends: dict[str, int | None] = {"head": None, "tail": None}
            for name, text in (("head", head_text), ("tail", tail)):
                if text:
                    topic = self._resolve_entity(state, text, name, vectors)
                    ends[name] = topic.index
                    resolved.append(topic.linked(state.graph))
            rel = self._resolve_relation(state, relation, vectors) if relation else None
            clock.add("encode_us", began)
            graph_ = state.graph
            pattern = LinkPattern(ends["head"], rel, ends["tail"], top_k, min_score, evidence)
            recommending = self._recommending(state, pattern, head)
            edges = graph_.match_edges(ends["head"], rel, ends["tail"])
            heads, rels, tails = graph_.edges
            # a recommendation leaves the user's known items out, unless only they are asked for
            shown = edges[:0] if exclude_facts or (recommending and not facts_only) else edges[:top_k]
            facts = [
                _triple_result(graph_, h, r, t, 1.0, (Evidence((EvidenceHop(h, r, t, False),), 1.0),))
                for h, r, t in zip(
                    heads[shown].tolist(), rels[shown].tolist(), tails[shown].tolist(), strict=True
                )
            ]
            return resolved, pattern, facts, int(edges.numel()), recommending

        resolved, pattern, facts, total_facts, recommending = await self._on_compute_with_vectors(
            resolve, clock, deadline
        )
        began = time.perf_counter()
        predictor = None if facts_only else state.recommender if recommending else state.link_predictor
        inferred: list[FactResult] = []
        if predictor is not None:
            batcher = self._lookup_batcher(recommending)
            found = await batcher.submit(state, pattern, deadline)  # batched with other lookups of its kind
            inferred = [
                _triple_result(state.graph, t.head, t.relation, t.tail, t.score, t.evidence, True)
                for t in found
            ]
        clock.add("reason_us", began)
        graph_ = state.graph
        if predictor is not None:
            region = (graph_.num_entities, graph_.num_edges)  # message passing reads the whole graph
        else:
            region = (len({f.head_id for f in facts} | {f.tail_id for f in facts}), total_facts)
        return LookupResult(
            facts + inferred,
            total_facts,
            resolved,
            graph_.relation_ids[pattern.relation] if pattern.relation is not None else "",
            *region,
            clock.done(),
            predictor.description if predictor is not None else "",
        )

    @staticmethod
    def _user_id(state: GraphState, text: str) -> str:
        """``text``, or the id of the user it numbers when a recommender serves the graph (``1234`` ->
        ``user:1234``, as adjacency files are ingested) and no entity has the id ``text``."""
        recommender = state.recommender
        if recommender is None or not text or text in state.graph.entity_index:
            return text
        typed = f"{recommender.schema.user_type}:{text}"
        return typed if typed in state.graph.entity_index else text

    @staticmethod
    def _recommending(state: GraphState, pattern: LinkPattern, head: str) -> bool:
        """Whether the graph's recommender answers ``pattern``; a head that is no user is refused."""
        recommender = state.recommender
        if recommender is None or not recommender.serves(state.graph, pattern):
            return False
        assert pattern.head is not None
        if not recommender.is_user(state.graph, pattern.head):
            schema = recommender.schema
            found = state.graph.types[pattern.head] or "untyped"
            raise InvalidArgument(
                f"head {head!r} is a {found} entity; relation {schema.relation!r} recommends "
                f"{schema.item_type} entities to {schema.user_type} entities"
            )
        return True

    @staticmethod
    def _match_entity(state: GraphState, text: str) -> _Topic | None:
        """The entity whose id, name or alias ``text`` is (by the linker), without embeddings."""
        found = state.linker.lookup(text)
        if not found:
            return None
        entity, method = found[0]
        return _Topic(entity, MATCH_CONFIDENCE[method], text, method)

    @staticmethod
    def _match_relation(state: GraphState, text: str) -> int | None:
        """The relation whose id, name or alias ``text`` is, exactly or normalised, without embeddings."""
        graph = state.graph
        exact = graph.relation_index.get(text)
        if exact is not None:
            return exact
        wanted = normalize(text)
        found = next(
            (r for r in range(graph.num_relations) if normalize(graph.relation_ids[r]) == wanted), None
        )
        if found is not None:
            return found
        return next(
            (
                r
                for r, record in graph.relation_records.items()
                if wanted in {normalize(word) for word in (record.name or "", *record.aliases)}
            ),
            None,
        )

    def _resolve_entity(
        self, state: GraphState, text: str, field_name: str, vectors: dict[str, Tensor]
    ) -> _Topic:
        """The matched entity, else the nearest by embedding (``vectors[text]``) above the link threshold."""
        matched = self._match_entity(state, text)
        if matched:
            return matched
        if state.graph.num_entities:
            scores, indices = nearest_entities(vectors[text], state.entity_vectors, 1)
            if float(scores[0]) >= self.config.link_threshold:
                return _Topic(int(indices[0]), float(scores[0]), text, "embedding")
        raise NotFound(f"{field_name} {text!r} matches no entity of graph {state.name!r}")

    def _resolve_relation(self, state: GraphState, text: str, vectors: dict[str, Tensor]) -> int:
        """The matched relation, else the nearest by embedding (``vectors[text]``) above the threshold."""
        graph = state.graph
        matched = self._match_relation(state, text)
        if matched is not None:
            return matched
        if graph.num_relations:  # its best head-to-tail phrase (name, aliases, description)
            scores = state.relations.direction_similarity(vectors[text][None])[0, : graph.num_relations]
            best = int(torch.argmax(scores))
            if float(scores[best]) >= self.config.link_threshold:
                return best
        known = ", ".join(sorted(graph.relation_ids)[:20])
        raise NotFound(f"relation {text!r} matches no relation of graph {state.name!r} (some known: {known})")

    async def link(
        self, graph: str, text: str, top_k: int = 0, truncate: bool = False
    ) -> tuple[list[LinkedEntity], Timing]:
        state = self._graph(graph)
        self._check_ready()
        self._check_text(text, "text")
        top_k = self._check_top_k(top_k)
        clock = _Clock()

        def run(vectors: dict[str, Tensor]) -> list[LinkedEntity]:
            candidates: dict[int, _Topic] = {}
            for entity, method in state.linker.lookup(text):
                candidates[entity] = _Topic(entity, MATCH_CONFIDENCE[method], text, method)
            for mention in state.linker.find_mentions(text):
                for entity in mention.entities:
                    score = 0.9 if mention.method == "exact" else 0.85
                    candidates.setdefault(entity, _Topic(entity, score, mention.text, mention.method))
            if state.graph.num_entities and len(candidates) < top_k:
                if text not in vectors:
                    raise _Unembedded([text])
                scores, indices = nearest_entities(vectors[text], state.entity_vectors, top_k)
                for score, entity in zip(scores.tolist(), indices.tolist(), strict=True):
                    candidates.setdefault(entity, _Topic(entity, max(score, 0.0), text, "embedding"))
            ranked = sorted(candidates.values(), key=lambda t: -t.score)[:top_k]
            return [t.linked(state.graph) for t in ranked]

        linked = await self._on_compute_with_vectors(run, clock, None, truncate)
        return linked, clock.done()


def _top_score(reasoning: Reasoning) -> float:
    return reasoning.answers[0].score if reasoning.answers else 0.0


@dataclass(frozen=True)
class _Topic:
    index: int
    score: float
    mention: str
    method: str

    def linked(self, graph: KnowledgeGraph) -> LinkedEntity:
        return LinkedEntity(
            graph.entity_ids[self.index], graph.names[self.index], self.score, self.mention, self.method
        )


def _check_graph_name(name: str, what: str = "graph") -> None:
    if not GRAPH_NAME.match(name):
        raise InvalidArgument(
            f"{what} {name!r} is not a valid graph name (1-64 characters of letters, digits, '_', '.', '-', "
            "starting with a letter or digit)"
        )


def _triple_result(
    graph: KnowledgeGraph,
    h: int,
    r: int,
    t: int,
    score: float,
    evidence: Sequence[Evidence],
    inferred: bool = False,
) -> FactResult:
    return FactResult(
        graph.entity_ids[h],
        graph.names[h],
        graph.relation_ids[r],
        graph.entity_ids[t],
        graph.names[t],
        score,
        inferred,
        tuple(_named_evidence(graph, e) for e in evidence),
    )


def _infer_lookups(state: GraphState, patterns: list[LinkPattern]) -> list[list[InferredTriple]]:
    """Every lookup of one batch: recommendations scored in one pass; link predictions scored in one pass
    and explained in one forward-backward pass. A model removed while the lookups waited infers nothing."""
    graph, recommender, predictor = state.graph, state.recommender, state.link_predictor
    found: list[list[InferredTriple]] = [[] for _ in patterns]
    asks = [recommender is not None and recommender.serves(graph, p) for p in patterns]
    if recommender is not None and any(asks):
        recommended = recommender.recommend_many(
            graph, [p for p, a in zip(patterns, asks, strict=True) if a], state.entity_vectors
        )
        for i in [i for i, a in enumerate(asks) if a]:
            found[i] = recommended.pop(0)
    if predictor is not None and not all(asks):
        linked = infer_many(
            predictor, graph, [p for p, a in zip(patterns, asks, strict=True) if not a], EXPLAIN_PATHS
        )
        for i in [i for i, a in enumerate(asks) if not a]:
            found[i] = linked.pop(0)
    return found


def _named_evidence(graph: KnowledgeGraph, evidence: Evidence, inferred: bool = False) -> NamedEvidence:
    hops = tuple(
        NamedHop(
            graph.entity_ids[h.head],
            graph.names[h.head],
            graph.relation_ids[h.relation],
            graph.entity_ids[h.tail],
            graph.names[h.tail],
            h.reversed,
            h.weight,
        )
        for h in evidence.hops
    )
    return NamedEvidence(hops, evidence.weight, inferred, evidence.pattern)
