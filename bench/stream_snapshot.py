"""A fresh replica: starting from a snapshot in the JetStream object store against replaying the stream.

Starts `nats-server -js` and replica A (`graphfuse serve --nats`) on free ports in a temporary folder. A takes
--facts new facts through `Ingest` (chunks of 1,000), each with a new head entity, so a replica that
applies them must embed every new name. `graphfuse snapshot` then stores a snapshot of A's data directory,
and A takes --later more facts after it. Two fresh replicas start one after the other, each on an empty data
directory: B1 with `--no-snapshot-restore` replays the whole stream; B2 installs the snapshot and applies
only the updates after it. For each: seconds from its start to SERVING (once it has applied what the stream
held when it started, as `--max-lag 0` asks) and to having applied the last update, the stream messages it
applied, and whether its graph equals A's.

Usage: python -m bench.stream_snapshot [--facts 30000] [--later 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

from bench.umls_qa import GRAPHFUSE, start_server, stop_server
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.server.client import Client
from graphfuse.server.storage.store import GraphStore
from tests.helpers.nats_servers import NatsCluster

GRAPH = "snap"


def new_facts(start: int, count: int) -> list[TripleRecord]:
    """``count`` facts, each from a new entity to one of 100 shared ones."""
    return [
        TripleRecord(f"compound_{n}", "inhibits", f"protein_{n % 100}") for n in range(start, start + count)
    ]


def ingest(target: str, records: list[TripleRecord]) -> int:
    """Ingest through the stream and wait until this replica applied it; the last stream sequence."""
    with Client(target, timeout=600) as client:
        acks = list(client.ingest(GRAPH, records, chunk_size=1000))
        assert all(a.accepted for a in acks)
        client.lookup(GRAPH, relation="inhibits", facts_only=True, min_sequence=acks[-1].stream_sequence)
        return acks[-1].stream_sequence


def triples(data_dir: Path) -> set[tuple[str, str, str]]:
    with GraphStore(data_dir) as store:
        return {(t.head, t.relation, t.tail) for t in store.read_graph(GRAPH)[1]}


def fresh_replica(data_dir: Path, url: str, last: int, *flags: str) -> tuple[float, float]:
    """Start a replica on an empty data directory; seconds until SERVING and until it applied ``last``."""
    started = time.perf_counter()
    process, target, _ = start_server(data_dir, "--no-demo", "--nats", url, *flags)
    serving = time.perf_counter() - started
    try:
        with Client(target, timeout=600) as client:
            client.lookup(GRAPH, relation="inhibits", facts_only=True, min_sequence=last)
        caught_up = time.perf_counter() - started
    finally:
        stop_server(process)
    return serving, caught_up


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--facts", type=int, default=30_000)
    parser.add_argument("--later", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nats = NatsCluster(root / "jetstream").start()
        url = nats.url
        replica, target, _ = start_server(root / "a", "--no-demo", "--nats", url)
        try:
            with Client(target, timeout=60) as client:
                client.create_graph(GRAPH)
            began = time.perf_counter()
            covered = ingest(target, new_facts(0, args.facts))
            applied_seconds = time.perf_counter() - began
            began = time.perf_counter()
            command = [*GRAPHFUSE, "snapshot", "--data-dir", str(root / "a"), "--nats", url]
            printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            snapshot_seconds = time.perf_counter() - began
            match = re.search(r"stream sequence (\d+), ([\d,]+) bytes", printed)
            assert match is not None and int(match.group(1)) == covered, printed
            snapshot_bytes = int(match.group(2).replace(",", ""))
            last = ingest(target, new_facts(args.facts, args.later))
            wanted = triples(root / "a")
            rows = []
            for name, flags, start in (
                (
                    "B1 replays the stream from sequence 1 (`--no-snapshot-restore`)",
                    ["--no-snapshot-restore"],
                    0,
                ),
                ("B2 installs the snapshot, then applies the rest", [], covered),
            ):
                data_dir = root / name[:2]
                serving, caught_up = fresh_replica(data_dir, url, last, *flags)
                rows.append((name, serving, caught_up, last - start, triples(data_dir) == wanted))
        finally:
            stop_server(replica)
            nats.stop()

    print(
        f"# Fresh replica: {args.facts:,} facts with a new entity each, a snapshot, then {args.later:,} "
        f"more; stream sequence {last:,}"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; NATS and the replicas on "
        "one machine"
    )
    print()
    print(
        f"Replica A applied the first {args.facts:,} facts in {applied_seconds:.1f} s; `graphfuse snapshot` "
        f"stored {snapshot_bytes / 1e6:.1f} MB (store with name embeddings) in {snapshot_seconds:.1f} s, "
        "command start included"
    )
    print()
    print(
        "| fresh replica | SERVING after s | applied the last update after s | stream messages applied "
        "| same graph as A |"
    )
    print("|---|---:|---:|---:|---|")
    for name, serving, caught_up, messages, same in rows:
        print(f"| {name} | {serving:.1f} | {caught_up:.1f} | {messages:,} | {'yes' if same else 'NO'} |")
    print(f"| B1 / B2 | x{rows[0][1] / rows[1][1]:.1f} | x{rows[0][2] / rows[1][2]:.1f} | | |")


if __name__ == "__main__":
    main()
