"""Ask under concurrent load over the real gRPC server, beside Embed (encoder only) at the same load.

Starts `graphfuse serve` on a fresh data directory (the UMLS demo graph) unless --target names a running
server, then runs C concurrent callers for a fixed number of calls each: first Embed of the questions'
texts (what the encoder alone sustains), then Ask of the same questions. Prints QPS and p50/p99 latency.

Usage: python -m bench.ask_load [--clients 32] [--calls 20] [--target HOST:PORT --graph NAME --questions FILE]
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
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc

from bench.umls_qa import percentile, start_server, stop_server
from gnn.datasets import load_qa_file, load_umls_demo
from gnn.graph import KnowledgeGraph
from gnn.questions import generate_questions
from gnn.records import TripleRecord


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
        target = args.target
        if target is None:
            process, target, _ = start_server(Path(tmp))
        try:
            rows = []
            for call, requests in (("Embed", embed), ("Ask", ask)):
                asyncio.run(run_load(target, requests, call, args.clients, 2))  # warm-up
                seconds, latencies = asyncio.run(run_load(target, requests, call, args.clients, args.calls))
                rows.append(
                    (
                        call,
                        len(latencies) / seconds,
                        statistics.median(latencies),
                        percentile(latencies, 0.99),
                    )
                )
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


if __name__ == "__main__":
    main()
