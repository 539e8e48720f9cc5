"""The graph registry: the store, the model and the served graphs; their lifecycle, ingest and merges, Embed
and Info, and what the Ask and Lookup handlers share (validation, the compute thread, the encode batcher).

Model and graph work runs on one compute thread (the event loop stays free for I/O); durable writes run on
one store thread. Every graph is read and mutated on the compute thread only, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from graphfuse.encoder import BatcherConfig, EncodeBatcher, EncoderConfig, TextEncoder
from graphfuse.gnn.data.graph import KnowledgeGraph, warm_up_kernels
from graphfuse.gnn.data.records import (
    EntityRecord,
    Record,
    RelationRecord,
    Retraction,
    TripleColumns,
    TripleRecord,
    validate_columns,
    validate_record,
)
from graphfuse.gnn.data.relation_text import RelationPhrases
from graphfuse.gnn.formats.datasets import load_umls_demo
from graphfuse.server.core.compute import ComputeThread, StandingQueue
from graphfuse.server.core.config import ServerConfig
from graphfuse.server.core.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from graphfuse.server.core.heap import trim_heap
from graphfuse.server.core.permissions import authorize, visible
from graphfuse.server.core.state import GraphState, NamesToEmbed
from graphfuse.server.storage.checkpoints import TASKS, checkpoint_path
from graphfuse.server.storage.store import (
    GraphExistsError,
    GraphMeta,
    GraphNotFoundError,
    GraphStore,
    WriteResult,
)

log = logging.getLogger(__name__)
HEAP_TRIM_SECONDS = 30.0
T = TypeVar("T")
GRAPH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_LISTED_RELATIONS = 1000  # relations GetGraphInfo names (and describes), the first by id
NAMES_PER_CHUNK = 512  # entity names taken off a graph's queue at a time by the background embedder
# names per encoder pass in the background, each started once no caller's work waits: a caller arriving
# meanwhile waits behind one such pass at most (~15 ms)
BACKGROUND_PIECE = 16
GROUP_COMMIT_RECORDS = 250_000  # records of consecutive chunks of a stream stored in one transaction at most
NAMES_WAIT_S = 60.0  # the longest an Ingest waits for its names' vectors when the call has no deadline
NAME_VECTOR_DTYPES = {"fp16": torch.float16, "fp32": torch.float32}  # ServerConfig.name_vectors


# ------------------------------------------------------------------------------------------ results
@dataclass
class Timing:
    queue_us: int = 0
    encode_us: int = 0
    reason_us: int = 0
    total_us: int = 0


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
    names_pending: int = 0  # entity names of the graph still waiting for vectors
    errors: list[tuple[int, str]] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)


@dataclass(frozen=True)
class IngestChunk:
    """One chunk of an ingest stream: records, then ``triples``, for ``graph``."""

    graph: str
    records: Sequence[Record]
    triples: TripleColumns | None = None
    create: bool = False  # create the graph when it is missing
    wait_for_names: bool = False


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
    names_embedded: int = 0  # entities whose names have vectors (linking by meaning reaches them)
    names_total: int = 0  # entities whose names an encoder reads


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


class Unembedded(Exception):
    """Raised on the compute thread by work that needs vectors of `texts` it was not given."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__(texts)
        self.texts = texts


class Clock:
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


