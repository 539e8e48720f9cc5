"""A batch of 3-hop questions on the whole graph vs on its capped subgraph, extraction included.

One run, two graphs: a synthetic graph (1M entities, 5M edges, power-law degrees, 10 relations, built from
tensors with a fixed seed) and MetaQA's knowledge base. Each batch is B questions with random topic entities
(with at least one edge) and random normalised question and relation vectors, answered by an untrained
:class:`QuestionReasoner` through :class:`TrainedReasoner` (scores, top-10, evidence), first on the whole
graph (its sparse indexes built beforehand: a one-time cost, printed) and then on the subgraph that
:func:`graphfuse.gnn.inference.subgraph.capped_subgraph` keeps for each cap, its steps timed one by one. A
capped run pays for selecting the entities ("select": walk and ranking), building the induced subgraph and its
sparse indexes ("build"), and reasoning with the answers mapped back to global indices ("reason"); its answers
are mapped back to global indices and compared with the whole graph's top-10 ("top-10 kept": the share of the
whole graph's top-10 answers that the capped run also returns in its top-10; "in subgraph": the share that the
subgraph contains at all; "walk edges": the edges the selection walk followed). Subgraphs are built even
when the default ``whole_graph_fraction`` would fall back to the whole graph; the "default" column says which
``reason_capped`` would run on.

A second table shows that selection work follows the edges walked, not the graph: the same seeds in a 100k
entity graph, and in that graph with the synthetic one beside it, disconnected (11x the edges).

Usage: python -m bench.subgraph_speed [--batch 64] [--caps 2000 20000] [--entities 1000000]
       [--edges 5000000] [--relations 10] [--repeats 1] [--skip-metaqa] [--skip-scaling]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.nn.functional as F

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.formats.datasets import shared_data_dir
from graphfuse.gnn.formats.loaders import iter_records
from graphfuse.gnn.inference.reasoner import Question, Reasoning, TrainedReasoner
from graphfuse.gnn.inference.subgraph import CappedSubgraph, SubgraphConfig, select_entities
from graphfuse.gnn.models.question_reasoner import QuestionReasoner
from graphfuse.server.cli.allocator import keep_freed_memory

T = TypeVar("T")
TEXT_DIM = 384


def synthetic_graph(
    num_entities: int, num_edges: int, num_relations: int, seed: int = 0, exponent: float = 0.7
) -> KnowledgeGraph:
    """Heads and tails drawn from Zipf-like popularities ``rank^-exponent`` (hubs of ~0.5 % of the edges,
    most entities with a few), each end under its own random labelling; relation ``r`` drawn with weight
    ``1 / (r + 1)``. Repeated triples are stored once, so there are a few fewer edges than drawn."""
    generator = torch.Generator().manual_seed(seed)
    popularity = torch.cumsum(torch.arange(1, num_entities + 1, dtype=torch.float64) ** -exponent, 0)
    popularity /= popularity[-1].clone()

    def draw() -> torch.Tensor:
        u = torch.rand(num_edges, generator=generator, dtype=torch.float64)
        return torch.searchsorted(popularity, u).clamp_(max=num_entities - 1)

    head_label = torch.randperm(num_entities, generator=generator)
    tail_label = torch.randperm(num_entities, generator=generator)
    heads, tails = head_label[draw()], tail_label[draw()]
    weights = 1.0 / torch.arange(1, num_relations + 1, dtype=torch.float64)
    relations = torch.multinomial(weights, num_edges, replacement=True, generator=generator)
    return KnowledgeGraph.from_tensors(
        [f"e{i}" for i in range(num_entities)],
        [f"relation_{r}" for r in range(num_relations)],
        heads,
        relations,
        tails,
    )


def timed(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Median seconds of ``fn()`` over ``repeats`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


@dataclass
class Row:
    graph: str
    run: str
    entities: int
    edges: int
    select_s: float
    build_s: float
    reason_s: float
    kept: float  # share of the whole graph's top-10 answers in this run's top-10
    inside: float  # share of the whole graph's top-10 answers in the subgraph
    default: str  # what SubgraphConfig's default whole_graph_fraction would run on
    walked: int  # edges the selection's walk followed

    @property
    def total_s(self) -> float:
        return self.select_s + self.build_s + self.reason_s


def batch(
    graph: KnowledgeGraph, size: int, tokens: bool, seed: int = 1
) -> tuple[torch.Tensor, list[Question]]:
    """Relation vectors and ``size`` questions with random topics among the entities that have an edge."""
    generator = torch.Generator().manual_seed(seed)
    relation_vectors = F.normalize(torch.randn(graph.num_relations, TEXT_DIM, generator=generator), dim=1)
    heads, _, tails = graph.edges
    linked = torch.unique(torch.cat([heads, tails]))
    topics = linked[torch.randint(linked.numel(), (size,), generator=generator)].tolist()
    vectors = F.normalize(torch.randn(size, TEXT_DIM, generator=generator), dim=1)
    questions = [Question(vectors[b], ((topics[b], 1.0),), 10, 3) for b in range(size)]
    if tokens:  # a reasoner that attends over the question's words gets random token states
        questions = [
            dataclasses.replace(q, tokens=F.normalize(torch.randn(12, TEXT_DIM, generator=generator), dim=1))
            for q in questions
        ]
    return relation_vectors, questions


def top(results: list[Reasoning]) -> list[set[int]]:
    return [{a.entity for a in r.answers[:10]} for r in results]


def compare(name: str, graph: KnowledgeGraph, caps: list[int], size: int, repeats: int) -> list[Row]:
    started = time.perf_counter()
    graph.stacked_transitions()
    graph.out_degree()
    print(f"{name}: {graph}; sparse indexes built once in {time.perf_counter() - started:.1f} s")
    reasoner = TrainedReasoner(QuestionReasoner())
    relation_vectors, questions = batch(graph, size, getattr(reasoner, "wants_token_states", False))
    seeds = [[e for e, _ in q.topics] for q in questions]
    seconds, whole = timed(lambda: reasoner.reason(graph, relation_vectors, questions), repeats)
    expected = top(whole)
    answers = sum(len(s) for s in expected) or 1
    rows = [Row(name, "whole graph", graph.num_entities, graph.num_edges, 0.0, 0.0, seconds, 1.0, 1.0, "", 0)]
    default_fraction = SubgraphConfig().whole_graph_fraction
    for cap in caps:
        # The steps of capped_subgraph, timed one by one.
        config = SubgraphConfig(max_entities=cap, hops=3)
        select_s, (entities, found) = timed(
            lambda config=config: select_entities(graph, seeds, config), repeats
        )

        def build(entities: torch.Tensor = entities) -> CappedSubgraph:
            sub = CappedSubgraph(graph.subgraph(entities), entities)
            sub.graph.stacked_transitions()  # built by the first propagation anyway
            sub.graph.out_degree()
            return sub

        build_s, sub = timed(build, repeats)
        local_questions = [sub.question(q) for q in questions]
        reason_s, results = timed(
            lambda sub=sub, local_questions=local_questions: [
                sub.reasoning(r) for r in reasoner.reason(sub.graph, relation_vectors, local_questions)
            ],
            repeats,
        )
        inside = set(entities.tolist())
        fraction = entities.numel() / graph.num_entities
        rows.append(
            Row(
                name,
                f"cap {cap:,}",
                sub.graph.num_entities,
                sub.graph.num_edges,
                select_s,
                build_s,
                reason_s,
                sum(len(e & g) for e, g in zip(expected, top(results), strict=True)) / answers,
                sum(len(e & inside) for e in expected) / answers,
                "whole graph" if fraction > default_fraction else "subgraph",
                found.followed_edges if found is not None else 0,
            )
        )
    return rows


def selection_scaling(big: KnowledgeGraph, size: int, repeats: int) -> None:
    """Selection work follows the edges walked, not the graph: the same seeds in a small graph, and in that
    graph with ``big`` beside it (disconnected), walk the same edges in about the same time."""
    small = synthetic_graph(100_000, 500_000, big.num_relations, seed=2)
    started = time.perf_counter()
    columns = [
        torch.cat([a, b + offset])
        for a, b, offset in zip(
            small.edges, big.edges, (small.num_entities, 0, small.num_entities), strict=True
        )
    ]
    union = KnowledgeGraph.from_tensors(
        [f"s{i}" for i in range(small.num_entities)] + big.entity_ids, big.relation_ids, *columns
    )
    union.stacked_transitions()
    seconds = time.perf_counter() - started
    print(f"\nsmall graph beside the synthetic one: {union}, built with its indexes in {seconds:.1f} s")
    _, questions = batch(small, size, False, seed=3)
    seeds = [[e for e, _ in q.topics] for q in questions]
    settings = [
        ("cap 2,000, default walk budget", SubgraphConfig(max_entities=2000)),
        ("exact 2-hop neighbourhoods", SubgraphConfig(max_entities=2000, hops=2, max_edges=0)),
    ]
    print()
    print("| selection | graph | entities | edges | kept | walk edges | select s | Medges/s walked |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, config in settings:
        for name, graph in (("small", small), ("small + synthetic", union)):
            graph.stacked_transitions()
            seconds, (entities, found) = timed(
                lambda graph=graph, config=config: select_entities(graph, seeds, config), repeats
            )
            print(
                f"| {label} | {name} | {graph.num_entities:,} | {graph.num_edges:,} | {entities.numel():,} "
                f"| {found.followed_edges:,} | {seconds:.2f} | {found.followed_edges / seconds / 1e6:.1f} |"
            )


def main() -> None:
    keep_freed_memory()  # as every graphfuse command does (server/allocator.py)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--caps", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--edges", type=int, default=5_000_000)
    parser.add_argument("--relations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-metaqa", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true", help="skip the selection-cost-vs-size table")
    args = parser.parse_args()

    print(
        f"cores: {os.cpu_count()} (torch threads {torch.get_num_threads()}), torch {torch.__version__}, "
        f"{platform.machine()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        f"batch {args.batch} questions, 3 hops, untrained QuestionReasoner, repeats {args.repeats}"
    )
    rows: list[Row] = []
    started = time.perf_counter()
    graph = synthetic_graph(args.entities, args.edges, args.relations)
    print(f"synthetic graph built from tensors in {time.perf_counter() - started:.1f} s")
    rows += compare("synthetic", graph, args.caps, args.batch, args.repeats)
    if not args.skip_metaqa:
        started = time.perf_counter()
        metaqa = KnowledgeGraph([], list(iter_records(shared_data_dir() / "metaqa" / "kb.txt")))
        print(f"MetaQA graph loaded from records in {time.perf_counter() - started:.1f} s")
        rows += compare("MetaQA", metaqa, args.caps, args.batch, args.repeats)

    print()
    print(
        "| graph | run | entities | edges | select s | build s | reason s | total s | speed-up "
        "| top-10 kept | in subgraph | walk edges | default |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    whole_total = {}
    for row in rows:
        whole_total.setdefault(row.graph, row.total_s)
        print(
            f"| {row.graph} | {row.run} | {row.entities:,} | {row.edges:,} | {row.select_s:.2f} "
            f"| {row.build_s:.2f} | {row.reason_s:.2f} | {row.total_s:.2f} "
            f"| {whole_total[row.graph] / row.total_s:.1f}x | {row.kept:.0%} | {row.inside:.0%} "
            f"| {row.walked:,} | {row.default} |"
        )
    if not args.skip_scaling:
        selection_scaling(graph, args.batch, args.repeats)


if __name__ == "__main__":
    main()
