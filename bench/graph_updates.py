"""Reads between updates: the sparse work of a reasoning batch on a graph that keeps changing.

Each round applies a batch of updates (new facts between known entities, a share of them retractions of
stored facts) and then reads the graph as one batch of questions does: the out-degree matrix and three hops
of question-weighted propagation (:func:`weighted_transition`, the trained reasoner's kernel) for B
questions, plus one zero-shot hop along a single relation. Three ways to keep the sparse matrices current,
each on its own copy of the same graph with the same updates, in one run:

- **rebuild**: every update invalidates the matrices and the next read rebuilds them (graphfuse before the
  delta, and what a read costs if nothing else is done);
- **delta, background merge**: reads use the merged matrices plus the delta (added edges in their own small
  matrices, retracted edges masked); once the delta passes its share of the graph, a merge snapshots the
  edges, builds on a second thread and swaps in at the next round, as the server does;
- **steady**: the same reads on the graph with no updates at all (the floor).

"read" is one round's read; "apply" is ``KnowledgeGraph.add`` of one round's updates. After the rounds the
delta graph's reads are checked against the rebuilt graph's (same propagation output).

Usage: python -m bench.graph_updates [--rounds 100] [--updates 200] [--retract-share 0.1] [--batch 8]
       [--entities 200000] [--edges 1000000] [--relations 20] [--skip-metaqa]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from bench.subgraph_speed import synthetic_graph
from graphfuse.gnn.data.graph import KnowledgeGraph, MergedEdges, MergeJob, merge_due_at
from graphfuse.gnn.data.records import Record, Retraction, TripleRecord
from graphfuse.gnn.formats.datasets import shared_data_dir
from graphfuse.gnn.formats.loaders import iter_records
from graphfuse.gnn.layers.transition import weighted_transition
from graphfuse.server.cli.allocator import keep_freed_memory

HOPS = 3


@dataclass
class Row:
    graph: str
    mode: str
    read_ms: list[float]
    apply_ms: list[float]
    merges: int
    max_delta: int


def copy_of(graph: KnowledgeGraph) -> KnowledgeGraph:
    return KnowledgeGraph.from_tensors(graph.entity_ids, graph.relation_ids, *graph.edges)


def update_rounds(graph: KnowledgeGraph, rounds: int, size: int, retract_share: float) -> list[list[Record]]:
    """Rounds of new facts between known entities, with a share retracting stored (or just added) facts."""
    rng = random.Random(0)
    heads, rels, tails = (column.tolist() for column in graph.edges)
    stored = list(zip(heads, rels, tails, strict=True))
    n, r = graph.num_entities, graph.num_relations
    ids, relations = graph.entity_ids, graph.relation_ids
    batches = []
    for _ in range(rounds):
        batch: list[Record] = []
        for _ in range(size):
            if rng.random() < retract_share and stored:
                h, rel, t = stored.pop(rng.randrange(len(stored)))
                batch.append(Retraction(ids[h], relations[rel], ids[t]))
            else:
                h, rel, t = rng.randrange(n), rng.randrange(r), rng.randrange(n)
                stored.append((h, rel, t))
                batch.append(TripleRecord(ids[h], relations[rel], ids[t]))
        batches.append(batch)
    return batches


def read(graph: KnowledgeGraph, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One batch's sparse work: out-degrees, three weighted hops, one single-relation hop."""
    graph.out_degree()
    for _ in range(HOPS):
        x = weighted_transition(x, weights, graph.stacked_transitions()).clamp_(max=1.0)
    graph.transition(0).apply(x[:, :1])
    return x


def run(
    name: str,
    mode: str,
    base: KnowledgeGraph,
    rounds: list[list[Record]],
    x: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[Row, KnowledgeGraph]:
    graph = copy_of(base)
    read(graph, x, weights)  # the first build, before the clock
    row = Row(name, mode, [], [], 0, 0)
    pool = ThreadPoolExecutor(1, thread_name_prefix="merge")
    pending: tuple[MergeJob, Future[MergedEdges]] | None = None
    for batch in rounds if mode != "steady" else [[] for _ in rounds]:
        started = time.perf_counter()
        graph.add(batch)
        row.apply_ms.append(1e3 * (time.perf_counter() - started))
        started = time.perf_counter()
        if mode == "rebuild":
            graph.merge()  # what the first read after any update used to do
        elif mode == "delta":
            if pending is not None and pending[1].done():
                graph.finish_merge(pending[0], pending[1].result())
                pending = None
            if pending is None and graph.merge_due():
                job = graph.start_merge()
                pending = (job, pool.submit(job.build))
        row.max_delta = max(row.max_delta, graph.delta_size)
        read(graph, x, weights)
        row.read_ms.append(1e3 * (time.perf_counter() - started))
    pool.shutdown()
    row.merges = graph.merges - 1
    return row, graph


def compare(name: str, base: KnowledgeGraph, args: argparse.Namespace) -> list[Row]:
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(base.num_entities, args.batch, generator=generator) < 1e-4).float()
    weights = torch.rand(args.batch, 2 * base.num_relations, generator=generator)
    rounds = update_rounds(base, args.rounds, args.updates, args.retract_share)
    print(
        f"{name}: {base.num_entities:,} entities, {base.num_edges:,} edges, {base.num_relations} relations; "
        f"{args.rounds} rounds of {args.updates} updates; a background merge is due at "
        f"{merge_due_at(base.num_edges):,} changed edges"
    )
    rows = []
    graphs = {}
    for mode in ("rebuild", "delta", "steady"):
        row, graphs[mode] = run(name, mode, base, rounds, x, weights)
        rows.append(row)
    same = torch.allclose(read(graphs["delta"], x, weights), read(copy_of(graphs["rebuild"]), x, weights))
    print(f"  delta reads equal a fresh build after the rounds: {same}")
    return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--updates", type=int, default=200, help="updates per round")
    parser.add_argument("--retract-share", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=8, help="questions per read")
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--relations", type=int, default=20)
    parser.add_argument("--skip-metaqa", action="store_true")
    args = parser.parse_args()
    print(
        f"cores: {os.cpu_count()} (torch threads {torch.get_num_threads()}), torch {torch.__version__}, "
        f"{platform.machine()}; reads of {args.batch} questions x {HOPS} hops"
    )
    rows = compare("synthetic", synthetic_graph(args.entities, args.edges, args.relations), args)
    if not args.skip_metaqa:
        metaqa = KnowledgeGraph([], list(iter_records(shared_data_dir() / "metaqa" / "kb.txt")))
        rows += compare("MetaQA", metaqa, args)
    print()
    print(
        "| graph | mode | read p50 ms | read p99 ms | apply p50 ms | merges | largest delta "
        "| read p50 vs rebuild |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rebuild: dict[str, float] = {}
    for row in rows:
        p50 = statistics.median(row.read_ms)
        rebuild.setdefault(row.graph, p50)
        print(
            f"| {row.graph} | {row.mode} | {p50:.1f} | {percentile(row.read_ms, 0.99):.1f} "
            f"| {statistics.median(row.apply_ms):.1f} | {row.merges} | {row.max_delta:,} "
            f"| {rebuild[row.graph] / p50:.1f}x |"
        )


if __name__ == "__main__":
    main()
