"""The demo graph end to end: start-up cold and warm, Hits@1 on generated questions, Ask latency over gRPC.

Starts a real `graphfuse serve` process on a fresh data directory (cold: demo graph stored and embedded),
stops it, starts it again on the same directory (warm: graph and name vectors read back), then asks
generated 1-, 2- and 3-hop questions through the real gRPC API, one caller at a time.

Usage: python -m bench.umls_qa [--questions 300] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.evaluation.qa_metrics import expected_calibration_error
from graphfuse.gnn.formats.datasets import load_umls_demo
from graphfuse.gnn.training.generated_questions import generate_questions
from graphfuse.server.client import Client

GRAPHFUSE = [sys.executable, "-m", "graphfuse.server.cli"]


def start_server(
    data_dir: Path, *flags: str, lines: list[str] | None = None
) -> tuple[subprocess.Popen, str, float]:
    """Start `graphfuse serve --port 0`; returns the process, its target and seconds until SERVING.

    ``lines`` collects what the server printed before it was ready (e.g. its metrics address)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [*GRAPHFUSE, "serve", "--port", "0", "--data-dir", str(data_dir), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert process.stdout is not None
    for line in process.stdout:
        if lines is not None:
            lines.append(line.strip())
        if match := re.search(r"graphfuse ready on (\S+)", line):
            return process, match.group(1), time.perf_counter() - started
    raise RuntimeError(f"server exited with {process.wait()} before it was ready")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=300, help="questions per hop count")
    parser.add_argument("--seed", type=int, default=1000)  # the reasoner was tuned on seeds 8-9
    args = parser.parse_args()

    records = load_umls_demo()
    graph = KnowledgeGraph(
        [r for r in records if not hasattr(r, "head")], [r for r in records if hasattr(r, "head")]
    )
    questions = {h: generate_questions(graph, args.questions, h, seed=args.seed + h) for h in (1, 2, 3)}

    with tempfile.TemporaryDirectory() as tmp:
        process, target, cold = start_server(Path(tmp))
        stop_server(process)
        process, target, warm = start_server(Path(tmp))
        try:
            rows = []
            latencies: list[float] = []
            with Client(target) as client:
                for hops, items in questions.items():
                    hits1 = hits5 = 0
                    confidences, correct = [], []
                    for item in items:
                        began = time.perf_counter()
                        response = client.ask(item.question, top_k=5)
                        latencies.append((time.perf_counter() - began) * 1000)
                        ranked = [a.entity_id for a in response.answers]
                        right = bool(ranked[:1]) and ranked[0] in item.answers
                        hits1 += right
                        hits5 += any(r in item.answers for r in ranked[:5])
                        confidences.append(response.answers[0].score if response.answers else 0.0)
                        correct.append(right)
                    ece = expected_calibration_error(confidences, correct)
                    rows.append((hops, len(items), hits1 / len(items), hits5 / len(items), ece))
        finally:
            stop_server(process)

    print(
        f"# graphfuse demo graph (UMLS, {graph.num_entities} entities, {graph.num_edges} triples), "
        "zero-shot reasoner"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print()
    print("| hops | questions | Hits@1 | Hits@5 | ECE of the top score |")
    print("|---:|---:|---:|---:|---:|")
    for hops, n, h1, h5, ece in rows:
        print(f"| {hops} | {n} | {h1:.3f} | {h5:.3f} | {ece:.3f} |")
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| start-up to SERVING, cold (empty data dir) | {cold:.2f} s |")
    print(f"| start-up to SERVING, warm (stored graph and vectors) | {warm:.2f} s |")
    print(
        f"| Ask latency p50 over gRPC, 1 caller ({len(latencies)} calls) "
        f"| {statistics.median(latencies):.2f} ms |"
    )
    print(f"| Ask latency p99 | {percentile(latencies, 0.99):.2f} ms |")
    print(f"| warm / cold start-up ratio | {warm / cold:.2f} |")


if __name__ == "__main__":
    main()
