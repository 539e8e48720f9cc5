"""Graph size against load time, memory, restart time and query latency, on synthetic knowledge graphs.

For each size, a synthetic graph (``bench.synthetic_kg``: power-law degrees, 20 entity kinds, 250 relations,
one entity per ten edges) is written as a TSV of id-named triples (entity ids are numbers, so there are no
names to embed), then:

- ``graphfuse ingest --offline`` loads it into a fresh data directory (wall time of the command, process
  start included, and the load's own time as it reports it);
- a real ``graphfuse serve --no-demo`` starts on that directory (seconds until it is ready: the first start,
  which reads the triples from the database and keeps its edge columns and layouts), and its resident memory
  (VmRSS) is read beside that of a server on an empty directory: the difference per edge is what the graph
  costs in memory (read again after the queries, which build caches of their own); after them it is
  stopped and started again (the restart, which reads what the first start kept);
- one caller over gRPC: ``Lookup(head, relation)`` of stored facts (facts only) and ``Ask`` with the topic
  given by id at 1, 2 and 3 hops (``max_hops``), each for 200 random entities with at least one edge, after
  10 warm-up calls; p50 and p99 (``--queries`` sets the 200).

With ``--online`` the smallest size is also loaded through a running server (``graphfuse ingest`` in
acknowledged chunks of 5,000), for the ratio of the two load paths. With ``--names`` entities are named by
pseudo-words ("Tovaremi Kel"), whose vectors the server reserves at the start and embeds in the background
while the queries run (the topic is then given by its name); the memory then includes a vector per entity.

Usage: python -m bench.scaling [--sizes 1000000,2250000,10000000] [--online] [--names] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import tempfile
import time
from pathlib import Path

from bench.hetionet_lookup import ENV, rss_mb
from bench.synthetic_kg import generate, write_tsv
from bench.umls_qa import GRAPHFUSE, percentile, start_server, stop_server
from graphfuse.server.client import Client

QUERIES = 200
WARM_UP = 10


def timed_command(*args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([*GRAPHFUSE, *args], capture_output=True, text=True, env=ENV)
    if done.returncode:
        raise RuntimeError(f"graphfuse {args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    seconds = time.perf_counter() - started
    try:
        return seconds, json.loads(done.stdout)
    except json.JSONDecodeError:
        return seconds, {}


def latencies(call, arguments: list) -> tuple[float, float]:
    for argument in arguments[:WARM_UP]:
        call(argument)
    times = []
    for argument in arguments:
        started = time.perf_counter()
        call(argument)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 0.5), percentile(times, 0.99)


def measure(num_edges: int, folder: Path, empty_rss: float, online: bool, queries: int, names: bool) -> dict:
    path = folder / f"kg-{num_edges}.tsv"
    graph = generate(num_edges)
    write_tsv(graph, path, id_prefix=None if names else "")  # plain numbers: no names to embed
    rng = random.Random(0)
    picks = [rng.randrange(graph.heads.size) for _ in range(queries)]
    heads = graph.names[graph.heads[picks]].tolist() if names else [str(h) for h in graph.heads[picks]]
    rels, edges, relation_names = graph.rels[picks].tolist(), graph.heads.size, graph.relations
    del graph  # the server gets the machine's memory
    data_dir = folder / f"data-{num_edges}"
    wall, summary = timed_command(
        "ingest", str(path), "--graph", "kg", "--offline", "--data-dir", str(data_dir), "--json"
    )
    row = {
        "names": names,
        "edges": int(edges),
        "entities": summary["entities"],
        "offline_s": wall,
        "offline_load_s": summary["seconds"],
    }
    process, target, ready_s = start_server(data_dir, "--no-demo")
    try:
        row["first_start_s"] = ready_s
        row["rss_mb"] = rss_mb(process.pid)
        row["bytes_per_edge"] = (row["rss_mb"] - empty_rss) * 2**20 / edges
        with Client(target, timeout=120) as client:
            lookups = [(head, relation_names[rel]) for head, rel in zip(heads, rels, strict=True)]
            row["lookup_ms"] = latencies(
                lambda a: client.lookup("kg", head=a[0], relation=a[1], facts_only=True, top_k=10), lookups
            )
            for hops in (1, 2, 3):
                topics = heads
                row[f"ask{hops}_ms"] = latencies(
                    lambda topic, hops=hops: client.ask(
                        "which things are linked to this one?", "kg", 10, hops, [topic]
                    ),
                    topics,
                )
        row["rss_after_mb"] = rss_mb(process.pid)
    finally:
        stop_server(process)
    process, _, row["restart_s"] = start_server(data_dir, "--no-demo")  # reads what the first start kept
    stop_server(process)
    if online:
        empty = folder / f"online-{num_edges}"
        process, target, _ = start_server(empty, "--no-demo")
        try:
            seconds, _ = timed_command(
                "ingest", str(path), "--graph", "kg", "--target", target, "--chunk-size", "5000", "--json"
            )
            row["online_s"] = seconds
        finally:
            stop_server(process)
    path.unlink()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,2250000,10000000")
    parser.add_argument("--online", action="store_true", help="also load the smallest size through a server")
    parser.add_argument(
        "--names", action="store_true", help="entities named by pseudo-words (embedded in the background)"
    )
    parser.add_argument("--queries", type=int, default=QUERIES, help="random heads per measured call")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"{platform.machine()}, {os.cpu_count()} cores, sizes {sizes}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="graphfuse-scaling-") as tmp:
        folder = Path(tmp)
        process, _, _ = start_server(folder / "empty", "--no-demo")
        empty_rss = rss_mb(process.pid)
        stop_server(process)
        print(f"empty server: {empty_rss:.0f} MB", flush=True)
        for i, size in enumerate(sizes):
            rows.append(measure(size, folder, empty_rss, args.online and i == 0, args.queries, args.names))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    print(
        "\n| edges | entities | offline ingest s (triples/s) | first start s | restart s "
        "| RSS MB, ready / after | bytes/edge | Lookup p50/p99 ms | Ask 1 hop | Ask 2 hops | Ask 3 hops |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        cells = [
            f"{row['edges']:,}",
            f"{row['entities']:,}",
            f"{row['offline_s']:.1f} ({row['edges'] / row['offline_s']:,.0f})",
            f"{row['first_start_s']:.1f}",
            f"{row['restart_s']:.1f}",
            f"{row['rss_mb']:.0f} / {row['rss_after_mb']:.0f}",
            f"{row['bytes_per_edge']:.0f} / {(row['rss_after_mb'] - empty_rss) * 2**20 / row['edges']:.0f}",
            *(f"{row[k][0]:.1f} / {row[k][1]:.1f}" for k in ("lookup_ms", "ask1_ms", "ask2_ms", "ask3_ms")),
        ]
        print("| " + " | ".join(cells) + " |")
    for row in rows:
        if "online_s" in row:
            print(
                f"\nthrough a running server ({row['edges']:,} edges): {row['online_s']:.1f} s "
                f"({row['edges'] / row['online_s']:,.0f} triples/s); offline {row['offline_s']:.1f} s: "
                f"{row['online_s'] / row['offline_s']:.1f}x faster"
            )


if __name__ == "__main__":
    main()
