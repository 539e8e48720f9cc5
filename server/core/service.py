"""The service core's entry point: typed requests in, typed results out, no transport.

`GraphService` joins the graph registry (registry.py: the store, the model and the graphs; lifecycle, ingest,
merges, Embed and Info) with the Ask handler (ask.py) and the Lookup and Link handlers (lookup.py), which read
the graphs through the registry; the results they return are importable from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from graphfuse.encoder import EncodeBatcher, TextEncoder
from graphfuse.gnn.data.records import Record
from graphfuse.server.core.ask import AnswerResult, AskHandler, AskResult
from graphfuse.server.core.config import Limits, ServerConfig
from graphfuse.server.core.lookup import FactResult, LookupHandler, LookupResult
from graphfuse.server.core.named import LinkedEntity, NamedEvidence, NamedHop
from graphfuse.server.core.reason_batcher import ReasonBatcher
from graphfuse.server.core.registry import (
    EmbedResult,
    GraphDetails,
    GraphModels,
    GraphRegistry,
    IngestResult,
    RelationWords,
    ServiceInfo,
    Timing,
)
from graphfuse.server.core.state import GraphState
from graphfuse.server.storage.store import GraphMeta, GraphStore, WriteResult

__all__ = [
    "AnswerResult",
    "AskResult",
    "EmbedResult",
    "FactResult",
    "GraphDetails",
    "GraphModels",
    "GraphService",
    "IngestResult",
    "LinkedEntity",
    "LookupResult",
    "NamedEvidence",
    "NamedHop",
    "RelationWords",
    "ServiceInfo",
    "Timing",
]

log = logging.getLogger(__name__)


class GraphService:
    """Graphs, encoder and reasoner behind typed async methods: the registry's and its handlers'.

    Args:
        config: server configuration (limits, data directory, model).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.registry = GraphRegistry(config)
        self.asks = AskHandler(self.registry)
        self.lookups = LookupHandler(self.registry)

    async def start(self) -> None:
        """Start the registry (store, model, every stored graph, warm-up), then the handlers' batchers; then
        mark ready."""
        started = time.perf_counter()
        await self.registry.start()
        await self.asks.start()
        await self.lookups.start()
        self.registry.ready = True
        encoder, _ = self.registry.check_ready()
        log.info(
            "ready in %.1f s: model %s on %s, graphs %s",
            time.perf_counter() - started,
            encoder.name,
            encoder.device,
            ", ".join(f"{n} ({s.graph.num_edges} edges)" for n, s in self.graphs.items()) or "none",
        )

    async def close(self) -> None:
        """Refuse new calls, stop the handlers' batchers, then close the registry (tasks, store, threads)."""
        self.registry.ready = False
        await self.asks.close()
        await self.lookups.close()
        await self.registry.close()

    # ---------------------------------------------------------------------------------- handlers
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
        """See `AskHandler.ask`."""
        return await self.asks.ask(
            graph, question, topic_entities, top_k, max_hops, truncate, deadline, min_sequence
        )

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
        """See `LookupHandler.lookup`."""
        return await self.lookups.lookup(
            graph,
            head,
            relation,
            tail,
            top_k,
            exclude_facts=exclude_facts,
            facts_only=facts_only,
            min_score=min_score,
            evidence=evidence,
            deadline=deadline,
            min_sequence=min_sequence,
        )

    async def link(
        self, graph: str, text: str, top_k: int = 0, truncate: bool = False
    ) -> tuple[list[LinkedEntity], Timing]:
        """See `LookupHandler.link`."""
        return await self.lookups.link(graph, text, top_k, truncate)

    # ---------------------------------------------------------------------------------- registry
    def info(self) -> ServiceInfo:
        return self.registry.info()

    async def embed(self, texts: Sequence[str], truncate: bool, deadline: float | None = None) -> EmbedResult:
        """See `GraphRegistry.embed`."""
        return await self.registry.embed(texts, truncate, deadline)

    async def create_graph(self, name: str, description: str = "", replicate: bool = True) -> GraphMeta:
        """See `GraphRegistry.create_graph`."""
        return await self.registry.create_graph(name, description, replicate)

    async def delete_graph(self, name: str, replicate: bool = True) -> bool:
        """See `GraphRegistry.delete_graph`."""
        return await self.registry.delete_graph(name, replicate)

    async def list_graphs(self) -> list[GraphMeta]:
        return await self.registry.list_graphs()

    async def graph_info(self, name: str) -> GraphDetails:
        """See `GraphRegistry.graph_info`."""
        return await self.registry.graph_info(name)

    async def ingest(self, graph: str, records: Sequence[Record], create: bool = False) -> IngestResult:
        """See `GraphRegistry.ingest`."""
        return await self.registry.ingest(graph, records, create)

    async def wait_for_sequence(self, sequence: int, deadline: float | None) -> None:
        """See `GraphRegistry.wait_for_sequence`."""
        await self.registry.wait_for_sequence(sequence, deadline)

    async def retraction_errors(self, graph: str, records: Sequence[Record]) -> list[tuple[int, str]]:
        """See `GraphRegistry.retraction_errors`."""
        return await self.registry.retraction_errors(graph, records)

    async def stream_position(self, stream: str) -> int:
        return await self.registry.stream_position(stream)

    async def set_stream_position(self, stream: str, sequence: int) -> None:
        await self.registry.set_stream_position(stream, sequence)

    async def write_and_apply(
        self, graph: str, records: Sequence[Record], position: tuple[str, int] | None = None
    ) -> WriteResult:
        """See `GraphRegistry.write_and_apply`."""
        return await self.registry.write_and_apply(graph, records, position)

    async def on_compute(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the compute thread, where every graph is read and mutated."""
        return await self.registry.on_compute(fn, *args)

    # -------------------------------------------------------------------------------- attributes
    @property
    def config(self) -> ServerConfig:
        return self.registry.config

    @property
    def limits(self) -> Limits:
        return self.registry.limits

    @property
    def store(self) -> GraphStore | None:
        return self.registry.store

    @property
    def graphs(self) -> dict[str, GraphState]:
        return self.registry.graphs

    @property
    def encoder(self) -> TextEncoder | None:
        return self.registry.encoder

    @property
    def batcher(self) -> EncodeBatcher | None:
        """The encode batcher every caller shares."""
        return self.registry.batcher

    @property
    def ready(self) -> bool:
        return self.registry.ready

    @property
    def publisher(self) -> Any:
        """With an update stream: where Ingest publishes (`async publish(graph, records, create, key)`)."""
        return self.registry.publisher

    @publisher.setter
    def publisher(self, publisher: Any) -> None:
        self.registry.publisher = publisher

    @property
    def consumer(self) -> Any:
        """With an update stream: what applies it here (`applied`, `async wait_for(sequence, timeout)`)."""
        return self.registry.consumer

    @consumer.setter
    def consumer(self, consumer: Any) -> None:
        self.registry.consumer = consumer

    @property
    def reason_batcher(self) -> ReasonBatcher | None:
        """Ask's reasoning batcher."""
        return self.asks.batcher

    @property
    def link_batcher(self) -> ReasonBatcher | None:
        """Lookup's link-prediction batcher."""
        return self.lookups.link_batcher

    @property
    def recommend_batcher(self) -> ReasonBatcher | None:
        """Lookup's recommendation batcher."""
        return self.lookups.recommend_batcher
