"""Load: a concurrency sweep of Ask and Embed, then twice the measured capacity for a while.

Starts `graphfuse serve` (UMLS demo graph, metrics on) on a fresh data directory, then over gRPC on loopback:
1. closed-loop sweep: C concurrent callers for C in --levels, for Embed (one question text per call) and Ask;
   QPS, p50/p99/p999, errors by status, and the encoder's average batch size during the level (from the
   server's Prometheus metrics), which shows batching at work as concurrency grows;
2. overload: open-loop Ask arrivals at twice the best Ask QPS of the sweep for --overload-seconds; admitted
   calls keep a bounded p99, the excess is shed with RESOURCE_EXHAUSTED, and the server's resident memory is
   printed at the start and the end.

Usage: python -m bench.load [--levels 1,4,16,64] [--calls 400] [--overload-seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import torch
from prometheus_client.parser import text_string_to_metric_families

from bench.umls_qa import percentile, start_server, stop_server
from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.gnn.formats.datasets import load_umls_demo
from graphfuse.gnn.training.generated_questions import generate_questions
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc

STAGES = ("queue", "encode", "reason", "total")  # the server's Timing of a response


def metrics_url(lines: list[str]) -> str:
    """The metrics address a server started with ``--metrics-port`` printed before it was ready."""
    return next(re.search(r"(http://\S+/metrics)", line).group(1) for line in lines if "metrics on" in line)


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample the server exports: (name, sorted labels) -> value."""
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def encoder_batches(url: str) -> tuple[float, float]:
    """``(forward passes, texts)`` the server's encoder has run so far."""
    samples = scrape(url)
    return (
        samples.get(("graphfuse_encoder_batch_texts_count", ()), 0.0),
        samples.get(("graphfuse_encoder_batch_texts_sum", ()), 0.0),
    )


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Outcomes:
    """Latencies (ms) of the calls that succeeded, the server's stage timings of their responses (ms, summed)
    and status counts of all, for one load phase."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.stages: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()

    async def call(self, stub_method, request: object, timeout: float) -> None:  # noqa: ANN001
        began = time.perf_counter()
        try:
            response = await stub_method(request, timeout=timeout)
            self.latencies.append((time.perf_counter() - began) * 1000)
            for stage in STAGES:
                self.stages[stage] += getattr(response.timing, f"{stage}_us") / 1000
            self.codes["OK"] += 1
        except grpc.aio.AioRpcError as error:
            self.codes[error.code().name] += 1


async def closed_loop(
    stub_method,  # noqa: ANN001
    requests: Iterator,
    clients: int,
    calls: int,
) -> tuple[float, list[float], Counter]:
    outcomes = Outcomes()
    per_client = max(1, calls // clients)

    async def caller() -> None:
        for _ in range(per_client):
            await outcomes.call(stub_method, next(requests), timeout=30)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(clients)))
    return time.perf_counter() - started, outcomes.latencies, outcomes.codes


async def open_loop(
    stub_method,
    requests: Iterator,
    rate: float,
    seconds: float,  # noqa: ANN001
) -> Outcomes:
    outcomes = Outcomes()
    tasks = []
    started = time.perf_counter()
    sent = 0
    while (now := time.perf_counter() - started) < seconds:
        due = int(now * rate) + 1
        while sent < due:
            tasks.append(asyncio.create_task(outcomes.call(stub_method, next(requests), timeout=5)))
            sent += 1
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    return outcomes


def stage_shares(outcomes: Outcomes) -> str:
    """Where an admitted call's wall time went, as shares: the server's stages, the rest of its handler,
    and everything outside it (transport, protobuf, the event loop, the client)."""
    wall = sum(outcomes.latencies)
    if not wall:
        return "no call admitted"
    stages = {f"{stage} (server)": outcomes.stages[stage] for stage in ("queue", "encode", "reason")}
    stages["rest of the handler"] = outcomes.stages["total"] - sum(stages.values())
    stages["outside the handler"] = wall - outcomes.stages["total"]
    return ", ".join(f"{name} {100 * ms / wall:.0f} %" for name, ms in stages.items())


def row(name: str, clients: int, seconds: float, latencies: list[float], codes: Counter, batch: float) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(codes.items()) if k != "OK") or "none"
    if not latencies:
        return f"| {name} | {clients} | 0 | - | - | - | {errors} | {batch:.1f} |"
    return (
        f"| {name} | {clients} | {len(latencies) / seconds:.0f} | {percentile(latencies, 0.5):.1f} "
        f"| {percentile(latencies, 0.99):.1f} | {percentile(latencies, 0.999):.1f} | {errors} | {batch:.1f} |"
    )


async def run(target: str, metrics: str, pid: int, args: argparse.Namespace) -> None:
    records = load_umls_demo()
    graph = KnowledgeGraph([], [r for r in records if isinstance(r, TripleRecord)])
    questions = [q.question for h in (1, 2) for q in generate_questions(graph, 300, h, seed=500 + h)]
    # Every call carries a text never seen before, so the embedding cache cannot stand in for the encoder.
    texts = [f"{questions[i % len(questions)]} (call {i})" for i in range(200_000)]
    ask = iter([pb.AskRequest(question=t, top_k=5) for t in texts])
    embed = iter([pb.EmbedRequest(texts=[t]) for t in texts])
    rows, best_ask = [], 0.0
    async with grpc.aio.insecure_channel(target) as channel:
        methods = {
            "Embed": (pb_grpc.EmbedderStub(channel).Embed, embed),
            "Ask": (pb_grpc.ReasonerStub(channel).Ask, ask),
        }
        for name, (method, requests) in methods.items():
            await closed_loop(method, requests, 4, 16)  # warm-up
            for clients in args.levels:
                before = encoder_batches(metrics)
                seconds, latencies, codes = await closed_loop(
                    method, requests, clients, max(args.calls, 4 * clients)
                )
                after = encoder_batches(metrics)
                passes = after[0] - before[0]
                batch = (after[1] - before[1]) / passes if passes else 0.0
                rows.append(row(name, clients, seconds, latencies, codes, batch))
                if name == "Ask" and latencies:
                    best_ask = max(best_ask, len(latencies) / seconds)
        rss_start = resident_mib(pid)
        rate = 2 * best_ask
        overload = await open_loop(methods["Ask"][0], ask, rate, args.overload_seconds)
        latencies, codes = overload.latencies, overload.codes
        rss_end = resident_mib(pid)

    print("# graphfuse under load: UMLS demo graph, gRPC on loopback, client and server on the same machine")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    )
    print()
    print("| call | concurrent callers | QPS | p50 ms | p99 ms | p999 ms | errors | encoder texts per pass |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for line in rows:
        print(line)
    print()
    total = sum(codes.values())
    seconds = args.overload_seconds
    print(f"Overload: Ask arrivals at {rate:.0f}/s (2x the best {best_ask:.0f} QPS) for {seconds:.0f} s")
    print()
    print(
        "| calls | admitted | shed (RESOURCE_EXHAUSTED) | other errors | admitted p50 ms | p99 ms | p999 ms "
        "| RSS start MiB | RSS end MiB |"
    )
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    other = (
        ", ".join(f"{k} {v}" for k, v in sorted(codes.items()) if k not in ("OK", "RESOURCE_EXHAUSTED"))
        or "none"
    )
    p50, p99, p999 = (f"{percentile(latencies, q):.1f}" if latencies else "-" for q in (0.5, 0.99, 0.999))
    print(
        f"| {total} | {codes['OK']} | {codes['RESOURCE_EXHAUSTED']} | {other} | {p50} | {p99} | {p999} "
        f"| {rss_start:.0f} | {rss_end:.0f} |"
    )
    print(f"\nWhere an admitted call's time went: {stage_shares(overload)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 64])
    parser.add_argument("--calls", type=int, default=400, help="calls per level (at least 4 per caller)")
    parser.add_argument("--overload-seconds", type=float, default=120.0)
    parser.add_argument("--limit", action="append", default=[], help="server --limit NAME=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines: list[str] = []
        flags = ["--metrics-port", "0", *(f for limit in args.limit for f in ("--limit", limit))]
        process, target, _ = start_server(Path(tmp), *flags, lines=lines)
        try:
            asyncio.run(run(target, metrics_url(lines), process.pid, args))
        finally:
            stop_server(process)


if __name__ == "__main__":
    main()
