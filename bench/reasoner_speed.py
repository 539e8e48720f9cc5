"""Batched question reasoning on MetaQA's knowledge base: model vs bare sparse products, batch vs one.

One run on one machine:
1. the bare sparse work of 3 hops for a block of B questions (every direction's transition applied and
   weighted per question by the relation weights the model gives it at that hop, summed into entities, per
   hop), computed twice: with torch's CSR product (the
   stacked product, each direction's rows scaled, the rows summed into entities) and with graphfuse's fused
   CPU kernel (``gnn/cpu_kernels.py``, what the model runs); against the full QuestionReasoner
   forward for the same B questions (instructions, attention over the question's words, relation softmax
   over live relations, propagation, hop mixing): the ratios are the model's overhead;
2. B questions one at a time against the same B questions as one batch: the per-question cost ratio.

The fused products and the forward take turns in rounds of runs in a row (see :func:`timed_side_by_side`),
so that the machine's drift over the run reaches both alike.

Usage: python -m bench.reasoner_speed [--batch 64] [--repeats 5] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.formats.datasets import shared_data_dir
from graphfuse.gnn.formats.loaders import iter_records
from graphfuse.gnn.kernels import cpu as cpu_kernels
from graphfuse.gnn.layers.transition import Frontier, fused_transition, weighted_transition
from graphfuse.gnn.models.question_reasoner import QuestionReasoner
from graphfuse.gnn.training.question_reasoner import topic_block
from graphfuse.server.cli.allocator import keep_freed_memory
from graphfuse.server.storage.checkpoints import load_checkpoint


def timed(fn, repeats: int) -> float:  # noqa: ANN001
    """Median seconds of ``fn()`` over ``repeats`` runs (after one warm-up run)."""
    return timed_side_by_side({"fn": fn}, repeats, rounds=1)["fn"]


def timed_side_by_side(fns: dict[str, Callable[[], None]], repeats: int, rounds: int = 3) -> dict[str, float]:
    """Median seconds of each of ``fns`` over ``rounds`` rounds of ``repeats`` runs each; in a round each
    function runs ``repeats + 1`` times in a row, the first untimed, so that every timed run follows a run of
    the same function (its steady state in a loop), while the rounds take turns so that the machine's drift
    over the run (up to 2x here) reaches every function alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            for _ in range(repeats):
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    keep_freed_memory()  # as every graphfuse command does (server/allocator.py)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="a trained reasoner (default: untrained)"
    )
    args = parser.parse_args()

    graph = KnowledgeGraph([], list(iter_records(shared_data_dir() / "metaqa" / "kb.txt")))
    model = load_checkpoint(args.checkpoint)[0] if args.checkpoint else QuestionReasoner().eval()
    hops = model.config.hops
    generator = torch.Generator().manual_seed(0)
    relation_vectors = torch.nn.functional.normalize(
        torch.randn(graph.num_relations, 384, generator=generator), dim=1
    )
    questions = torch.nn.functional.normalize(torch.randn(args.batch, 384, generator=generator), dim=1)
    words = {}
    if model.config.token_attention:  # 16 token states per question, the length of a MetaQA question
        words = {
            "tokens": torch.randn(args.batch, 16, 384, generator=generator),
            "token_mask": torch.ones(args.batch, 16, dtype=torch.bool),
        }
    topic_entities = torch.randint(0, graph.num_entities, (args.batch,), generator=generator)
    topics = topic_block(graph.num_entities, [[int(i)] for i in topic_entities])
    cells = topic_entities, torch.arange(args.batch)  # where the topics are, as the server passes them
    stacked = graph.stacked_transitions()
    with torch.inference_mode():  # the products the model needs are those with the relations it weighs
        weights = model(
            graph, relation_vectors, questions, topics, **words, topic_cells=cells
        ).relation_weights

    # which nodes hold the topics, from where they are (as the model reads it), not from a pass over the block
    topic_summary = Frontier.start(topics, model.config.live_mass, cells)[0].summary

    @torch.inference_mode()
    def bare() -> None:
        """The model's own kernel and nothing around it: each hop hands the next the summary it wrote (which
        nodes hold mass)."""
        x, summary = topics, topic_summary
        for t in range(hops):
            x, summary = fused_transition(x, weights[t], stacked, summary=summary)

    @torch.inference_mode()
    def bare_torch() -> None:
        with torch_kernels_only():
            x = topics
            for t in range(hops):
                x = weighted_transition(x, weights[t], stacked)

    @torch.inference_mode()
    def batched() -> None:
        model(graph, relation_vectors, questions, topics, **words, topic_cells=cells)

    @torch.inference_mode()
    def one_by_one() -> None:
        for b in range(args.batch):
            one = {name: value[b : b + 1] for name, value in words.items()}
            one_cell = topic_entities[b : b + 1], torch.zeros(1, dtype=torch.long)
            model(
                graph,
                relation_vectors,
                questions[b : b + 1],
                topics[:, b : b + 1],
                **one,
                topic_cells=one_cell,
            )

    # torch's product on its own: its thread pool, still spinning after it, would slow the next measure
    t_torch = timed(bare_torch, args.repeats)
    times = timed_side_by_side({"bare": bare, "batch": batched}, args.repeats)
    t_bare, t_batch = times["bare"], times["batch"]
    t_single = timed(one_by_one, max(1, args.repeats // 2))
    edges = int(stacked.matrix.col_indices().numel())
    print(
        f"# MetaQA KB: {graph.num_entities} entities, {graph.num_edges} triples, {edges} directed edges "
        f"(inverses included); {hops} hops; batch {args.batch}"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; model {'trained' if args.checkpoint else 'untrained'}"
    )
    print()
    print("| measure | time | per question | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| bare sparse products, torch CSR kernel, {hops} hops x {args.batch} questions "
        f"| {t_torch * 1e3:.1f} ms | {t_torch / args.batch * 1e3:.2f} ms | 1.00 |"
    )
    print(
        f"| bare sparse products, fused kernel (what the model runs) | {t_bare * 1e3:.1f} ms | "
        f"{t_bare / args.batch * 1e3:.2f} ms | {t_torch / t_bare:.1f}x faster than torch's |"
    )
    print(
        f"| QuestionReasoner forward, batch of {args.batch} | {t_batch * 1e3:.1f} ms | "
        f"{t_batch / args.batch * 1e3:.2f} ms | {t_batch / t_torch:.2f}x torch's bare products, "
        f"{t_batch / t_bare:.2f}x the fused ones |"
    )
    print(
        f"| QuestionReasoner forward, {args.batch} questions one at a time | {t_single * 1e3:.1f} ms | "
        f"{t_single / args.batch * 1e3:.2f} ms | batching is {t_single / t_batch:.1f}x cheaper per question |"
    )


@contextlib.contextmanager
def torch_kernels_only() -> Iterator[None]:
    """Run propagation on torch's sparse products, as without the fused CPU kernels."""
    available = cpu_kernels.available
    cpu_kernels.available = lambda *tensors: False
    try:
        yield
    finally:
        cpu_kernels.available = available


if __name__ == "__main__":
    main()
