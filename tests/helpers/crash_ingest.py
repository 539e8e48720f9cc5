"""Durability under kill -9: streaming ingest into a real server killed with SIGKILL at random moments.

Each run starts `graphfuse serve` on the same data directory, streams chunks of fresh triples through
`Ingest`, records every chunk the server acknowledged, and kills the server with SIGKILL at a random moment
after its first acknowledgement.
After the last run the store is read back and compared with the client's record: every acknowledged chunk
must be there in full (0 lost), no chunk may be there in part (atomic), and no triple twice (0 duplicated).

Usage: python -m tests.helpers.crash_ingest [--runs 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.umls_qa import start_server
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.server.client import Client
from graphfuse.server.storage.store import GraphStore

GRAPH = "crash"
CHUNK = 50


@dataclass
class CrashReport:
    runs: int
    acknowledged_chunks: int
    sent_chunks: int
    stored_triples: int
    lost: int  # triples of acknowledged chunks missing from the store
    partial_chunks: int  # chunks stored in part
    duplicated: int  # triples stored more than once


def chunk_triples(run: int, chunk: int) -> list[TripleRecord]:
    return [TripleRecord(f"r{run}c{chunk}e{i}", "links", f"r{run}c{chunk}t{i % 7}") for i in range(CHUNK)]


def crash_runs(data_dir: Path, runs: int, seed: int = 0, max_delay: float = 2.0) -> CrashReport:
    rng = random.Random(seed)
    acknowledged: set[tuple[int, int]] = set()
    sent = 0
    for run in range(runs):
        process, target, _ = start_server(data_dir, "--no-demo")
        # The kill comes at a random moment after the first acknowledgement, so every run writes something.
        killer = threading.Timer(
            rng.uniform(0.0, max_delay), lambda p=process: os.kill(p.pid, signal.SIGKILL)
        )
        chunks_sent = 0

        def records(run: int = run):  # noqa: ANN202
            nonlocal chunks_sent
            chunk = 0
            while True:
                chunks_sent += 1
                yield from chunk_triples(run, chunk)
                chunk += 1

        try:
            with Client(target, timeout=30) as client:
                for ack in client.ingest(GRAPH, records(), chunk_size=CHUNK):
                    if ack.accepted:
                        acknowledged.add((run, int(ack.chunk_id)))
                    if not killer.is_alive() and not killer.finished.is_set():
                        killer.start()
        except grpc.RpcError:
            pass  # the server died mid-stream: expected
        finally:
            killer.cancel()
            process.kill()
            process.wait()
        sent += chunks_sent
    store = GraphStore(data_dir)
    try:
        _, triples = store.read_graph(GRAPH)
    finally:
        store.close()
    counts = Counter(triples)
    stored = set(counts)
    lost = sum(t not in stored for run, chunk in acknowledged for t in chunk_triples(run, chunk))
    by_chunk = Counter(
        (int(t.head[1 : t.head.index("c")]), int(t.head[t.head.index("c") + 1 : t.head.index("e")]))
        for t in stored
    )
    return CrashReport(
        runs,
        len(acknowledged),
        sent,
        len(triples),
        lost,
        sum(n != CHUNK for n in by_chunk.values()),
        sum(n - 1 for n in counts.values()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = crash_runs(Path(tmp), args.runs, args.seed)
    print(f"# graphfuse ingest under SIGKILL: {args.runs} runs, {CHUNK} triples per chunk")
    print()
    print("| runs | chunks acknowledged | triples stored | lost | partial chunks | duplicated | seconds |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {report.runs} | {report.acknowledged_chunks} | {report.stored_triples} | {report.lost} "
        f"| {report.partial_chunks} | {report.duplicated} | {time.perf_counter() - started:.0f} |"
    )


if __name__ == "__main__":
    main()
