"""The service core's entry point: typed requests in, typed results out, no transport.

`GraphService` joins the graph registry (registry.py: the store, the model and the graphs; lifecycle, ingest,
merges, Embed and Info) with the Ask handler (ask.py) and the Lookup and Link handlers (lookup.py), which read
the graphs through the registry; the results they return are importable from here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from graphfuse.encoder import EncodeBatcher, TextEncoder
from graphfuse.server.core.ask import AnswerResult, AskHandler, AskResult
from graphfuse.server.core.config import Limits, ServerConfig
from graphfuse.server.core.lookup import FactResult, LookupHandler, LookupResult
from graphfuse.server.core.named import LinkedEntity, NamedEvidence, NamedHop
from graphfuse.server.core.reason_batcher import ReasonBatcher
from graphfuse.server.core.registry import (
    GROUP_COMMIT_RECORDS,
    EmbedResult,
    GraphDetails,
    GraphModels,
    GraphRegistry,
    IngestChunk,
    IngestResult,
    RelationWords,
    ServiceInfo,
    Timing,
)
from graphfuse.server.core.state import GraphState
from graphfuse.server.storage.store import GraphStore

__all__ = [
    "GROUP_COMMIT_RECORDS",
    "AnswerResult",
    "AskResult",
    "EmbedResult",
    "FactResult",
    "GraphDetails",
    "GraphModels",
    "GraphService",
    "IngestChunk",
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
        # each call is its owner's own method, with its signature and documentation
        self.ask = self.asks.ask
        self.lookup = self.lookups.lookup
        self.link = self.lookups.link
        registry = self.registry
        self.info = registry.info
        self.embed = registry.embed
        self.create_graph = registry.create_graph
        self.delete_graph = registry.delete_graph
        self.list_graphs = registry.list_graphs
        self.graph_info = registry.graph_info
        self.ingest = registry.ingest
        self.ingest_chunks = registry.ingest_chunks
        self.finish_ingest = registry.finish_ingest
        self.wait_for_sequence = registry.wait_for_sequence
        self.retraction_errors = registry.retraction_errors
        self.stream_position = registry.stream_position
        self.set_stream_position = registry.set_stream_position
        self.write_and_apply = registry.write_and_apply
        self.on_compute = registry.on_compute

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