# ----------------------------------------------------------------------------------------- registry
class GraphRegistry:
    """The store, the encoder and the served graphs behind typed async methods, and the threads they run on.

    Args:
        config: server configuration (limits, data directory, model).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.encoder: TextEncoder | None = None
        self.batcher: EncodeBatcher | None = None
        # With an update stream (replication/stream.py): Ingest publishes there, and this replica applies it
        self.publisher: Any = None  # has `async publish(graph, records, create, key) -> sequence`
        self.consumer: Any = None  # has `applied` and `async wait_for(sequence, timeout) -> bool`
        self.store: GraphStore | None = None
        self.graphs: dict[str, GraphState] = {}
        self.ready = False  # set by the service once its handlers run too
        self.compute = ComputeThread()
        self.queues: list[Any] = [self.compute]  # where calls' work waits: each has queue_delay()
        self.standing_queue = StandingQueue(
            self.limits.max_queue_ms / 1000, self.limits.max_queue_interval_ms / 1000
        )
        self._watcher: asyncio.Task | None = None
        self._trimmer: asyncio.Task | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="graphfuse-store")
        self._merger = ThreadPoolExecutor(1, thread_name_prefix="graphfuse-merge")
        self._merges: dict[str, asyncio.Task] = {}  # graph -> its background merge in flight
        self._names_queued = asyncio.Event()  # set when a graph has entity names waiting for vectors
        self._names_progress = asyncio.Condition()  # notified after each chunk of names embedded
        self._name_embedder: asyncio.Task | None = None

    @property
    def vector_dtype(self) -> torch.dtype:
        """How entity name vectors are held (``ServerConfig.name_vectors``)."""
        return NAME_VECTOR_DTYPES[self.config.name_vectors]

    # ---------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Open the store, load the model and every stored graph, warm up, start the shared encode batcher
        and the checkpoint watcher."""
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
        await self.on_compute(trim_heap)  # loading peaks at several times the graphs' size
        await self.on_compute(self.encoder.encode, ["warm-up question about a graph"])
        await self.on_compute(warm_up_kernels)
        self.batcher = EncodeBatcher(  # model and graph work share one thread: no oversubscription on 2 cores
            self.encoder,
            BatcherConfig(
                max_wait_ms=self.config.batch_wait_ms, max_queued_texts=self.limits.max_queued_texts
            ),
            executor=self.compute,
        )
        await self.batcher.start()
        self.queues.append(self.batcher)
        self._watcher = asyncio.create_task(self._watch_checkpoints())
        self._trimmer = asyncio.create_task(self._trim_heap_when_idle())
        self._name_embedder = asyncio.create_task(self._embed_queued_names())

    def _store_demo(self) -> None:
        assert self.store is not None
        self.store.create_graph(self.config.default_graph, "UMLS semantic network (demo, from pykeen)")
        self.store.write(self.config.default_graph, load_umls_demo())

    async def _load_graph(self, name: str) -> None:
        assert self.store is not None and self.encoder is not None
        stored = await self._on_io(self.store.read_columns, name)
        relations = await self._on_io(self.store.read_relations, name)
        layouts = await self._on_io(self.store.read_layouts, stored.stamp)

        def build() -> GraphState:
            assert self.encoder is not None and self.store is not None
            graph = KnowledgeGraph.from_tensors(
                stored.entity_ids,
                stored.relation_ids,
                torch.from_numpy(stored.heads),
                torch.from_numpy(stored.rels),
                torch.from_numpy(stored.tails),
                names=stored.names,
                types=stored.types,
                aliases=stored.aliases,
                distinct=True,  # the store's unique index
            )
            graph.add(relations)  # after the triples, so relations are numbered as before relation records
            state = GraphState(name, graph, self.encoder.dimensions, self.encoder.device, self.vector_dtype)
            read = layouts is not None
            try:
                graph.prepare(layouts)
            except ValueError as error:  # kept for another version of the graph: build them again
                log.warning("graph %s: not using its kept layouts: %s", name, error)
                read = False
                graph.prepare()
            state.embed_relations(self.encoder, self.store)
            if not read:
                kept.update(graph.built_layouts())  # with the index by relation that phrasing built
            state.queue_names()  # embedded in the background, the store's cached vectors first
            for task in TASKS:
                state.use_checkpoint(checkpoint_path(self.config.data_dir, name, task), task)
            return state

        kept: dict[str, np.ndarray] = {}
        state = await self.on_compute(build)
        if kept:
            await self._on_io(self.store.keep_layouts, stored.stamp, kept)
        self.graphs[name] = state
        self._names_queued.set()
        log.info("graph %s: %s (%d names to embed)", name, state.graph, state.names_pending)

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

    async def _trim_heap_when_idle(self) -> None:
        """Every HEAP_TRIM_SECONDS, when no call's work waits, hand the heap pages that calls' temporaries
        freed back to the operating system (a query over a large graph allocates per-entity buffers)."""
        while True:
            await asyncio.sleep(HEAP_TRIM_SECONDS)
            if self.queue_delay() == 0.0:
                await self.on_compute(trim_heap)

    async def close(self) -> None:
        self.ready = False
        tasks = [self._watcher, self._trimmer, self._name_embedder, *self._merges.values()]
        tasks = [t for t in tasks if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.batcher is not None:
            await self.batcher.close()
        if self.store is not None:
            await self._on_io(self.store.close)
        self.compute.shutdown(wait=True)
        self._io.shutdown(wait=True)
        self._merger.shutdown(wait=False, cancel_futures=True)

    async def on_compute(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.compute, fn, *args)

    async def _on_io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # --------------------------------------------------------------------------- shared by handlers
    def check_ready(self) -> tuple[TextEncoder, GraphStore]:
        if not self.ready or self.encoder is None or self.store is None:
            raise Unavailable("the server is starting (loading the model and graphs); retry shortly")
        return self.encoder, self.store

    @property
    def shared_batcher(self) -> EncodeBatcher:
        """The encode batcher every caller's texts share."""
        self.check_ready()
        assert self.batcher is not None
        return self.batcher

    def graph(self, name: str) -> GraphState:
        """The served graph ``name`` (the default graph when empty), if the caller may read it."""
        self.check_ready()
        graph = name or self.config.default_graph
        _check_graph_name(graph)
        authorize(graph)
        state = self.graphs.get(graph)
        if state is None:
            raise NotFound(f"graph {graph!r} not found (known: {', '.join(sorted(self.graphs)) or 'none'})")
        return state

    def check_text(self, text: str, what: str) -> None:
        if not text.strip():
            raise InvalidArgument(f"{what} is empty")
        if len(text) > self.limits.max_text_chars:
            raise InvalidArgument(
                f"{what} has {len(text)} characters, more than the limit of {self.limits.max_text_chars}"
            )

    @property
    def queue_bound(self) -> float | None:
        """How long a call's work may wait in any queue: ``max_queue_ms`` in seconds while the queues hold a
        standing queue (:class:`StandingQueue`), else None (a burst waits its turn)."""
        return self.standing_queue.bound if self.standing_queue.shedding else None

    def queue_delay(self) -> float:
        """Seconds the oldest work queued for the compute thread, the encoder or a reasoner has waited."""
        return max(queue.queue_delay() for queue in self.queues)

    def check_queue_delay(self, what: str) -> None:
        """Refuse a call at once while the oldest queued work (:meth:`queue_delay`) has waited longer than
        ``max_queue_ms``: under overload the admitted calls keep their latency, the rest are told to retry."""
        waited = self.queue_delay()
        if self.standing_queue.look(waited):
            raise ResourceExhausted(
                f"{what} refused: queued work has waited {waited * 1000:.0f} ms, more than max_queue_ms "
                f"({self.limits.max_queue_ms} ms); retry later"
            )

    def check_top_k(self, top_k: int, field_name: str = "top_k") -> int:
        if top_k < 0 or top_k > self.limits.max_top_k:
            raise InvalidArgument(f"{field_name} must be between 0 and {self.limits.max_top_k} (got {top_k})")
        return top_k or self.limits.default_top_k

    async def on_compute_with_vectors(
        self,
        fn: Callable[[dict[str, Tensor]], T],
        clock: Clock,
        deadline: float | None,
        truncate: bool = True,
    ) -> T:
        """``fn(vectors)`` on the compute thread. When it raises `Unembedded`, those texts are encoded
        through the shared batcher and it runs again with their vectors (queue_us and encode_us count)."""
        vectors: dict[str, Tensor] = {}
        while True:
            submitted = time.perf_counter()

            def attempt(submitted: float = submitted) -> T:
                clock.add("queue_us", submitted)
                return fn(vectors)

            try:
                return await self.on_compute(attempt)
            except Unembedded as missing:
                texts = [text for text in missing.texts if text not in vectors]
                assert texts, "asked again for vectors it was given"
                began = time.perf_counter()
                encoded = await self.shared_batcher.encode(
                    texts, truncate=truncate, deadline=deadline, max_queue_delay=self.queue_bound
                )
                vectors.update(zip(texts, encoded.vectors, strict=True))
                clock.add("encode_us", began)

    # --------------------------------------------------------------------------------------- info
    def info(self) -> ServiceInfo:
        encoder, _ = self.check_ready()
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
        self.check_ready()
        if not texts:
            raise InvalidArgument("texts is empty; send at least one text")
        if len(texts) > self.limits.max_texts:
            raise InvalidArgument(
                f"texts has {len(texts)} entries, more than the limit of {self.limits.max_texts}"
            )
        for i, text in enumerate(texts):
            self.check_text(text, f"texts[{i}]")
        self.check_queue_delay("embed")
        clock = Clock()
        encoded = await self.shared_batcher.encode(
            texts, truncate=truncate, deadline=deadline, max_queue_delay=self.queue_bound
        )
        clock.add("encode_us", clock.start)
        return EmbedResult(encoded.vectors, encoded.tokens, clock.done())

    async def _embed_names(self, texts: list[str], piece: int = 0) -> Tensor:
        """Vectors (len(texts), D) of graph names: from the store's cache where it has them, the rest through
        the shared batcher ``piece`` texts at a time (a whole window when 0), so that other callers' texts
        interleave, then cached."""
        encoder, store, batcher = self.encoder, self.store, self.batcher
        assert encoder is not None and store is not None and batcher is not None
        cached = await self._on_io(store.get_embeddings, encoder.name, texts)
        todo = sorted({text for text in texts if text not in cached})
        chunk = piece or batcher.max_window_texts
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            if piece:
                await self._yield_to_callers()
            encoded = await batcher.encode(part, truncate=True)
            cached.update((text, vector.numpy()) for text, vector in zip(part, encoded.vectors, strict=True))
        if todo:
            await self._on_io(store.put_embeddings, encoder.name, {text: cached[text] for text in todo})
        return torch.from_numpy(np.stack([cached[text] for text in texts]))

    async def _yield_to_callers(self, patience: float = 0.1) -> None:
        """Wait, up to ``patience`` seconds, until no call's work is queued anywhere: background work goes
        after callers' (and still moves on under sustained load)."""
        until = time.monotonic() + patience
        while self.queue_delay() and time.monotonic() < until:
            await asyncio.sleep(0.005)

    async def _embed_queued_names(self) -> None:
        """Embed the graphs' queued entity names, a chunk at a time through the shared batcher (so callers'
        texts interleave with them), until none are left; then wait for more."""
        while True:
            await self._names_queued.wait()
            self._names_queued.clear()
            for state in list(self.graphs.values()):
                while self.graphs.get(state.name) is state:
                    names = await self.on_compute(state.next_names, NAMES_PER_CHUNK)
                    if not names.entities:
                        break
                    vectors = await self._embed_or_requeue(state, names, state.requeue, BACKGROUND_PIECE)
                    if vectors is None:
                        break
                    await self.on_compute(state.set_queued_vectors, names, vectors)
                    async with self._names_progress:
                        self._names_progress.notify_all()
                if self.graphs.get(state.name) is state and state.phrases_outgrown:
                    wait = state.outgrown_wait(time.monotonic())
                    if wait:
                        asyncio.get_running_loop().call_later(wait, self._names_queued.set)
                    else:
                        await self._phrase_outgrown_relations(state)
            async with self._names_progress:
                self._names_progress.notify_all()

    async def finish_ingest(self, graph: str) -> None:
        """End of an ingest stream: phrase again the relations its chunks left to the background, so that
        questions asked once the load has returned match phrases of what it loaded."""
        state = self.graphs.get(graph)
        if state is not None and state.phrases_outgrown:
            await self._phrase_outgrown_relations(state, piece=0)

    async def _phrase_outgrown_relations(self, state: GraphState, piece: int = BACKGROUND_PIECE) -> None:
        """Embed the phrases of relations that grew since they were phrased (a chunk does not wait for
        them: until then the reasoner matches their earlier phrases)."""
        names = await self.on_compute(state.outgrown_phrases)
        if not names.texts:
            return
        vectors = await self._embed_or_requeue(state, names, state.requeue_phrases, piece)
        if vectors is not None:
            await self.on_compute(state.set_name_vectors, names, vectors)

    async def _embed_or_requeue(
        self, state: GraphState, names: NamesToEmbed, requeue: Callable[[NamesToEmbed], None], piece: int
    ) -> Tensor | None:
        """The vectors of background ``names``; None when embedding failed, after handing them to ``requeue``
        (the next update or a later pass retries them)."""
        try:
            return await self._embed_names(names.texts, piece)
        except asyncio.CancelledError:
            raise
        except Exception:
            await self.on_compute(requeue, names)
            log.exception("graph %s: embedding %d names or phrases failed", state.name, len(names.texts))
            return None

    async def wait_for_names(self, graph: str, timeout: float) -> bool:
        """Whether every queued entity name of ``graph`` has its vector within ``timeout`` seconds."""
        state = self.graph(graph)

        async def drained() -> None:
            async with self._names_progress:
                await self._names_progress.wait_for(lambda: not state.names_pending)

        try:
            await asyncio.wait_for(drained(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------------------------- graphs
    async def create_graph(self, name: str, description: str = "", replicate: bool = True) -> GraphMeta:
        """Create an empty graph; with an update stream (and ``replicate``), on every replica through it."""
        _, store = self.check_ready()
        _check_graph_name(name)
        authorize(name, write=True)
        if self.publisher is not None and replicate:
            if name in self.graphs:
                raise GraphExistsError(f"graph {name!r} exists")
            sequence = await self.publisher.publish(name, [], True, uuid.uuid4().hex, description)
            await self.wait_for_sequence(sequence, None, name)
            return await self._on_io(store.get_graph, name)
        meta = await self._on_io(store.create_graph, name, description)
        encoder = self.encoder
        assert encoder is not None
        self.graphs[name] = GraphState(
            name, KnowledgeGraph(), encoder.dimensions, encoder.device, self.vector_dtype
        )
        return meta

    async def delete_graph(self, name: str, replicate: bool = True) -> bool:
        """Delete a graph; with an update stream (and ``replicate``), on every replica through it."""
        _, store = self.check_ready()
        _check_graph_name(name)
        authorize(name, write=True)
        if self.publisher is not None and replicate:
            if name not in self.graphs:
                return False
            sequence = await self.publisher.delete_graph(name, uuid.uuid4().hex)
            await self.wait_for_sequence(sequence, None, name)
            return True
        deleted = await self._on_io(store.delete_graph, name)
        self.graphs.pop(name, None)
        return deleted

    async def list_graphs(self) -> list[GraphMeta]:
        _, store = self.check_ready()
        graphs = await self._on_io(store.list_graphs)
        readable = set(visible(g.name for g in graphs))
        return [g for g in graphs if g.name in readable]

    async def graph_info(self, name: str) -> GraphDetails:
        """Stored metadata, relation ids and words, and the models that serve a graph."""
        _, store = self.check_ready()
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
            *state.name_progress(),
        )

    async def ingest(
        self,
        graph: str,
        records: Sequence[Record],
        create: bool = False,
        wait_for_names: bool = False,
        deadline: float | None = None,
        triples: TripleColumns | None = None,
    ) -> IngestResult:
        """Validate a chunk whole (its records, then ``triples``, numbered after them), make it durable, then
        make it visible; a bad chunk changes nothing.

        New names are embedded in the background; with ``wait_for_names`` the call returns once the graph
        has none left to embed, or at the ``deadline`` (``time.monotonic()``; 60 s without one)."""
        chunk = IngestChunk(graph, records, triples, create, wait_for_names)
        return [result async for result in self.ingest_chunks([chunk], deadline)][0]

    async def ingest_chunks(
        self, chunks: Sequence[IngestChunk], deadline: float | None = None
    ) -> AsyncIterator[IngestResult]:
        """The results of chunks received together on one stream, in their order, each chunk answered as
        :meth:`ingest` answers it. Consecutive valid chunks that only add to the same graph are stored in one
        transaction (up to ``GROUP_COMMIT_RECORDS`` records), then applied one by one: a group commit."""
        self.check_ready()
        group: list[tuple[IngestChunk, int, Clock]] = []
        in_group = 0
        for chunk in chunks:
            clock = Clock()
            size, errors = self._chunk_errors(chunk)
            missing = chunk.graph not in self.graphs
            alone = (
                bool(errors)
                or self.publisher is not None
                or (missing and not chunk.create)
                or any(isinstance(record, Retraction) for record in chunk.records)
            )
            if group and (
                alone
                or (chunk.graph, chunk.wait_for_names) != (group[0][0].graph, group[0][0].wait_for_names)
                or in_group + size > GROUP_COMMIT_RECORDS
            ):
                for result in await self._write_group(group, deadline):
                    yield result
                group, in_group = [], 0
            if errors:
                yield IngestResult(False, size, errors=errors, timing=clock.done())
            elif alone:
                yield await self._ingest_alone(chunk, size, clock, deadline)
            else:
                if missing:
                    await self._create_for_ingest(chunk.graph)
                group.append((chunk, size, clock))
                in_group += size
        if group:
            for result in await self._write_group(group, deadline):
                yield result

    def _chunk_errors(self, chunk: IngestChunk) -> tuple[int, list[tuple[int, str]]]:
        """A chunk's size and its invalid records; raises when the call itself is refused."""
        _check_graph_name(chunk.graph, "chunk graph")
        authorize(chunk.graph, write=True)
        size = len(chunk.records) + (len(chunk.triples) if chunk.triples is not None else 0)
        if size > self.limits.max_records_per_chunk:
            raise InvalidArgument(
                f"chunk has {size} records, more than the limit of {self.limits.max_records_per_chunk}"
            )
        records = chunk.records
        errors = [(i, reason) for i, record in enumerate(records) if (reason := validate_record(record))]
        if chunk.triples is not None:
            errors += [(len(records) + j, reason) for j, reason in validate_columns(chunk.triples)]
        return size, errors

    async def _create_for_ingest(self, graph: str) -> None:
        try:
            await self.create_graph(graph)
        except ValueError:  # created meanwhile by another stream
            pass

    async def _ingest_alone(
        self, chunk: IngestChunk, size: int, clock: Clock, deadline: float | None
    ) -> IngestResult:
        """A valid chunk that is not stored with others: it retracts, it goes to the update stream, or its
        graph is missing."""
        graph, records = chunk.graph, chunk.records
        missing = graph not in self.graphs
        if missing and not chunk.create:
            raise NotFound(f"graph {graph!r} not found; create it first or set create_graph")
        if not missing:
            errors = await self.retraction_errors(graph, records)
            if errors:
                return IngestResult(False, len(records), errors=errors, timing=clock.done())
        if self.publisher is not None:  # replicated: every replica applies it from the stream
            if chunk.triples is not None:
                records = [*records, *chunk.triples.records()]
            sequence = await self.publisher.publish(graph, records, missing, uuid.uuid4().hex)
            return IngestResult(True, size, stream_sequence=sequence, timing=clock.done())
        if missing:
            await self._create_for_ingest(graph)
        return (await self._write_group([(chunk, size, clock)], deadline))[0]

    async def _write_group(
        self, group: Sequence[tuple[IngestChunk, int, Clock]], deadline: float | None
    ) -> list[IngestResult]:
        graph, wait_for_names = group[0][0].graph, group[0][0].wait_for_names
        began = time.perf_counter()
        written = await self.write_and_apply_chunks(graph, [(c.records, c.triples) for c, _, _ in group])
        if wait_for_names:
            timeout = NAMES_WAIT_S if deadline is None else deadline - time.monotonic()
            await self.wait_for_names(graph, max(timeout, 0.0))
        pending = self.graphs[graph].names_pending
        results = []
        for (_, size, clock), result in zip(group, written, strict=True):
            clock.add("encode_us", began)
            results.append(
                IngestResult(
                    True,
                    size,
                    result.new_triples,
                    result.new_entities,
                    result.removed_triples,
                    names_pending=pending,
                    timing=clock.done(),
                )
            )
        return results

    async def wait_for_sequence(self, sequence: int, deadline: float | None, graph: str) -> None:
        """Return once this replica has applied ``graph``'s update ``sequence`` (read-your-writes: a JetStream
        sequence, or a position in the graph's Kafka partition), else UNAVAILABLE when the deadline (default
        5 s) passes first."""
        if not sequence:
            return
        graph = graph or self.config.default_graph
        if self.consumer is None:
            raise InvalidArgument("min_sequence needs a server applying an update stream (--nats, --kafka)")
        timeout = 5.0 if deadline is None else max(0.0, deadline - time.monotonic() - 0.05)
        if not await self.consumer.wait_for(sequence, timeout, graph):
            applied = self.consumer.position(graph)
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
        _, store = self.check_ready()
        return await self._on_io(store.stream_position, stream)

    async def set_stream_position(self, stream: str, sequence: int) -> None:
        _, store = self.check_ready()
        await self._on_io(store.set_stream_position, stream, sequence)

    async def write_and_apply(
        self,
        graph: str,
        records: Sequence[Record],
        position: tuple[str, int] | None = None,
        triples: TripleColumns | None = None,
    ) -> WriteResult:
        """Make valid records, then ``triples``, durable (with the stream ``position`` they come from, in the
        same transaction), then visible: graph, linker, and name vectors through the shared batcher."""
        return (await self.write_and_apply_chunks(graph, [(records, triples)], position))[0]

    async def write_and_apply_chunks(
        self,
        graph: str,
        chunks: Sequence[tuple[Sequence[Record], TripleColumns | None]],
        position: tuple[str, int] | None = None,
    ) -> list[WriteResult]:
        """:meth:`write_and_apply` for several chunks: durable together in one transaction, then visible one
        after another."""
        _, store = self.check_ready()
        written: list[WriteResult] = await self._on_io(store.write_chunks, graph, chunks, position)
        state = self.graphs[graph]
        for records, triples in chunks:
            _, names = await self.on_compute(state.apply, records, triples)
            self._merge_when_due(state)
            if names.texts:  # relation phrases: Ask matches questions against them
                vectors = await self._embed_names(names.texts)
                await self.on_compute(state.set_name_vectors, names, vectors)
        if state.names_pending or state.phrases_outgrown:
            self._names_queued.set()
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
            await self.on_compute(trim_heap)  # the merge's temporaries and the old matrices
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


def _check_graph_name(name: str, what: str = "graph") -> None:
    if not GRAPH_NAME.match(name):
        raise InvalidArgument(
            f"{what} {name!r} is not a valid graph name (1-64 characters of letters, digits, '_', '.', '-', "
            "starting with a letter or digit)"
        )
