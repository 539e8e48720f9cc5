"""The relational layers as PyG ``MessagePassing`` modules against the fused kernels called directly.

On each graph (the UMLS demo graph; a synthetic graph of about 1M edges), side by side in one run:

1. RelationPropagation: ``--hops`` hops of a block of ``--batch`` questions from one topic each (each hop
   hands the next its frontier and summary, as the reasoner does), inference mode (the fused CPU kernel).
   The layer's forward (PyG's ``propagate`` -> ``message_and_aggregate`` -> ``Frontier.move``) against
   :meth:`Frontier.move` called directly, and against the previous layer (a plain module that checked the
   weights and called ``Frontier.move``);
2. RelationalConv, ``--queries`` queries of dimension ``--dim``: its ``propagate`` against
   :func:`weighted_transition` called directly (the sum over edges alone), and the whole layer against the
   previous one (a plain module calling ``weighted_transition``, with the same parameters), in inference mode
   and as forward + backward.

Both sides of a row must give identical outputs (checked); they run by turns, in pairs (see :func:`paired`),
and the ratio is taken within each pair. The last column is PyG's per-edge path for reference (the same
layer on the graph as ``edge_index`` + ``edge_type``: ``message`` per edge, then the sum per target), which
the fused path replaces.

Usage: python -m bench.layer_kernels [--seconds 10] [--entities 100000] [--edges 1000000]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_geometric
from torch import Tensor, nn

from bench.reasoner_speed import timed
from bench.subgraph_speed import synthetic_graph
from graphfuse.gnn.data.graph import KnowledgeGraph, StackedTransitions
from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.formats.datasets import load_umls_demo
from graphfuse.gnn.layers import RelationalConv, RelationPropagation, weighted_transition
from graphfuse.gnn.layers.transition import Cells, Frontier
from graphfuse.server.cli.allocator import keep_freed_memory

LIVE_MASS = 0.01  # the reasoner's default threshold (QuestionReasonerConfig.live_mass)
MIN_PAIRS, MAX_PAIRS = 20, 2000  # timed pairs of runs per row
PER_EDGE_RUNS = 3


@dataclass
class Ratio:
    """Quartiles of the layer's time over the time of what it is compared with, pair by pair."""

    low: float
    median: float
    high: float


@dataclass
class Row:
    measure: str
    against: str  # what the layer is compared with
    direct: float  # seconds, median
    layer: float
    ratio: Ratio
    per_edge: float | None = None


class PreviousRelationPropagation(nn.Module):
    """RelationPropagation before it was a ``MessagePassing``: a module calling :meth:`Frontier.move`."""

    def forward(
        self, graph: KnowledgeGraph, frontier: Frontier, weights: Tensor, exclude: Cells, last: bool
    ) -> Frontier:
        if weights.shape != (frontier.mass.shape[1], 2 * graph.num_relations):
            raise ValueError(f"Expected 'weights' of shape (B, 2R) (got {tuple(weights.shape)})")
        return frontier.move(
            weights,
            graph.stacked_transitions(),
            cap=1.0,
            exclude=exclude,
            last=last,
            degree=graph.out_degree(),
        )


class PreviousRelationalConv(nn.Module):
    """RelationalConv before it was a ``MessagePassing``: a module calling :func:`weighted_transition`, with
    the parameters of ``conv``."""

    def __init__(self, conv: RelationalConv) -> None:
        super().__init__()
        self.linear, self.norm = conv.linear, conv.norm

    def forward(
        self, stacked: StackedTransitions, h: Tensor, relation: Tensor, boundary: Tensor, degree: Tensor
    ) -> Tensor:
        n, b, d = h.shape
        weights = relation.permute(0, 2, 1).reshape(b * d, -1)  # (B*d, 2R)
        summed = weighted_transition(h.reshape(n, b * d), weights, stacked).view(n, b, d)
        mean = (summed + boundary) / (degree + 1).view(n, 1, 1)
        log_degree = torch.log(degree + 2)
        amplify = (log_degree / log_degree.mean().clamp(min=math.log(2))).view(n, 1, 1)
        update = self.linear(torch.cat([h, mean, mean * amplify], dim=-1))
        return torch.relu(self.norm(update))


