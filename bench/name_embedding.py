"""Names embedded in the background: how soon a named graph answers, and what embedding costs meanwhile.

A synthetic graph with named entities (``bench.synthetic_kg``: unique pseudo-word names, one entity per ten
edges) is loaded, each way in one run, on this machine, with a real ``graphfuse serve --no-demo``:

- **through a running server** (``graphfuse ingest`` in acknowledged chunks of 5,000): seconds until the
  last acknowledgement, by default (names embedded in the background) and with ``--wait-for-names`` (each
  chunk acknowledged once its names have vectors, as every ingest did before names moved to the
  background); for the default, also the seconds until ``GetGraphInfo`` reports every name embedded;
- **offline, then served**: ``graphfuse ingest --offline``, then a server starts on the directory (seconds
  until it is ready, and until every name is embedded: the store caches no vector yet), then a second start
  on the same directory (every vector read back from the store's cache);
- **while names are embedded**: ``Lookup(head, relation)`` by exact name, facts only, one caller over gRPC,
  p50 / p99 during the first start's embedding and after it.

Usage: python -m bench.name_embedding [--edges 200000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path

from bench.scaling import timed_command
from bench.synthetic_kg import generate, write_tsv
from bench.umls_qa import percentile, start_server, stop_server
from graphfuse.server.client import Client

GRAPH = "kg"


def until_embedded(client: Client, started: float, timeout: float = 3600) -> float:
    """Seconds from ``started`` until every name of the graph has its vector."""
    while True:
        info = client.graph_info(GRAPH)
        if info.names_embedded >= info.names_total:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{info.names_embedded} of {info.names_total} names embedded")
        time.sleep(0.1)


def lookup_ms(client: Client, lookups: list[tuple[str, str]], embedding: bool) -> tuple[float, float, int]:
    """p50 / p99 of facts-only lookups by exact name, while names are (or are no longer) being embedded;
    with ``embedding``, stops once they are all embedded. Returns how many lookups were timed too."""
    times = []
    for head, relation in lookups:
        if embedding and not len(times) % 20:
            info = client.graph_info(GRAPH)
            if info.names_embedded >= info.names_total:
                break
        began = time.perf_counter()
        found = client.lookup(GRAPH, head=head, relation=relation, facts_only=True, top_k=10)
        times.append((time.perf_counter() - began) * 1000)
        assert found.triples, (head, relation)
    return percentile(times, 0.5), percentile(times, 0.99), len(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--edges", type=int, default=200_000)
    args = parser.parse_args()
    graph = generate(args.edges)
    rng = random.Random(0)
    picks = [rng.randrange(graph.heads.size) for _ in range(2000)]
    lookups = [(str(graph.names[graph.heads[i]]), graph.relations[graph.rels[i]]) for i in picks]
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.edges:,} edges, {graph.names.size:,} names")
    rows = []
    with tempfile.TemporaryDirectory(prefix="graphfuse-names-") as tmp:
        folder = Path(tmp)
        path = folder / "kg.tsv"
        write_tsv(graph, path)
        for label, flags in (("background", ()), ("--wait-for-names", ("--wait-for-names",))):
            process, target, _ = start_server(folder / f"online{len(rows)}", "--no-demo")
            try:
                started = time.perf_counter()
                timed_command(
                    "ingest", str(path), "--graph", GRAPH, "--target", target, "--chunk-size", "5000", *flags
                )
                acked = time.perf_counter() - started
                with Client(target, timeout=120) as client:
                    embedded = until_embedded(client, started)
                rows.append((f"ingest through the server, {label}", acked, embedded))
            finally:
                stop_server(process)

        data_dir = folder / "offline"
        wall, _ = timed_command(
            "ingest", str(path), "--graph", GRAPH, "--offline", "--data-dir", str(data_dir)
        )
        rows.append(("ingest --offline", wall, None))
        during = after = None
        for start in ("first start (no cached vectors)", "second start (vectors cached in the store)"):
            started = time.perf_counter()
            process, target, ready = start_server(data_dir, "--no-demo")
            try:
                with Client(target, timeout=120) as client:
                    if during is None:
                        during = lookup_ms(client, lookups, embedding=True)
                    embedded = until_embedded(client, started)
                    if after is None:
                        after = lookup_ms(client, lookups[:500], embedding=False)
                rows.append((start, ready, embedded))
            finally:
                stop_server(process)

    print("\n| load | answers by ids and exact names after s | every name embedded after s |")
    print("|---|---:|---:|")
    for label, ready, embedded in rows:
        print(f"| {label} | {ready:.1f} | {'' if embedded is None else f'{embedded:.1f}'} |")
    assert during is not None and after is not None
    print(
        f"\nLookup by exact name, facts only, p50 / p99 ms: {during[0]:.1f} / {during[1]:.1f} while names "
        f"are embedded ({during[2]} calls), {after[0]:.1f} / {after[1]:.1f} after"
    )


if __name__ == "__main__":
    main()
