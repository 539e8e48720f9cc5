"""Prometheus metrics, served over HTTP on their own port (they work with gRPC alone; no gateway needed).

Per call (recorded by :class:`~graphfuse.server.transport.observability.CallInterceptor`): requests by RPC and
status code, latency, and the stage times every response reports (queue, encode, reason).

Read from the service at scrape time: encoder batches (texts and padded tokens per forward pass; the average
batch size is ``rate(graphfuse_encoder_batch_texts_sum) / rate(graphfuse_encoder_batch_texts_count)``),
queue depths, cache hits and misses, requests shed or dropped by reason, reasoner batches, graph sizes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from graphfuse.server.core.service import GraphService

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGES = ("queue_us", "encode_us", "reason_us")


class Metrics:
    """The server's metrics in their own registry (one per server, so tests can run several)."""

    def __init__(self, service: GraphService | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "graphfuse_requests", "RPCs by method and status code", ["method", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "graphfuse_request_seconds",
            "RPC latency as seen by the server",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "graphfuse_stage_seconds",
            "Time per stage of a call (queue, encode, reason), from the timing each response reports",
            ["method", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        if service is not None:
            self.registry.register(ServiceCollector(service))
        self._http = None

    def observe(self, method: str, code: str, seconds: float, timing: object | None = None) -> None:
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)
        if timing is not None:
            for stage in STAGES:
                value = getattr(timing, stage, 0)
                if value:
                    self.stages.labels(method, stage.removesuffix("_us")).observe(value / 1e6)

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint (``/metrics``); returns its port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        bound = server.server_address[1]
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class ServiceCollector(Collector):
    """Reads batcher, cache and graph state when Prometheus scrapes."""

    def __init__(self, service: GraphService) -> None:
        self.service = service

    def collect(self) -> Iterator:
        service = self.service
        batcher = service.batcher
        if batcher is not None:
            stats = batcher.stats
            yield SummaryMetricFamily(
                "graphfuse_encoder_batch_texts",
                "Texts per encoder forward pass",
                count_value=stats.batches,
                sum_value=stats.texts,
            )
            yield SummaryMetricFamily(
                "graphfuse_encoder_batch_tokens",
                "Padded tokens per encoder forward pass",
                count_value=stats.batches,
                sum_value=stats.padded_tokens,
            )
            yield GaugeMetricFamily(
                "graphfuse_encoder_queued_texts", "Texts waiting for the encoder", value=stats.queued_texts
            )
            cache = CounterMetricFamily(
                "graphfuse_encoder_cache", "Embedding cache lookups", labels=["result"]
            )
            cache.add_metric(["hit"], stats.hits)
            cache.add_metric(["miss"], stats.misses)
            yield cache
            dropped = CounterMetricFamily(
                "graphfuse_encoder_dropped", "Encoder requests not run, by reason", labels=["reason"]
            )
            for reason in ("overloaded", "expired", "cancelled", "too_long"):
                dropped.add_metric([reason], getattr(stats, reason))
            yield dropped
            stages = CounterMetricFamily(
                "graphfuse_encoder_stage_seconds",
                "Encoder time by stage: queue (summed over requests waiting), tokenize, forward, pool",
                labels=["stage"],
            )
            stages.add_metric(["queue"], stats.queue_seconds)
            for stage, seconds in service.encoder.timings.as_dict().items():
                stages.add_metric([stage], seconds)
            yield stages
        batchers = (
            ("ask", service.reason_batcher),
            ("lookup", service.link_batcher),
            ("recommend", service.recommend_batcher),
        )
        for kind, batcher in batchers:
            if batcher is None:
                continue
            yield SummaryMetricFamily(
                f"graphfuse_{kind}_batch_items",
                f"{kind.capitalize()} calls per batched reasoner pass",
                count_value=batcher.batches,
                sum_value=batcher.items,
            )
            yield CounterMetricFamily(
                f"graphfuse_{kind}_compute_seconds",
                f"Seconds the batched {kind} passes ran on the compute thread",
                value=batcher.seconds,
            )
            yield GaugeMetricFamily(
                f"graphfuse_{kind}_queued",
                f"{kind.capitalize()} calls waiting for the reasoner",
                value=batcher.queued,
            )
        yield from _update_stream_metrics(service.consumer)
        sizes = GaugeMetricFamily("graphfuse_graph_size", "Graph sizes in memory", labels=["graph", "kind"])
        for name, state in list(service.graphs.items()):
            graph = state.graph
            sizes.add_metric([name, "entities"], graph.num_entities)
            sizes.add_metric([name, "relations"], graph.num_relations)
            sizes.add_metric([name, "edges"], graph.num_edges)
            sizes.add_metric([name, "delta_edges"], graph.delta_size)
        yield sizes
        merges = CounterMetricFamily(
            "graphfuse_graph_merges",
            "Merges of a graph's update delta into its sparse matrices",
            labels=["graph"],
        )
        for name, state in list(service.graphs.items()):
            merges.add_metric([name], state.graph.merges)
        yield merges


def _update_stream_metrics(consumer: object) -> Iterator:
    """Per update source (the JetStream stream, or each Kafka partition): its position, the records applied
    and the messages dead-lettered since start, and, where the source knows its end, how far behind it is."""
    if consumer is None:
        return
    consumers = getattr(consumer, "consumers", [consumer])
    position = GaugeMetricFamily(
        "graphfuse_updates_position", "Last update-stream position applied", labels=["source"]
    )
    records = CounterMetricFamily(
        "graphfuse_updates_applied_records", "Records applied from the update stream", labels=["source"]
    )
    dead = CounterMetricFamily(
        "graphfuse_updates_dead_letters", "Update messages set aside as dead letters", labels=["source"]
    )
    lag = GaugeMetricFamily(
        "graphfuse_updates_lag",
        "Update messages not yet applied (Kafka: to the last fetch's end offset)",
        labels=["source"],
    )
    for each in consumers:
        name = each.source.name
        position.add_metric([name], each.applied)
        records.add_metric([name], each.applied_records)
        dead.add_metric([name], each.dead_letters)
        end = getattr(each.source, "highwater", None)
        if end is not None:
            lag.add_metric([name], max(0, end - each.applied))
    yield from (position, records, dead, lag)