def paired(
    direct: Callable[[], object], layer: Callable[[], object], seconds: float
) -> tuple[float, float, Ratio]:
    """Median seconds of ``direct()`` and ``layer()`` over pairs of runs, one of each back to back (in
    turns first), for about ``seconds`` (:data:`MIN_PAIRS` to :data:`MAX_PAIRS` pairs) after a warm-up pair;
    and the quartiles of the ratio within each pair. Both sides do the same work on the same data, so running
    them by turns leaves neither colder than the other, while the load of this shared machine, which moves
    on a scale of milliseconds to seconds, reaches a pair's two runs alike: the ratio within a pair is far
    steadier than a ratio of two separate medians."""
    direct(), layer()
    times: dict[str, list[float]] = {"direct": [], "layer": []}
    order = [("direct", direct), ("layer", layer)]
    started_all = time.perf_counter()
    pairs = 0
    while pairs < MIN_PAIRS or (pairs < MAX_PAIRS and time.perf_counter() - started_all < seconds):
        for name, fn in order if pairs % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
        pairs += 1
    ratios = [lay / run for run, lay in zip(times["direct"], times["layer"], strict=True)]
    low, mid, high = statistics.quantiles(ratios, n=4)
    return statistics.median(times["direct"]), statistics.median(times["layer"]), Ratio(low, mid, high)


def compare(
    direct: Callable[[], Tensor],
    layer: Callable[[], Tensor],
    seconds: float,
    per_edge: Callable[[], Tensor] | None = None,
) -> tuple[float, float, Ratio, float | None]:
    """:func:`paired` timings of the two sides (identical outputs checked), and the per-edge path's median
    over :data:`PER_EDGE_RUNS` runs."""
    if not torch.equal(direct(), layer()):
        raise AssertionError("the layer's output differs from the direct call's")
    edge_time = timed(per_edge, PER_EDGE_RUNS) if per_edge is not None else None
    return (*paired(direct, layer, seconds), edge_time)


def measure(graph: KnowledgeGraph, args: argparse.Namespace) -> list[Row]:
    generator = torch.Generator().manual_seed(0)
    n, r, b = graph.num_entities, graph.num_relations, args.batch
    graph.prepare()  # the layouts the kernels read, built before the timing
    stacked = graph.stacked_transitions()
    heads, rels, tails = graph.edges
    edge_index = torch.stack([heads, tails])
    rows = []

    # RelationPropagation: hops of a block of questions from their topics
    topics = torch.randint(0, n, (b,), generator=generator)
    mass = torch.zeros(n, b)
    mass[topics, torch.arange(b)] = 1.0
    weights = [torch.softmax(3 * torch.randn(b, 2 * r, generator=generator), -1) for _ in range(args.hops)]
    propagation = RelationPropagation()

    def hops(move: Callable[[Frontier, Tensor, Cells, bool], Frontier]) -> Callable[[], Tensor]:
        @torch.inference_mode()
        def run() -> Tensor:
            frontier, cells = Frontier.start(mass, LIVE_MASS, (topics, torch.arange(b)))
            for t, w in enumerate(weights):
                frontier = move(frontier, w, cells, t == args.hops - 1)
            return frontier.mass

        return run

    direct_hops = hops(
        lambda frontier, w, cells, last: frontier.move(
            w, graph.stacked_transitions(), cap=1.0, exclude=cells, last=last, degree=graph.out_degree()
        )
    )
    previous = PreviousRelationPropagation()
    previous_hops = hops(lambda frontier, w, cells, last: previous(graph, frontier, w, cells, last))
    layer_hops = hops(
        lambda frontier, w, cells, last: propagation(graph, frontier, w, exclude=cells, last=last)
    )
    edge_hops = hops(
        lambda frontier, w, cells, last: propagation(edge_index, frontier, w, exclude=cells, edge_type=rels)
    )
    measured = f"RelationPropagation, {args.hops} hops x {b} questions, inference"
    times = compare(direct_hops, layer_hops, args.seconds, edge_hops)
    rows.append(Row(measured, "Frontier.move called directly", *times))
    times = compare(previous_hops, layer_hops, args.seconds)
    rows.append(Row(measured, "previous layer (a module calling Frontier.move)", *times))

    # RelationalConv: B queries of dimension d
    q, d = args.queries, args.dim
    conv = RelationalConv(d)
    h = torch.randn(n, q, d, generator=generator)
    boundary = torch.randn(n, q, d, generator=generator)
    relation = torch.randn(q, 2 * r, d, generator=generator)
    in_degree = torch.rand(n, generator=generator) * 5

    @torch.no_grad()
    def direct_sum() -> Tensor:
        weights = relation.permute(0, 2, 1).reshape(q * d, -1)
        return weighted_transition(h.reshape(n, q * d), weights, stacked).view(n, q, d)

    @torch.no_grad()
    def layer_sum() -> Tensor:
        return conv.propagate(
            stacked.matrix,
            x=h,
            relation=relation,
            stacked=stacked,
            values=None,
            edge_type=None,
            edge_weight=None,
        )

    times = compare(direct_sum, layer_sum, args.seconds)
    rows.append(
        Row(
            f"RelationalConv's sum over edges ({q} queries x {d}), inference",
            "weighted_transition called directly (vs propagate)",
            *times,
        )
    )
    previous_conv = PreviousRelationalConv(conv)

    @torch.no_grad()
    def direct_conv() -> Tensor:
        return previous_conv(stacked, h, relation, boundary, in_degree)

    @torch.no_grad()
    def layer_conv() -> Tensor:
        return conv(stacked, h, relation, boundary, in_degree)

    @torch.no_grad()
    def edge_conv() -> Tensor:
        return conv(edge_index, h, relation, boundary, in_degree, edge_type=rels)

    times = compare(direct_conv, layer_conv, args.seconds, edge_conv)
    previous_name = "previous layer (a module calling weighted_transition)"
    rows.append(Row(f"RelationalConv ({q} queries x {d}), inference", previous_name, *times))

    def backward(
        forward: Callable[..., Tensor], graph_input: object, **kwargs: Tensor
    ) -> Callable[[], Tensor]:
        """Forward and backward of ``forward``; returns the gradients of the states and relation vectors."""

        def run() -> Tensor:
            states, vectors = h.clone().requires_grad_(), relation.clone().requires_grad_()
            forward(graph_input, states, vectors, boundary, in_degree, **kwargs).sum().backward()
            return torch.cat([states.grad.flatten(), vectors.grad.flatten()])

        return run

    times = compare(
        backward(previous_conv, stacked),
        backward(conv, stacked),
        args.seconds,
        backward(conv, edge_index, edge_type=rels),
    )
    rows.append(Row(f"RelationalConv ({q} queries x {d}), forward + backward", previous_name, *times))
    return rows


