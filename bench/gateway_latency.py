"""What the HTTP/JSON gateway adds over gRPC for Ask, and how fast the explorer page loads, in one run.

Starts `graphfuse serve --http-port 0` (UMLS demo graph) on a fresh data directory. Every question is asked
once over gRPC first, so the encoder's cache is equally warm for both transports; then each question is
asked over gRPC and over HTTP (one persistent connection each, one caller, the order alternating per
question). Prints p50/p99 per transport and the difference. Then loads the explorer page in headless
Chromium (Debian's `chromium`) several times and prints the time to the load event and to a usable page
(graph list and statistics shown).

Usage: python -m bench.gateway_latency [--questions 300] [--page-loads 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

from bench.umls_qa import percentile, start_server, stop_server
from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import TripleRecord
from graphfuse.gnn.formats.datasets import load_umls_demo
from graphfuse.gnn.training.generated_questions import generate_questions
from graphfuse.server.client import Client


def http_ask(connection: http.client.HTTPConnection, question: str) -> float:
    start = time.perf_counter()
    connection.request("POST", "/v1/ask", json.dumps({"question": question, "topK": 5}))
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
    return elapsed


def grpc_ask(client: Client, question: str) -> float:
    start = time.perf_counter()
    client.ask(question, top_k=5)
    return time.perf_counter() - start


def page_loads(base: str, times: int) -> tuple[list[float], list[float]] | None:
    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    loaded, usable = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(times):
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(base + "/", wait_until="load")
            loaded.append(time.perf_counter() - start)
            page.wait_for_function("document.querySelector('#stats').textContent.includes('triples')")
            usable.append(time.perf_counter() - start)
            page.close()
        browser.close()
    return loaded, usable


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--page-loads", type=int, default=10)
    args = parser.parse_args()
    records = load_umls_demo()
    graph = KnowledgeGraph([], [r for r in records if isinstance(r, TripleRecord)])
    per_hop = max(1, args.questions // 2)
    questions = [q.question for h in (1, 2) for q in generate_questions(graph, per_hop, h, seed=700 + h)]

    with tempfile.TemporaryDirectory() as tmp:
        lines: list[str] = []
        process, target, _ = start_server(Path(tmp), "--http-port", "0", lines=lines)
        try:
            base = next(
                re.search(r"(http://\S+)/", line).group(1) for line in lines if "graphfuse http on" in line
            )
            host, port = base.removeprefix("http://").rsplit(":", 1)
            with Client(target, timeout=60) as client:
                connection = http.client.HTTPConnection(host, int(port), timeout=60)
                for question in questions:  # warm the caches, and both connections
                    grpc_ask(client, question)
                http_ask(connection, questions[0])
                over_grpc, over_http = [], []
                for i, question in enumerate(questions):
                    if i % 2:
                        over_http.append(http_ask(connection, question))
                        over_grpc.append(grpc_ask(client, question))
                    else:
                        over_grpc.append(grpc_ask(client, question))
                        over_http.append(http_ask(connection, question))
                connection.close()
            pages = page_loads(base, args.page_loads)
        finally:
            stop_server(process)

    def ms(values: list[float], q: float) -> float:
        return percentile(values, q) * 1e3

    print(
        f"# Ask over gRPC and over the HTTP/JSON gateway: UMLS demo, {len(questions)} questions, one caller"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        "client and server on one machine"
    )
    print()
    print("| transport | p50 ms | p99 ms |")
    print("|---|---:|---:|")
    print(f"| gRPC | {ms(over_grpc, 0.5):.1f} | {ms(over_grpc, 0.99):.1f} |")
    print(f"| HTTP/JSON | {ms(over_http, 0.5):.1f} | {ms(over_http, 0.99):.1f} |")
    print(
        f"| HTTP added | {ms(over_http, 0.5) - ms(over_grpc, 0.5):+.1f} "
        f"| {ms(over_http, 0.99) - ms(over_grpc, 0.99):+.1f} |"
    )
    print()
    if pages is None:
        print("Explorer page load: skipped (needs Debian package 'chromium')")
        return
    loaded, usable = pages
    print(f"Explorer page on localhost, headless Chromium, {len(loaded)} fresh pages:")
    print()
    print("| measure | p50 ms | max ms |")
    print("|---|---:|---:|")
    print(f"| load event | {ms(loaded, 0.5):.0f} | {max(loaded) * 1e3:.0f} |")
    print(f"| usable (graphs and statistics shown) | {ms(usable, 0.5):.0f} | {max(usable) * 1e3:.0f} |")


if __name__ == "__main__":
    main()
