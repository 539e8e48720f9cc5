"""Faults: 3 replicas on a 3-node NATS cluster, a writer and an Ask load, one replica and one NATS node
killed with SIGKILL mid-run and restarted.

Everything runs on loopback: `nats-server` x3 (a 3-copy update stream) and `graphfuse serve --nats` x3, each
replica preferring another NATS node. A writer ingests chunks of new facts through a round-robin client
over the replicas and retries a chunk on UNAVAILABLE (or a dropped call) until it is acknowledged; Ask
callers run round-robin at the same time. After a third of the writes, replica 2 and NATS node 2 get
SIGKILL; a few seconds later both are started again (same data directories). At the end every replica
must hold every acknowledged fact exactly once and the same graph: the table compares a digest of each
replica's stored triples, and counts the client errors seen during the failover.

Usage: python -m bench.stream_faults [--chunks 60] [--chunk-size 100] [--askers 4]
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import grpc

from bench.umls_qa import percentile, start_server, stop_server
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.server.client import Client
from graphfuse.server.storage.store import GraphStore
from tests.helpers.nats_servers import NatsCluster

GRAPH = "faults"


def replica_flags(cluster: NatsCluster, i: int) -> list[str]:
    preferred = cluster.nodes[i % len(cluster.nodes)].url
    return ["--no-demo", "--nats", f"{preferred},{cluster.url}", "--stream-replicas", "3"]


def write_all(targets: list[str], chunks: list[list[TripleRecord]], acked: list, errors: Counter, started):
    """Ingest every chunk, retrying each until it is acknowledged; notes acknowledged sequences."""
    with Client(targets, timeout=30) as client:
        for number, chunk in enumerate(chunks):
            while True:
                try:
                    acks = list(client.ingest(GRAPH, chunk, chunk_size=len(chunk)))
                    if acks and acks[0].accepted:
                        acked.append((chunk, acks[0].stream_sequence))
                        break
                    errors["rejected"] += 1
                except grpc.RpcError as error:
                    errors[error.code().name] += 1
                    time.sleep(0.2)
            if number == len(chunks) // 3:
                started.set()  # time for the faults


def ask_load(targets: list[str], stop: threading.Event, latencies: list, errors: Counter) -> None:
    with Client(targets, timeout=10) as client:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                client.ask("what does entity 3 interact with", graph=GRAPH, top_k=3)
                latencies.append((time.perf_counter() - start) * 1e3)
            except grpc.RpcError as error:
                errors[error.code().name] += 1
                time.sleep(0.05)


def digest(data_dir: Path, graph: str = GRAPH) -> tuple[str, set[tuple[str, str, str]]]:
    """A replica's stored triples of ``graph`` and a short hash of them (equal graphs, equal hashes)."""
    with GraphStore(data_dir) as store:
        _, triples = store.read_graph(graph)
    stored = {(t.head, t.relation, t.tail) for t in triples}
    assert len(stored) == len(triples)
    return hashlib.sha256("\n".join("\t".join(t) for t in sorted(stored)).encode()).hexdigest()[:16], stored


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=60)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--askers", type=int, default=4)
    parser.add_argument("--down-seconds", type=float, default=5.0)
    parser.add_argument(
        "--entity-pool", type=int, default=0, help="facts between this many known entities (0: new heads)"
    )
    args = parser.parse_args()

    def fact(c: int, i: int) -> TripleRecord:
        n = c * args.chunk_size + i
        if args.entity_pool:  # between known entities: a replica catching up embeds no new names
            pool = args.entity_pool
            return TripleRecord(f"e{n % pool}", f"rel{n // (pool * pool)}", f"e{(n // pool) % pool}")
        return TripleRecord(f"e{c}_{i}", "interacts_with", f"e{(c * 7 + i) % 50}")  # a new head each time

    chunks = [[fact(c, i) for i in range(args.chunk_size)] for c in range(args.chunks)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cluster = NatsCluster(root / "jetstream", 3).start()
        replicas = [start_server(root / f"r{i}", *replica_flags(cluster, i)) for i in range(3)]
        targets = [target for _, target, _ in replicas]
        processes = [process for process, _, _ in replicas]
        write_errors: Counter = Counter()
        ask_errors: Counter = Counter()
        latencies: list[float] = []
        acked: list = []
        try:
            with Client(targets[0], timeout=60) as client:
                client.create_graph(GRAPH)
                if args.entity_pool:
                    names = [EntityRecord(f"e{i}", f"entity {i}") for i in range(args.entity_pool)]
                    (ack,) = client.ingest(GRAPH, names, chunk_size=len(names))
                    for target in targets:  # every replica has embedded the names before the run
                        with Client(target, timeout=120) as replica:
                            replica.lookup(
                                GRAPH, head="e0", facts_only=True, min_sequence=ack.stream_sequence
                            )
            started, stop = threading.Event(), threading.Event()
            writer = threading.Thread(target=write_all, args=(targets, chunks, acked, write_errors, started))
            askers = [
                threading.Thread(target=ask_load, args=(targets, stop, latencies, ask_errors))
                for _ in range(args.askers)
            ]
            began = time.perf_counter()
            writer.start()
            for asker in askers:
                asker.start()
            started.wait()
            processes[2].send_signal(signal.SIGKILL)  # a replica
            processes[2].wait()
            cluster.nodes[2].kill()  # and a NATS node
            killed_at = time.perf_counter() - began
            time.sleep(args.down_seconds)
            cluster.nodes[2].start()
            port = targets[2].rsplit(":", 1)[1]  # the same address, so clients find it again
            processes[2], _, _ = start_server(root / "r2", *replica_flags(cluster, 2), "--port", port)
            restarted_at = time.perf_counter() - began
            writer.join()
            last = max(sequence for _, sequence in acked)
            for target in targets:  # every replica caught up with the last acknowledged write
                with Client(target, timeout=60, retries=1) as client:
                    client.lookup(GRAPH, relation=chunks[0][0].relation, min_sequence=last)
            stop.set()
            for asker in askers:
                asker.join()
            elapsed = time.perf_counter() - began
        finally:
            for process in processes:
                if process.poll() is None:
                    stop_server(process)
            cluster.stop()
        wanted = {(t.head, t.relation, t.tail) for chunk, _ in acked for t in chunk}
        results = [digest(root / f"r{i}") for i in range(3)]

    print(
        f"# Faults: 3 replicas, 3-node NATS cluster (3-copy stream), "
        f"{args.chunks} chunks of {args.chunk_size}"
    )
    print(
        f"# SIGKILL to replica 2 and NATS node 2 at {killed_at:.1f} s, both back at {restarted_at:.1f} s; "
        f"run {elapsed:.1f} s"
    )
    print()
    print("| replica | stored facts | acknowledged facts missing | stored but never acknowledged | digest |")
    print("|---|---:|---:|---:|---|")
    for i, (code, stored) in enumerate(results):
        print(f"| r{i} | {len(stored):,} | {len(wanted - stored)} | {len(stored - wanted)} | {code} |")
    print()
    same = len({code for code, _ in results}) == 1
    print(f"All replicas hold the same graph: {'yes' if same else 'NO'}; acknowledged facts: {len(wanted):,}")
    print(
        "Writer errors during the failover (each chunk retried until acknowledged): "
        f"{dict(write_errors) or 'none'}"
    )
    print(
        f"Ask: {len(latencies):,} answered (p50 {percentile(latencies, 0.5):.1f} ms, p99 "
        f"{percentile(latencies, 0.99):.1f} ms), errors {dict(ask_errors) or 'none'}"
    )


if __name__ == "__main__":
    main()
