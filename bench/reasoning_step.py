"""The reasoning step of `Ask` alone, on the batches a loaded service forms.

The in-process service answers the first ``--asks`` questions of each file with 32 concurrent callers, and
the batches its reasoning step receives are kept; each batch set is then answered again, ``--repeats``
times, on the service's compute thread (as the server runs it: torch's thread pool belongs to that thread)
and timed. The reasoning step covers the reasoner's forward, the answer head, the ranking, the evidence
walks and the touched-entity counts; linking and encoding are left out.

Usage: python -m bench.reasoning_step --data-dir DIR --graph metaqa --questions FILE [--questions FILE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from graphfuse.gnn.formats.datasets import load_qa_file
from graphfuse.server.cli.allocator import keep_freed_memory
from graphfuse.server.core.config import ServerConfig
from graphfuse.server.core.service import GraphService

CALLERS = 32


async def measure(data_dir: Path, graph: str, files: list[str], asks: int, repeats: int) -> list[str]:
    service = GraphService(ServerConfig(data_dir=data_dir, demo=False, port=0))
    reason = service.asks._reason  # noqa: SLF001 - the step measured
    captured: list = []

    def capture(state, questions):  # noqa: ANN001, ANN202
        captured.append((state, list(questions)))
        return reason(state, questions)

    service.asks._reason = capture  # noqa: SLF001 - before start: the batcher binds it then
    await service.start()
    rows = []
    try:
        for path in files:
            captured.clear()
            callers = asyncio.Semaphore(CALLERS)

            async def ask(example, callers: asyncio.Semaphore = callers) -> None:  # noqa: ANN001
                async with callers:
                    await service.ask(graph, example.question, list(example.topic_entities))

            await asyncio.gather(*(ask(e) for e in load_qa_file(path)[:asks]))
            batches = list(captured)
            questions = sum(len(b) for _, b in batches)

            def timed(batches: list = batches) -> float:
                started = time.perf_counter()
                for state, batch in batches:
                    reason(state, batch)
                return time.perf_counter() - started

            await service.on_compute(timed)  # a warm-up pass
            times = [await service.on_compute(timed) / questions * 1e3 for _ in range(repeats)]
            rows.append(
                f"| {path} | {len(batches)} | {questions} | {statistics.median(times):.2f} "
                f"| {min(times):.2f}-{max(times):.2f} |"
            )
    finally:
        await service.close()
    return rows


def main() -> None:
    keep_freed_memory()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="a server data directory")
    parser.add_argument("--graph", default="metaqa")
    parser.add_argument("--questions", action="append", required=True, help="question files (JSONL/MetaQA)")
    parser.add_argument("--asks", type=int, default=320, help="questions asked from each file")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.data_dir, args.graph, args.questions, args.asks, args.repeats))
    print(f"# reasoning step of Ask, graph {args.graph}, batches formed by {CALLERS} concurrent callers")
    print()
    print("| questions | batches | questions asked | reasoning ms per question (median) | range |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
