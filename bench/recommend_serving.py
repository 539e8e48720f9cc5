"""Recommendations served over the real gRPC server, on Gowalla: ingest, fit, Lookup latency, throughput,
freshness, memory, and Recall/NDCG through Lookup beside the in-process evaluation, in one run.

Starts `graphfuse serve` (no demo graph) on a fresh data directory and, with the CLI as a user would:
ingests ``train.txt`` (adjacency lists), fits with `graphfuse train --task recommend --holdout 0` and waits
for the server to load the checkpoint. Then, over gRPC:

- ``Lookup(head = a user, relation = interacted_with, top_k = 20)`` one call at a time, with and without the
  evidence paths: p50/p99;
- the same from 32 and 128 concurrent callers: lookups per second (they are batched on the server, up to
  ``--recommend-batch`` per pass);
- freshness: ingest one new interaction for a user, then Lookup until the recommendation changed (the new
  item must leave the list, as it is now known): time from the acknowledgement, p50/p99;
- Recall@20 and NDCG@20 of ``valid.txt`` for a sample of users, ranked through Lookup, beside
  `graphfuse eval --task recommend` on the same users (they must agree: the served path is the evaluated one);
- the server's resident memory before and after the graph and the model were loaded.

Usage: python -m bench.recommend_serving [--data ../shared/data/gowalla] [--users 2000]
       [--recommend-batch 256] [--callers 32,128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import subprocess
import tempfile
import time
from pathlib import Path

from bench.load import resident_mib
from bench.umls_qa import GRAPHFUSE, percentile, start_server, stop_server
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.server.client import AsyncClient, Client

RELATION = "interacted_with"


def read_adjacency(path: Path) -> dict[str, list[str]]:
    out = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) > 1:
            out[fields[0]] = fields[1:]
    return out


def cli(*args: str) -> tuple[str, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [*GRAPHFUSE, *args], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    if result.returncode:
        raise RuntimeError(f"graphfuse {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout, time.perf_counter() - started


def timed_lookups(client: Client, users: list[str], evidence: bool) -> list[float]:
    latencies = []
    for user in users:
        started = time.perf_counter()
        client.lookup("gowalla", head=user, relation=RELATION, top_k=20, no_evidence=not evidence)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def concurrent_lookups(target: str, users: list[str], callers: int) -> float:
    async with AsyncClient(target, timeout=60) as client:
        queue = list(users)
        started = time.perf_counter()

        async def caller() -> None:
            while queue:
                user = queue.pop()
                await client.lookup("gowalla", head=user, relation=RELATION, top_k=20, no_evidence=True)

        await asyncio.gather(*(caller() for _ in range(callers)))
        return len(users) / (time.perf_counter() - started)


def freshness(client: Client, users: list[str]) -> list[float]:
    """Milliseconds from the acknowledgement of a new interaction (the user's current top item) to a
    Lookup that no longer recommends it."""
    out = []
    for user in users:
        top = (
            client.lookup("gowalla", head=user, relation=RELATION, top_k=20, no_evidence=True)
            .triples[0]
            .tail_id
        )
        acks = client.ingest("gowalla", [TripleRecord(f"user:{user}", RELATION, top)])
        acked = time.perf_counter()
        assert all(a.accepted for a in acks)
        while True:
            now = client.lookup("gowalla", head=user, relation=RELATION, top_k=20, no_evidence=True).triples
            if top not in {t.tail_id for t in now}:
                out.append((time.perf_counter() - acked) * 1000)
                break
    return out


def ranked_through_lookup(
    client: Client, valid: dict[str, list[str]], users: list[str], k: int
) -> tuple[float, float]:
    recalls, ndcgs = [], []
    for user in users:
        got = [
            t.tail_id.split(":", 1)[1]
            for t in client.lookup("gowalla", head=user, relation=RELATION, top_k=k, no_evidence=True).triples
        ]
        truth = set(valid[user])
        hits = [1.0 if item in truth else 0.0 for item in got]
        recalls.append(sum(hits) / len(truth))
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(truth), k)))
        ndcgs.append(dcg / ideal)
    return sum(recalls) / len(recalls), sum(ndcgs) / len(ndcgs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "gowalla"
    )
    parser.add_argument("--users", type=int, default=2000, help="valid users ranked through Lookup")
    parser.add_argument("--latency-calls", type=int, default=500)
    parser.add_argument("--fresh", type=int, default=50, help="new interactions timed for freshness")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--recommend-batch", type=int, default=256, help="the server's lookups per pass (before 256: 16)"
    )
    parser.add_argument("--callers", default="32,128", help="concurrent callers of the throughput runs")
    args = parser.parse_args()
    valid = read_adjacency(args.data / "valid.txt")
    rng = random.Random(args.seed)
    sample = rng.sample(sorted(valid), min(args.users, len(valid)))

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        process, target, _ = start_server(
            data_dir, "--no-demo", "--recommend-batch", str(args.recommend_batch)
        )
        try:
            empty_mib = resident_mib(process.pid)
            _, ingest_seconds = cli(
                "ingest",
                str(args.data / "train.txt"),
                "--graph",
                "gowalla",
                "--target",
                target,
                "--chunk-size",
                "5000",
            )
            output, train_seconds = cli(
                "train",
                "--task",
                "recommend",
                "--graph",
                "gowalla",
                "--data-dir",
                tmp,
                "--holdout",
                "0",
                "--target",
                target,
            )
            fit_seconds = float(output.split(" in ")[1].split(" s")[0])
            loaded_mib = resident_mib(process.pid)
            subset = data_dir / "valid_sample.txt"
            subset.write_text("".join(f"{u} {' '.join(valid[u])}\n" for u in sample))
            output, _ = cli(
                "eval",
                "--task",
                "recommend",
                "--graph",
                "gowalla",
                "--data-dir",
                tmp,
                "--test",
                str(subset),
                "--json",
            )
            offline = json.loads(output)["metrics"]
            with Client(target, timeout=60) as client:
                timed_lookups(client, sample[:50], True)  # warm-up
                with_paths = timed_lookups(client, sample[: args.latency_calls], True)
                without = timed_lookups(client, sample[: args.latency_calls], False)
                served_recall, served_ndcg = ranked_through_lookup(client, valid, sample, 20)
                per_second = {
                    callers: asyncio.run(concurrent_lookups(target, sample, callers))
                    for callers in map(int, args.callers.split(","))
                }
                fresh = freshness(client, sample[-args.fresh :])
            final_mib = resident_mib(process.pid)
        finally:
            stop_server(process)

    edges = sum(len(v) for v in read_adjacency(args.data / "train.txt").values())
    machine = platform.processor() or platform.machine()
    print(f"\nGowalla train.txt ({edges:,} interactions), {machine}, {os.cpu_count()} cores\n")

    def ms(values: list[float]) -> str:
        return f"{percentile(values, 0.5):.1f} / {percentile(values, 0.99):.1f} ms"

    rows = [
        ("ingest train.txt, `graphfuse ingest` (adjacency lists)", f"{ingest_seconds:.1f} s"),
        ("ingest rate", f"{edges / ingest_seconds:,.0f} interactions/s"),
        (
            f"`graphfuse train --task recommend --holdout 0` (fit {fit_seconds:.1f} s)",
            f"{train_seconds:.1f} s",
        ),
        ("Lookup top 20 with evidence, one caller: p50 / p99", ms(with_paths)),
        ("Lookup top 20 without evidence, one caller: p50 / p99", ms(without)),
        *(
            (
                f"Lookups per second, {callers} callers, no evidence (up to {args.recommend_batch} per pass)",
                f"{rate:,.0f}",
            )
            for callers, rate in per_second.items()
        ),
        ("freshness: acknowledged interaction -> changed recommendation, p50 / p99", ms(fresh)),
        (
            "server resident memory: empty / graph and model loaded / at the end",
            f"{empty_mib:,.0f} / {loaded_mib:,.0f} / {final_mib:,.0f} MiB",
        ),
    ]
    print("| measure | value |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\n| valid.txt, {len(sample)} users | Recall@20 | NDCG@20 |\n|---|---:|---:|")
    print(f"| through gRPC Lookup | {served_recall:.4f} | {served_ndcg:.4f} |")
    offline_name = "`graphfuse eval --task recommend` (in-process, batched)"
    print(f"| {offline_name} | {offline['recall']:.4f} | {offline['ndcg']:.4f} |")


if __name__ == "__main__":
    main()
