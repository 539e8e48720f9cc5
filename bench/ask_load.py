"""Ask under concurrent load over the real gRPC server, beside Embed (encoder only) at the same load.

Starts `graphfuse serve` on a fresh data directory (the UMLS demo graph) unless --target names a running
server, then runs C concurrent callers for a fixed number of calls each: first Embed of the questions'
texts (what the encoder alone sustains), then Ask of the same questions. Prints QPS and p50/p99 latency.

Usage: python -m bench.ask_load [--clients 32] [--calls 20]
       [--target HOST:PORT --metrics URL --graph NAME --questions FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import torch

from bench.load import metrics_url, scrape
from bench.umls_qa import percentile, start_server, stop_server
from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.gnn.formats.datasets import load_qa_file, load_umls_demo
from graphfuse.gnn.training.generated_questions import generate_questions
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc


async def run_load(
    target: str, requests: list, call: str, clients: int, calls: int
) -> tuple[float, list[float]]:
    """``clients`` callers, each sending ``calls`` requests in turn; returns (seconds, latencies in ms)."""
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ReasonerStub(channel) if call == "Ask" else pb_grpc.EmbedderStub(channel)
        method = getattr(stub, call)

        async def caller(offset: int) -> None:
            for i in range(calls):
                request = requests[(offset * calls + i) % len(requests)]
                began = time.perf_counter()
                await method(request, timeout=60)
                latencies.append((time.perf_counter() - began) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(clients)))
        return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--calls", type=int, default=20, help="calls per client")
    parser.add_argument("--target", default=None, help="a running server (default: start one with the demo)")
    parser.add_argument("--metrics", default=None, help="the running server's metrics URL")
    parser.add_argument("--graph", default="umls")
    parser.add_argument("--questions", type=Path, default=None, help="question file (default: generated)")
    args = parser.parse_args()

    if args.questions:
        texts = [e.question for e in load_qa_file(args.questions)]
    else:
        records = load_umls_demo()
        graph = KnowledgeGraph([], [r for r in records if isinstance(r, TripleRecord)])
        texts = [q.question for h in (1, 2) for q in generate_questions(graph, 200, h, seed=99 + h)]
    ask = [pb.AskRequest(graph=args.graph, question=t, top_k=5) for t in texts]
    embed = [pb.EmbedRequest(texts=[t]) for t in texts]

    with tempfile.TemporaryDirectory() as tmp:
        process = None
        target, metrics = args.target, args.metrics
        if target is None:
            lines: list[str] = []
            process, target, _ = start_server(Path(tmp), "--metrics-port", "0", lines=lines)
            metrics = metrics_url(lines)
        try:
            rows, compute = [], []
            for call, requests in (("Embed", embed), ("Ask", ask)):
                asyncio.run(run_load(target, requests, call, args.clients, 2))  # warm-up
                before = compute_seconds(metrics)
                seconds, latencies = asyncio.run(run_load(target, requests, call, args.clients, args.calls))
                after = compute_seconds(metrics)
                rows.append(
                    (
                        call,
                        len(latencies) / seconds,
                        statistics.median(latencies),
                        percentile(latencies, 0.99),
                    )
                )
                compute.append({k: (after[k] - before[k]) / len(latencies) * 1e3 for k in after})
        finally:
            if process is not None:
                stop_server(process)

    print(
        f"# {args.clients} concurrent gRPC callers x {args.calls} calls, graph {args.graph}, "
        f"client and server on the same machine"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    )
    print()
    print("| call | QPS | p50 | p99 |")
    print("|---|---:|---:|---:|")
    for call, qps, p50, p99 in rows:
        print(f"| {call} | {qps:.0f} | {p50:.1f} ms | {p99:.1f} ms |")
    print(f"| Ask / Embed throughput | {rows[1][1] / rows[0][1]:.2f} | | |")
    if metrics:
        print()
        print("Server compute-thread time per call (ms), from its counters:")
        print()
        print("| call | encoder | reasoning | reasoning / encoder |")
        print("|---|---:|---:|---:|")
        for (call, *_), ms in zip(rows, compute, strict=True):
            ratio = ms["reasoning"] / ms["encoder"] if ms["encoder"] else float("nan")
            print(f"| {call} | {ms['encoder']:.2f} | {ms['reasoning']:.2f} | {ratio:.2f} |")


def compute_seconds(url: str | None) -> dict[str, float]:
    """Seconds the server has spent so far in the encoder (tokenize, forward, pool) and in Ask reasoning."""
    if url is None:
        return {"encoder": 0.0, "reasoning": 0.0}
    samples = scrape(url)
    encoder = sum(
        samples.get(("graphfuse_encoder_stage_seconds_total", (("stage", stage),)), 0.0)
        for stage in ("tokenize", "forward", "pool")
    )
    return {"encoder": encoder, "reasoning": samples.get(("graphfuse_ask_compute_seconds_total", ()), 0.0)}


if __name__ == "__main__":
    main()