def umls_graph() -> KnowledgeGraph:
    records = load_umls_demo()
    entities = [r for r in records if isinstance(r, EntityRecord)]
    return KnowledgeGraph(entities, [r for r in records if isinstance(r, TripleRecord)])


def main() -> None:
    keep_freed_memory()  # as every graphfuse command does (server/allocator.py)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="timing budget of each row")
    parser.add_argument("--batch", type=int, default=64, help="questions moved by RelationPropagation")
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--queries", type=int, default=4, help="queries of RelationalConv")
    parser.add_argument("--dim", type=int, default=32, help="RelationalConv's state size")
    parser.add_argument("--entities", type=int, default=100_000, help="of the synthetic graph")
    parser.add_argument("--edges", type=int, default=1_000_000, help="of the synthetic graph (drawn)")
    parser.add_argument("--relations", type=int, default=50, help="of the synthetic graph")
    args = parser.parse_args()

    graphs = {
        "UMLS demo": umls_graph(),
        "synthetic": synthetic_graph(args.entities, args.edges, args.relations),
    }
    print(
        f"# bench.layer_kernels: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, torch_geometric "
        f"{torch_geometric.__version__}; pairs of runs for {args.seconds:g} s per row"
    )
    for name, graph in graphs.items():
        print(
            f"# {name}: {graph.num_entities:,} entities, {graph.num_relations} relations, "
            f"{graph.num_edges:,} edges ({2 * graph.num_edges:,} with inverses)"
        )
    print()
    print(
        "| graph | measure | layer compared with | its time | MessagePassing layer | layer / it, median "
        "(quartiles) | per-edge path |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    for name, graph in graphs.items():
        for row in measure(graph, args):
            per_edge = f"{row.per_edge * 1e3:.2f} ms" if row.per_edge is not None else ""
            print(
                f"| {name} | {row.measure} | {row.against} | {row.direct * 1e3:.3f} ms "
                f"| {row.layer * 1e3:.3f} ms "
                f"| {row.ratio.median:.3f} ({row.ratio.low:.3f}-{row.ratio.high:.3f}) | {per_edge} |"
            )


if __name__ == "__main__":
    main()
