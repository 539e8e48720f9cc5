"""Link prediction: filtered MRR on the packaged graphs beside published numbers, Lookup latency over gRPC,
and the per-query cost of batched prediction on a large synthetic graph.

One run on one machine:
1. UMLS, Kinships and Nations (pykeen's splits, read from the installed wheel): train on train, calibrate on
   valid, rank test triples in both directions by the filtered protocol; printed beside ConvE and RED-GNN.
2. A real `graphfuse serve` process on the UMLS demo graph with the UMLS model of step 1 as its link
   predictor: Lookup (head, relation) with inference and explanations, one caller, p50/p99; the same
   lookups with facts only, in the same run.
3. A random graph of 100k entities and 1M edges: an untrained predictor of the same size scores every
   entity for B queries at once; the per-query cost against B = 1, and against the bare sparse products.

Usage: python -m bench.link_prediction [--datasets umls,kinships,nations] [--epochs 10] [--lookups 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.reasoner_speed import timed
from bench.umls_qa import percentile, start_server, stop_server
from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.formats.datasets import load_pykeen_triples
from graphfuse.gnn.layers import weighted_transition
from graphfuse.gnn.models.link_predictor import LinkEnsemble, LinkPredictor, LinkPredictorConfig
from graphfuse.gnn.training.link_predictor import (
    KnownAnswers,
    LinkTrainConfig,
    both_directions,
    calibrate,
    filtered_ranks,
    link_metrics,
    train_link_predictor,
)
from graphfuse.server.client import Client
from graphfuse.server.jobs.link_training import index_triples
from graphfuse.server.storage.checkpoints import checkpoint_path, save_checkpoint

PUBLISHED = {  # filtered MRR: ConvE (Dettmers et al. 2018), RED-GNN (Zhang & Yao 2022)
    "umls": {"ConvE": 0.94, "RED-GNN": 0.964},
    "kinships": {"ConvE": 0.83},
    "nations": {"ConvE": 0.82},
}


def packaged(name: str) -> tuple[KnowledgeGraph, dict[str, torch.Tensor]]:
    splits = {s: load_pykeen_triples(name, s) for s in ("train", "valid", "test")}
    entities = sorted({e for part in splits.values() for t in part for e in (t.head, t.tail)})
    graph = KnowledgeGraph([EntityRecord(e) for e in entities], splits["train"])
    return graph, {s: index_triples(graph, part)[0] for s, part in splits.items()}


def accuracy(
    name: str, config: LinkTrainConfig, ensemble: int = 1
) -> tuple[dict, LinkPredictor | LinkEnsemble, KnowledgeGraph]:
    graph, split = packaged(name)
    started = time.perf_counter()
    members = [
        train_link_predictor(
            graph, split["train"], dataclasses.replace(config, seed=config.seed + i), valid=split["valid"]
        )
        for i in range(ensemble)
    ]
    model = members[0] if ensemble == 1 else LinkEnsemble(members)
    seconds = time.perf_counter() - started
    known = KnownAnswers(split.values(), graph.num_relations)
    stacked = graph.stacked_transitions()

    def score(e: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return model(stacked, graph.num_entities, e, d)

    with torch.no_grad():
        calibrate(
            model, score, both_directions(split["valid"], graph.num_relations), known, graph.num_entities
        )
        test = both_directions(split["test"], graph.num_relations)
        metrics = link_metrics(filtered_ranks(score, test, known, graph.num_entities))
    row = {"graph": graph, "metrics": metrics, "seconds": seconds, "train": split["train"].shape[0]}
    return row, model, graph


def lookup_latency(model: LinkPredictor, graph: KnowledgeGraph, calls: int) -> dict[str, list[float]]:
    test = load_pykeen_triples("umls", "test")
    rng = random.Random(0)
    queries = [(t.head, t.relation) for t in rng.sample(test, min(calls, len(test)))]
    modes = {
        "facts + inferred (top 10 each, with evidence)": {},
        "facts + inferred (top 10 each, no_evidence)": {"no_evidence": True},
        "facts only": {"facts_only": True},
    }
    times: dict[str, list[float]] = {label: [] for label in modes}
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"description": "bench", "relation_ids": graph.relation_ids}
        save_checkpoint(checkpoint_path(Path(tmp), "umls", "link"), model, meta)
        process, target, _ = start_server(Path(tmp))
        try:
            with Client(target) as client:
                assert client.graph_info("umls").link_predictor == "bench"
                for head, relation in queries[:5]:  # warm-up
                    client.lookup("umls", head=head, relation=relation)
                for head, relation in queries:
                    for label, flags in modes.items():
                        began = time.perf_counter()
                        client.lookup("umls", head=head, relation=relation, top_k=10, **flags)
                        times[label].append((time.perf_counter() - began) * 1000)
        finally:
            stop_server(process)
    return times


def synthetic(entities: int, edges: int, relations: int, seed: int = 0) -> KnowledgeGraph:
    generator = torch.Generator().manual_seed(seed)
    heads = torch.randint(0, entities, (edges,), generator=generator).tolist()
    tails = torch.randint(0, entities, (edges,), generator=generator).tolist()
    rels = torch.randint(0, relations, (edges,), generator=generator).tolist()
    records = [EntityRecord(f"e{i}") for i in range(entities)]
    records += [TripleRecord(f"e{h}", f"r{r}", f"e{t}") for h, r, t in zip(heads, rels, tails, strict=True)]
    return KnowledgeGraph(records[:entities], records[entities:])


def batched_cost(graph: KnowledgeGraph, batches: list[int], repeats: int) -> list[tuple[int, float, float]]:
    """``(B, seconds per query of the model, seconds per query of its bare sparse products)``."""
    config = LinkPredictorConfig(graph.num_relations)
    model = LinkPredictor(config).eval()
    stacked = graph.stacked_transitions()
    generator = torch.Generator().manual_seed(1)
    rows = []
    for b in batches:
        heads = torch.randint(0, graph.num_entities, (b,), generator=generator)
        directions = torch.randint(0, 2 * graph.num_relations, (b,), generator=generator)
        x = torch.randn(graph.num_entities, b * config.dim)
        weights = torch.randn(b * config.dim, 2 * graph.num_relations)

        def model_pass(heads: torch.Tensor = heads, directions: torch.Tensor = directions) -> None:
            with torch.no_grad():
                model(stacked, graph.num_entities, heads, directions)

        def sparse_only(x: torch.Tensor = x, weights: torch.Tensor = weights) -> None:
            with torch.no_grad():
                for _ in range(config.layers):
                    weighted_transition(x, weights, stacked)

        rows.append((b, timed(model_pass, repeats) / b, timed(sparse_only, repeats) / b))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="umls,kinships,nations")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--relations", type=int, default=10)
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ensemble",
        default="",
        help="predictors per graph scoring together, e.g. nations=6 (default 1 each)",
    )
    args = parser.parse_args()
    ensembles = {k: int(v) for k, v in (part.split("=") for part in args.ensemble.split(",") if part)}
    torch.manual_seed(0)

    rows, umls = {}, None
    for name in args.datasets.split(","):
        rows[name], model, graph = accuracy(name, LinkTrainConfig(epochs=args.epochs), ensembles.get(name, 1))
        rows[name]["ensemble"] = ensembles.get(name, 1)
        if name == "umls":
            umls = (model, graph)
    latency = lookup_latency(*umls, args.lookups) if umls and args.lookups else {}
    big = synthetic(args.entities, args.edges, args.relations)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cost = batched_cost(big, [int(b) for b in args.batches.split(",")], args.repeats)
    peak_mib = max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024

    print("# graphfuse link prediction (NBFNet-style LinkPredictor, 6 layers, 32-d)")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.epochs} epochs"
    )
    print()
    print(
        "| graph | predictors | entities | train triples | test queries | MRR | Hits@1 | Hits@3 | Hits@10 "
        "| train s | published MRR |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in rows.items():
        m, g = r["metrics"], r["graph"]
        published = ", ".join(f"{k} {v:.3f}" for k, v in PUBLISHED.get(name, {}).items())
        print(
            f"| {name} | {r['ensemble']} | {g.num_entities} | {r['train']} | {m.queries} | {m.mrr:.3f} "
            f"| {m.hits_at_1:.3f} | {m.hits_at_3:.3f} | {m.hits_at_10:.3f} | {r['seconds']:.0f} "
            f"| {published} |"
        )
    if latency:
        print()
        print("| Lookup over gRPC on the UMLS demo graph, 1 caller | calls | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|")
        for label, values in latency.items():
            p50, p99 = statistics.median(values), percentile(values, 0.99)
            print(f"| {label} | {len(values)} | {p50:.2f} | {p99:.2f} |")
    print()
    print(
        f"| batched prediction, {big.num_entities} entities, {big.num_edges} edges ({2 * big.num_edges} with "
        "inverses) | ms per query | bare sparse products, ms per query | model / sparse | vs B = 1 |"
    )
    print("|---|---:|---:|---:|---:|")
    single = cost[0][1]
    for b, per_query, sparse in cost:
        print(
            f"| B = {b} | {per_query * 1000:.1f} | {sparse * 1000:.1f} | {per_query / sparse:.2f} "
            f"| {single / per_query:.2f}x |"
        )
    print(f"\npeak resident memory {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
