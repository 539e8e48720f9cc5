"""Does the trained question reasoner generalise? Unseen phrasings, and graphs it was not trained on.

One run on one machine, everything measured here:
1. UMLS: a QuestionReasoner trained (`graphfuse.gnn.training.question_reasoner.train_question_reasoner`,
   TrainConfig as `graphfuse train` uses it, or --answer-weight/--epochs) on generated 1-3-hop questions in
   TRAIN_PHRASINGS, against
   the zero-shot reasoner, on fresh questions phrased with TRAIN_PHRASINGS and with EVAL_PHRASINGS (no
   template in common).
2. Transfer without retraining: each graph's fresh EVAL_PHRASINGS questions answered by the zero-shot
   reasoner, by the model trained on that graph and by the model trained on the other graph.
3. With --study: why the trained model trails the zero-shot one on UMLS. How ambiguous the generated
   questions are (does a shorter relation path reach the same answers?), how well the model fits its own
   training questions, whether its hop attention picks the question's hop count, and what other training
   settings and training-question selections give. The study scores on *development* questions (their own
   seed), never on the test questions of tables 1 and 2.

Questions are encoded as the server answers an Ask with a given topic entity: the topic is looked up by the
linker, its mentions are stripped from the text (`graphfuse.gnn.inference.linking.strip_topics`), the rest
is encoded with truncation and token states (fp16 for training, as `graphfuse train` keeps them); relation
names are encoded from `KnowledgeGraph.relation_text`. Test and development questions come from seeds no
training question comes from, and one whose (topic, relation path) a training question has is skipped,
whatever its wording.
"random pick" is the expected Hits@1 of answering with a uniformly drawn non-topic entity.

Usage: python -m bench.reasoner_generalisation [--train-questions 300] [--test-questions 200]
       [--train-seeds 1 2 3] [--test-seed 11] [--answer-weight 10] [--epochs 3] [--study]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from graphfuse.encoder import TextEncoder
from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.evaluation.qa_metrics import QAMetrics, qa_metrics
from graphfuse.gnn.formats.datasets import load_pykeen_triples, load_umls_demo
from graphfuse.gnn.inference.linking import EntityLinker, strip_topics
from graphfuse.gnn.inference.reasoner import Question, TrainedReasoner, ZeroShotReasoner
from graphfuse.gnn.models.answer_head import AnswerHeadConfig
from graphfuse.gnn.models.question_reasoner import QuestionReasoner, QuestionReasonerConfig
from graphfuse.gnn.training.generated_questions import (
    EVAL_PHRASINGS,
    TRAIN_PHRASINGS,
    GeneratedQuestion,
    Phrasings,
    generate_questions,
)
from graphfuse.gnn.training.question_reasoner import (
    QADataset,
    TrainConfig,
    fit_answer_head,
    topic_block,
    train_question_reasoner,
)
from graphfuse.server.core.state import GraphState

HOPS = (1, 2, 3)
TOP_K = 30  # answers asked for: a generated question has at most 30, so F1 is not capped by top_k
MAX_HOPS = 3  # the server's default
Key = tuple[str, tuple[str, ...]]  # (topic id, relation path) of a generated question
DEFAULT = "default (as `graphfuse train`)"
LOW_WEIGHT = "answer_weight 1"


@dataclass
class BenchGraph:
    """A graph with what the reasoners need: its linker and its encoded relation names."""

    name: str
    graph: KnowledgeGraph
    linker: EntityLinker
    relation_vectors: torch.Tensor  # (R, D)
    entity_vectors: torch.Tensor  # (N, D), zero for names without words, as the server keeps them


def load_graph(name: str, encoder: TextEncoder) -> BenchGraph:
    """UMLS as the server's demo graph (named entities); Nations and Kinships from pykeen's triples."""
    if name == "umls":
        records = load_umls_demo()
        graph = KnowledgeGraph(
            [r for r in records if not hasattr(r, "head")], [r for r in records if hasattr(r, "head")]
        )
    else:
        graph = KnowledgeGraph([], load_pykeen_triples(name))
    state = GraphState(name, graph, encoder.dimensions)  # the server's name vectors, without its store
    names = state.names_to_embed()
    state.set_name_vectors(names, encoder.encode(names.texts, truncate=True).vectors)
    return BenchGraph(name, graph, state.linker, state.relation_vectors, state.entity_vectors)


def questions_for(
    bench_graph: BenchGraph,
    count: int,
    seeds: Iterable[int],
    phrasings: Phrasings,
    exclude: set[Key] | frozenset[Key] = frozenset(),
) -> list[GeneratedQuestion]:
    """``count`` questions per hop count and seed (generator seed ``100 * seed + hops``), none in
    ``exclude``."""
    out = []
    for seed in seeds:
        for hops in HOPS:
            candidates = generate_questions(
                bench_graph.graph, 3 * count, hops, seed=100 * seed + hops, phrasings=phrasings
            )
            out += [q for q in candidates if (q.topic, q.path) not in exclude][:count]
    return out


def encode(
    encoder: TextEncoder,
    bench_graph: BenchGraph,
    questions: Sequence[GeneratedQuestion],
    training: bool,
    memo: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> QADataset:
    """The server's way with a given topic: linker lookup, topic mentions stripped, truncated encoding with
    token states (kept in fp16 for training, as `graphfuse train` keeps them; fp32 when answering).

    ``memo`` keeps each text's vector and fp16 token states for later calls (the study reuses questions).
    """
    graph, linker = bench_graph.graph, bench_graph.linker
    texts, topics, answers = [], [], []
    for q in questions:
        found = sorted({e for e, _ in linker.lookup(q.topic)})
        texts.append(strip_topics(linker, q.question, found))
        topics.append(found)
        answers.append([graph.entity_index[a] for a in q.answers])
    memo = {} if memo is None else memo
    # Distinct texts only: TextEncoder.encode leaves token_states None for a repeated text whose vector is
    # cached but whose token states are not.
    todo = [text for text in dict.fromkeys(texts) if text not in memo]
    if todo:
        encoded = encoder.encode(todo, truncate=True, token_states=True)
        for text, vector, states in zip(todo, encoded.vectors, encoded.token_states or (), strict=True):
            memo[text] = (vector, states.half())
    vectors = torch.stack([memo[t][0] for t in texts]) if texts else torch.empty(0, encoder.dimensions)
    tokens = [memo[t][1] if training else memo[t][1].float() for t in texts]
    return QADataset(vectors, topics, answers, [q.hops for q in questions], tokens)


def evaluate(
    reasoner: TrainedReasoner | ZeroShotReasoner | Sequence[TrainedReasoner | ZeroShotReasoner],
    bench_graph: BenchGraph,
    data: QADataset,
    batch: int = 64,
) -> dict[str, QAMetrics]:
    """Hits@1, Hits@5 and answer-set F1 (answers scoring >= 0.5) by hop count.

    Several reasoners answer together by the sum of their scores (every entity scored; F1 then counts the
    entities whose summed score is >= 0.5).
    """
    reasoners = list(reasoner) if isinstance(reasoner, Sequence) else [reasoner]
    top_k = TOP_K if len(reasoners) == 1 else bench_graph.graph.num_entities
    ranked, committed, top_scores = [], [], []
    for start in range(0, len(data), batch):
        questions = [
            Question(
                data.questions[i],
                tuple((t, 1.0) for t in data.topics[i]),
                top_k,
                MAX_HOPS,
                data.tokens[i] if data.tokens is not None else None,
            )
            for i in range(start, min(start + batch, len(data)))
        ]
        totals: list[dict[int, float]] = [{} for _ in questions]
        for one in reasoners:
            for total, result in zip(
                totals,
                one.reason(
                    bench_graph.graph, bench_graph.relation_vectors, questions, bench_graph.entity_vectors
                ),
                strict=True,
            ):
                for answer in result.answers:
                    total[answer.entity] = total.get(answer.entity, 0.0) + answer.score
        for total in totals:
            order = sorted(total, key=total.__getitem__, reverse=True)[
                :TOP_K
            ]  # stable: reasoner order on ties
            ranked.append(order)
            committed.append({e for e in order if total[e] >= 0.5})
            top_scores.append(min(total[order[0]], 1.0) if order else 0.0)
    return qa_metrics(ranked, committed, data.answers, data.hops, top_scores)


def random_pick(bench_graph: BenchGraph, data: QADataset) -> dict[str, float]:
    """Expected Hits@1 by hop count of answering with a uniformly drawn non-topic entity."""
    n = bench_graph.graph.num_entities
    out = {}
    for hops in HOPS:
        rows = [i for i in range(len(data)) if data.hops[i] == hops]
        chances = [len(data.answers[i]) / (n - len(data.topics[i])) for i in rows]
        out[str(hops)] = sum(chances) / len(chances) if chances else 0.0
    return out


def train(
    bench_graph: BenchGraph,
    data: QADataset,
    config: TrainConfig | None = None,
    model_config: QuestionReasonerConfig | None = None,
    answer_head: bool = False,
) -> tuple[QuestionReasoner, float]:
    """A reasoner trained on ``data`` (and its answer head, fused with the zero-shot search's answers, when
    asked for) and the seconds it took."""
    started = time.perf_counter()
    model = train_question_reasoner(
        bench_graph.graph, bench_graph.relation_vectors, data, model_config, config
    )
    if answer_head:  # as `graphfuse train` does for a graph trained on generated questions alone
        head = AnswerHeadConfig(hops=model.config.hops, zero_shot=True)
        graph, relations, entities = (
            bench_graph.graph,
            bench_graph.relation_vectors,
            bench_graph.entity_vectors,
        )
        fit_answer_head(model, graph, relations, entities, data, head, seed=(config or TrainConfig()).seed)
    return model, time.perf_counter() - started


@torch.no_grad()
def hop_choice_accuracy(
    model: QuestionReasoner, bench_graph: BenchGraph, data: QADataset
) -> dict[str, float]:
    """By hop count: the share of questions whose hop attention is largest at their own hop count."""
    right = {str(h): [] for h in HOPS}
    for start in range(0, len(data), 64):
        batch = list(range(start, min(start + 64, len(data))))
        topics = topic_block(bench_graph.graph.num_entities, [data.topics[i] for i in batch])
        output = model(
            bench_graph.graph,
            bench_graph.relation_vectors,
            data.questions[batch],
            topics,
            **data.token_block(batch),
        )
        chosen = output.hop_attention.argmax(-1) + 1  # (B,)
        for row, i in enumerate(batch):
            right[str(data.hops[i])].append(float(chosen[row] == data.hops[i]))
    return {h: sum(v) / len(v) if v else 0.0 for h, v in right.items()}


class ShorterPaths:
    """For a small graph: does a shorter relation path from a question's topic reach its answers?

    Holds a dense ``(N, 2R * N)`` adjacency (every directed relation side by side), so it is for graphs of a
    few hundred entities; the distinct answer sets of all paths of each length from a topic are cached.
    """

    def __init__(self, graph: KnowledgeGraph) -> None:
        self.graph = graph
        n, r = graph.num_entities, graph.num_relations
        heads, rels, tails = graph.edges
        adjacency = torch.zeros(2 * r, n, n)
        adjacency[rels, heads, tails] = 1.0
        adjacency[rels + r, tails, heads] = 1.0
        self.adjacency = adjacency.permute(1, 0, 2).reshape(n, 2 * r * n)  # (N, 2R * N)
        self._levels: dict[int, list[torch.Tensor]] = {}

    def levels(self, topic: int, hops: int) -> list[torch.Tensor]:
        """Per length 1..hops: the distinct non-empty answer sets ``(S, N)`` (bool) of paths from ``topic``
        (answers exclude the topic, as generated questions do)."""
        levels = self._levels.setdefault(topic, [])
        n = self.graph.num_entities
        while len(levels) < hops:
            if levels:
                frontier = levels[-1].float()
            else:
                frontier = torch.zeros(1, n)
                frontier[0, topic] = 1.0
            reached = (frontier @ self.adjacency).reshape(-1, n) > 0  # (S * 2R, N)
            # the frontier keeps the topic (a generated path may pass through it); answers drop it below
            levels.append(torch.unique(reached[reached.any(1)], dim=0))
        return [level.clone().index_fill_(1, torch.tensor([topic]), False) for level in levels[:hops]]

    def flags(self, question: GeneratedQuestion) -> dict[str, float]:
        """``equal``: a shorter path reaches exactly the answers; ``covered``: one reaches them all;
        ``jaccard``: the best Jaccard similarity of a shorter path's answers with the question's."""
        graph = self.graph
        topic = graph.entity_index[question.topic]
        gold = torch.zeros(graph.num_entities, dtype=torch.bool)
        gold[[graph.entity_index[a] for a in question.answers]] = True
        if question.hops == 1:
            return {"equal": 0.0, "covered": 0.0, "jaccard": 0.0}
        shorter = torch.cat(self.levels(topic, question.hops - 1))  # (S, N)
        overlap = (shorter & gold).sum(1)
        union = (shorter | gold).sum(1).clamp_min(1)
        return {
            "equal": float((shorter == gold).all(1).any()),
            "covered": float((overlap == gold.sum()).any()),
            "jaccard": float((overlap / union).max()) if len(shorter) else 0.0,
        }


def cells(metrics: dict[str, QAMetrics], field: str) -> str:
    return " | ".join(f"{getattr(metrics[str(h)], field):.3f}" for h in HOPS)


def values(numbers: dict[str, float]) -> str:
    return " | ".join(f"{numbers[str(h)]:.3f}" for h in HOPS)


def study(args: argparse.Namespace, encoder: TextEncoder, umls: BenchGraph, base: TrainConfig) -> list[str]:
    """The markdown lines of the study (see the module docstring).

    UMLS has only ~1,560 distinct 1-hop questions (topic, directed relation) with 1-30 answers, so every
    variant trains on the same 1-hop questions and varies the 2- and 3-hop ones only; the development
    questions avoid every training question of every variant.
    """
    started = time.perf_counter()
    paths = ShorterPaths(umls.graph)
    per_hop = args.train_questions * len(args.train_seeds)
    base_questions = questions_for(umls, args.train_questions, args.train_seeds, TRAIN_PHRASINGS)
    one_hop = [q for q in base_questions if q.hops == 1]
    extra_seeds = [s + 1000 for s in args.train_seeds]
    extra = [q for q in questions_for(umls, args.train_questions, extra_seeds, TRAIN_PHRASINGS) if q.hops > 1]
    # 2- and 3-hop candidates for the selections: the same seeds, three times as many questions
    pool = [
        q
        for q in questions_for(umls, 3 * args.train_questions, args.train_seeds, TRAIN_PHRASINGS)
        if q.hops > 1
    ]
    seen = {(q.topic, q.path) for q in [*base_questions, *extra, *pool]}
    dev_questions = questions_for(umls, args.test_questions, [args.dev_seed], EVAL_PHRASINGS, seen)
    flags = {(q.topic, q.path): paths.flags(q) for q in [*base_questions, *pool]}

    def select(keep) -> list[GeneratedQuestion]:  # noqa: ANN001
        """The base 1-hop questions, then per hop count the first ``per_hop`` pool questions kept."""
        chosen = list(one_hop)
        for hops in HOPS[1:]:
            chosen += [q for q in pool if q.hops == hops and keep(q)][:per_hop]
        return chosen

    memo: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    dev = encode(encoder, umls, dev_questions, False, memo)
    base_data = encode(encoder, umls, base_questions, True, memo)
    fit_rows = [i for i in range(len(base_data)) if i % 3 == 0]  # a third of the training questions
    variants: list[tuple[str, QADataset, TrainConfig, QuestionReasonerConfig | None]] = [
        (DEFAULT, base_data, base, None),
        ("pooled vector only (no token attention)", base_data, base, _pooled(umls)),
        (LOW_WEIGHT, base_data, dataclasses.replace(base, answer_weight=1.0), None),
        ("epochs 10", base_data, dataclasses.replace(base, epochs=10), None),
        (
            "answer_weight 1, epochs 10",
            base_data,
            dataclasses.replace(base, answer_weight=1.0, epochs=10),
            None,
        ),
        (
            f"2x 2- and 3-hop questions (seeds {args.train_seeds} and {extra_seeds})",
            encode(encoder, umls, [*base_questions, *extra], True, memo),
            base,
            None,
        ),
        (
            "2-/3-hop: only those no shorter path answers exactly",
            encode(encoder, umls, select(lambda q: not flags[q.topic, q.path]["equal"]), True, memo),
            base,
            None,
        ),
        (
            "2-/3-hop: only those with at most 10 answers",
            encode(encoder, umls, select(lambda q: len(q.answers) <= 10), True, memo),
            base,
            None,
        ),
    ]

    lines = [
        "",
        f"## Study: generated UMLS training questions, seeds {args.train_seeds} "
        f"({args.train_questions} per hop and seed)",
        "",
        "| hops | answers per question | a shorter path reaches exactly its answers | a shorter path "
        "reaches all its answers | best Jaccard of a shorter path's answers | random pick Hits@1 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    n = umls.graph.num_entities
    for hops in HOPS:
        rows = [q for q in base_questions if q.hops == hops]
        f = [flags[q.topic, q.path] for q in rows]
        lines.append(
            f"| {hops} | {sum(len(q.answers) for q in rows) / len(rows):.1f} "
            f"| {sum(x['equal'] for x in f) / len(f):.3f} | {sum(x['covered'] for x in f) / len(f):.3f} "
            f"| {sum(x['jaccard'] for x in f) / len(f):.3f} "
            f"| {sum(len(q.answers) / (n - 1) for q in rows) / len(rows):.3f} |"
        )

    zero = evaluate(ZeroShotReasoner(), umls, dev)
    zero_fit = evaluate(ZeroShotReasoner(), umls, base_data.subset(fit_rows))
    lines += [
        "",
        f"## Study: training variants on UMLS, scored on development questions (seed {args.dev_seed}, "
        f"EVAL_PHRASINGS, {'/'.join(str(zero[str(h)].questions) for h in HOPS)} per hop)",
        "",
        "Fit: Hits@1 on a third of the default training questions (TRAIN_PHRASINGS). Hop choice: share of "
        "development questions whose hop attention peaks at their own hop count.",
        "",
        "| reasoner | training questions 1/2/3 | train s | Hits@1 1-hop | 2-hop | 3-hop | Hits@5 1 | 2 | 3 "
        "| F1 1 | 2 | 3 | fit Hits@1 1 | 2 | 3 | hop choice 1 | 2 | 3 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| zero-shot | - | - | {cells(zero, 'hits_at_1')} | {cells(zero, 'hits_at_5')} "
        f"| {cells(zero, 'f1')} | {cells(zero_fit, 'hits_at_1')} | - | - | - |",
    ]
    blends = []
    for label, data, config, model_config in variants:
        model, seconds = train(umls, data, config, model_config)
        reasoner = TrainedReasoner(model)
        m = evaluate(reasoner, umls, dev)
        fit = evaluate(reasoner, umls, base_data.subset(fit_rows))
        counts = "/".join(str(sum(h == hops for h in data.hops)) for hops in HOPS)
        lines.append(
            f"| {label} | {counts} | {seconds:.0f} | {cells(m, 'hits_at_1')} | {cells(m, 'hits_at_5')} "
            f"| {cells(m, 'f1')} | {cells(fit, 'hits_at_1')} "
            f"| {values(hop_choice_accuracy(model, umls, dev))} |"
        )
        if label in (DEFAULT, LOW_WEIGHT):
            blends.append((label, evaluate([reasoner, ZeroShotReasoner()], umls, dev)))
    lines += [
        "",
        "## Study, a proposal (not the service): rank by trained score + zero-shot probability",
        "",
        "| trained reasoner | Hits@1 1-hop | 2-hop | 3-hop | Hits@5 1 | 2 | 3 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {label} | {cells(m, 'hits_at_1')} | {cells(m, 'hits_at_5')} |" for label, m in blends]
    lines += ["", f"(study: {time.perf_counter() - started:.0f} s)"]
    return lines


def _pooled(bench_graph: BenchGraph) -> QuestionReasonerConfig:
    return QuestionReasonerConfig(text_dim=bench_graph.relation_vectors.shape[1], token_attention=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-questions", type=int, default=300, help="per hop count and training seed")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--test-questions", type=int, default=200, help="per hop count and phrasing set")
    parser.add_argument("--test-seed", type=int, default=11)
    parser.add_argument("--dev-seed", type=int, default=21, help="development questions of --study")
    parser.add_argument(
        "--transfer", nargs="*", default=["nations"], help="other pykeen graphs (nations, kinships)"
    )
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="training epochs (tables 1-2)")
    parser.add_argument(
        "--answer-weight", type=float, default=TrainConfig.answer_weight, help="TrainConfig (tables 1-2)"
    )
    parser.add_argument("--study", action="store_true", help="also run the study (a few minutes more)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (the graphs are tiny: 1 avoids oversubscription)",
    )
    args = parser.parse_args()
    held_apart = {args.test_seed, args.dev_seed}
    if held_apart & {*args.train_seeds, *(s + 1000 for s in args.train_seeds)}:
        parser.error("--test-seed and --dev-seed must differ from every training seed (and seed + 1000)")
    if args.test_seed == args.dev_seed:
        parser.error("--test-seed and --dev-seed must differ")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    config = TrainConfig(epochs=args.epochs, answer_weight=args.answer_weight)

    started = time.perf_counter()
    encoder = TextEncoder()
    graphs = {name: load_graph(name, encoder) for name in ["umls", *args.transfer]}
    trained, test, seconds, counts = {}, {}, {}, {}
    for name, bench_graph in graphs.items():
        train_questions = questions_for(bench_graph, args.train_questions, args.train_seeds, TRAIN_PHRASINGS)
        seen = {(q.topic, q.path) for q in train_questions}
        counts[name] = len(train_questions)
        data = encode(encoder, bench_graph, train_questions, True)
        model, seconds[name] = train(bench_graph, data, config, answer_head=True)
        trained[name] = TrainedReasoner(model)
        reasoner_only = copy.deepcopy(model)
        reasoner_only.answer_head = None
        trained[name, "reasoner only"] = TrainedReasoner(reasoner_only)
        for label, phrasings in (("TRAIN", TRAIN_PHRASINGS), ("EVAL", EVAL_PHRASINGS)):
            if label == "EVAL" or name == "umls":
                questions = questions_for(bench_graph, args.test_questions, [args.test_seed], phrasings, seen)
                test[name, label] = encode(encoder, bench_graph, questions, False)
    zero_shot = ZeroShotReasoner()
    umls = graphs["umls"]
    phrasing_rows = []
    for label in ("TRAIN", "EVAL"):
        data = test["umls", label]
        phrasing_rows.append((label, "random pick", None, random_pick(umls, data)))
        phrasing_rows.append((label, "zero-shot", evaluate(zero_shot, umls, data), None))
        reasoner_only = evaluate(trained["umls", "reasoner only"], umls, data)
        phrasing_rows.append((label, "trained, reasoner only", reasoner_only, None))
        phrasing_rows.append(
            (label, "trained + answer head (graphfuse train)", evaluate(trained["umls"], umls, data), None)
        )
    transfer_rows = []
    for name, bench_graph in graphs.items():
        data = test[name, "EVAL"]
        questions = "/".join(str(sum(h == hops for h in data.hops)) for hops in HOPS)
        transfer_rows.append((name, questions, "random pick", random_pick(bench_graph, data)))
        m = evaluate(zero_shot, bench_graph, data)
        transfer_rows.append((name, questions, "zero-shot", {h: m[h].hits_at_1 for h in m}))
        for source in graphs:
            m = evaluate(trained[source], bench_graph, data)
            label = "trained on the same graph" if source == name else f"trained on {source}"
            transfer_rows.append((name, questions, label, {h: m[h].hits_at_1 for h in m}))
    measured = time.perf_counter() - started
    study_lines = study(args, encoder, umls, TrainConfig()) if args.study else []

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; encoder {encoder.name}"
    )
    print(
        f"# training: {args.train_questions} questions per hop and seed, seeds {args.train_seeds}, "
        f"TRAIN_PHRASINGS, {config}; "
        + ", ".join(f"{n}: {counts[n]} questions, trained in {seconds[n]:.1f} s" for n in graphs)
    )
    print(
        f"# test: seed {args.test_seed}, {args.test_questions} questions per hop and phrasing set (none with "
        f"a training question's topic and path); top_k {TOP_K}, max_hops {MAX_HOPS}; tables 1-2 took "
        f"{measured:.0f} s"
    )
    print()
    g = umls.graph
    print(f"## UMLS ({g.num_entities} entities, {g.num_relations} relations): seen and unseen phrasings")
    print()
    print(
        "| test phrasings | reasoner | questions 1/2/3 | Hits@1 1-hop | 2-hop | 3-hop | Hits@5 1 | 2 | 3 "
        "| F1 1 | 2 | 3 |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, reasoner, m, chance in phrasing_rows:
        if m is None:
            print(f"| {label}_PHRASINGS | {reasoner} | | {values(chance)} | | | | | | |")
        else:
            questions = "/".join(str(m[str(h)].questions) for h in HOPS)
            print(
                f"| {label}_PHRASINGS | {reasoner} | {questions} | {cells(m, 'hits_at_1')} "
                f"| {cells(m, 'hits_at_5')} | {cells(m, 'f1')} |"
            )
    print()
    print("## Transfer without retraining: Hits@1 by hop, EVAL_PHRASINGS")
    print()
    print("| test graph | questions 1/2/3 | reasoner | 1-hop | 2-hop | 3-hop |")
    print("|---|---|---|---:|---:|---:|")
    for name, questions, reasoner, hits in transfer_rows:
        print(f"| {name} | {questions} | {reasoner} | {values(hits)} |")
    for line in study_lines:
        print(line)


if __name__ == "__main__":
    main()
