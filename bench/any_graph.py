"""Any graph, any phrasing: Ask on graphs nobody wrote questions for, in wordings no code has seen.

For every graph, its triples (and names, and node kinds where the source has them) are ingested into an
in-process GraphService, as `graphfuse ingest` would, and every question of `bench/any_graph_eval` (written
for evaluation only, kept apart from every template and rule in the code) goes through `GraphService.ask`,
the handler behind the Ask RPC, with the topic found by the linker. Reported by bucket:

- overlap: the question shares a content word with a relation name on its path or with the text the
  relation is encoded from; no-overlap: it shares none; unanswerable: no relation path of the graph fits;
- Hits@1 and MRR (top 10) of the answerable questions, by hop count;
- ECE (10 bins) of the top answer's score as the probability that it is right (unanswerable: never right);
- AUROC of the top score separating answerable from unanswerable questions (no answer: score 0).

Hetionet's relations are named as in its Neo4j export (`TREATS_CtD`), its node kinds stored as entity
types. `--without PART...` measures what each part of the zero-shot reasoner brings by turning it off:

- ``words``: relations encoded from their ids alone (underscores as spaces), the same both ways;
- ``inverse``: each relation matched by its head-to-tail phrase both ways;
- ``answers``: what a direction's answers are (kinds, typical names) not scored;
- ``abstention``: no "no path fits" option and no calibration (the shorter-path preference stays).

Usage: python -m bench.any_graph --data ../shared/data [--graphs umls metaqa ...] [--per-wording 3]
       [--seed 0] [--without words inverse answers abstention] [--questions eval|dev]

``--questions dev`` asks the development wordings (`bench/any_graph_dev`), the only ones to tune on.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import platform
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from bench.any_graph_eval.questions import (
    GRAPHS,
    EvalQuestion,
    GraphData,
    content_words,
    load_graph,
    make_questions,
    words_overlap,
)
from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, Record, TripleRecord, default_name
from graphfuse.gnn.data.relation_text import RelationPhrases
from graphfuse.gnn.inference import reasoner as reasoner_module
from graphfuse.gnn.inference.reasoner import ReasonerConfig
from graphfuse.server.core.config import ServerConfig
from graphfuse.server.core.service import GraphService

CHUNK = 10_000
TOP_K = 10


def records_of(name: str, data: GraphData) -> tuple[list[Record], dict[str, str]]:
    """The graph as records, and the relation id each source relation is stored under."""
    relation_id = {r: r for r in {r for _, r, _ in data.triples}}
    if name == "hetionet":  # as Hetionet's Neo4j export names them: TREATS_CtD
        for abbreviation, description in data.relation_descriptions.items():
            verb = re.split(r" [->] ", description)[1]  # "Compound - treats - Disease", "Gene > ..."
            relation_id[abbreviation] = f"{verb.upper().replace(' ', '_')}_{abbreviation}"
    # names as a user's loader would clean them: Hetionet has a few with trailing blanks
    entities = [
        EntityRecord(i, " ".join(n.split()) or None, (), data.kinds.get(i)) for i, n in data.entities.items()
    ]
    triples = [TripleRecord(h, relation_id[r], t) for h, r, t in data.triples]
    return [*entities, *triples], relation_id


ABLATIONS = ("words", "inverse", "answers", "abstention")


def turn_off(parts: list[str]) -> None:
    """Turn parts of the zero-shot reasoner off for this process (see the module docstring)."""
    phrases_of = KnowledgeGraph.relation_phrases

    def phrases(self: KnowledgeGraph, r: int) -> RelationPhrases:
        found = phrases_of(self, r)
        if "words" in parts:
            name = default_name(self.relation_ids[r])
            found = RelationPhrases((name,), (name,), found.forward_answers, found.inverse_answers)
        if "inverse" in parts:
            found = dataclasses.replace(found, inverse=found.forward)
        if "answers" in parts:
            found = dataclasses.replace(found, forward_answers="", inverse_answers="")
        return found

    KnowledgeGraph.relation_phrases = phrases  # type: ignore[method-assign]
    if "abstention" in parts:
        configured = reasoner_module.zero_shot_config

        def without_abstention() -> ReasonerConfig:
            config = configured()
            config.search.abstain_score = None
            config.calibration = (1.0, 0.0)
            return config

        reasoner_module.zero_shot_config = without_abstention


def ece(confidences: list[float], correct: list[bool], bins: int = 10) -> float:
    total, error = len(confidences), 0.0
    for b in range(bins):
        members = [
            i
            for i, c in enumerate(confidences)
            if b / bins <= c < (b + 1) / bins or (b == bins - 1 and c == 1.0)
        ]
        if members:
            gap = sum(confidences[i] for i in members) / len(members) - sum(
                correct[i] for i in members
            ) / len(members)
            error += abs(gap) * len(members) / total
    return error


def auroc(positive: list[float], negative: list[float]) -> float:
    if not positive or not negative:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


async def answer_all(
    service: GraphService, graph: str, questions: list[EvalQuestion]
) -> list[list[tuple[str, float]]]:
    async def one(q: EvalQuestion) -> list[tuple[str, float]]:
        result = await service.ask(graph, q.text, top_k=TOP_K)
        return [(a.entity_id, a.score) for a in result.answers]

    out: list[list[tuple[str, float]]] = []
    for start in range(0, len(questions), 32):
        out += await asyncio.gather(*(one(q) for q in questions[start : start + 32]))
    return out


async def run_graph(name: str, args: argparse.Namespace, folder: Path) -> list[str]:
    data = load_graph(name, args.data)
    questions = make_questions(
        name, args.data, seed=args.seed, per_wording=args.per_wording, wordings=args.questions
    )
    records, relation_id = records_of(name, data)
    config = ServerConfig(data_dir=folder / name, demo=False, train_demo=False)
    service = GraphService(config)
    await service.start()
    started = time.perf_counter()
    for start in range(0, len(records), CHUNK):
        result = await service.ingest(name, records[start : start + CHUNK], create=True)
        if not result.accepted:
            raise SystemExit(f"{name}: records {start}-{start + CHUNK} rejected: {result.errors[:3]}")
    await service.finish_ingest(name)  # as an Ingest stream ends
    await service.registry.wait_for_names(name, 3600)  # as `graphfuse ingest --wait-for-names`
    ingest_s = time.perf_counter() - started
    graph = service.graphs[name].graph
    texts = {r: graph.relation_text(graph.relation_index[r]) for r in relation_id.values()}
    started = time.perf_counter()
    answers = await answer_all(service, name, questions)
    ask_s = time.perf_counter() - started
    await service.close()

    rows: dict[str, list[tuple[EvalQuestion, list[tuple[str, float]]]]] = defaultdict(list)
    for q, ranked in zip(questions, answers, strict=True):
        topic = data.entities.get(q.topic, "")
        verbalised = (
            set().union(*(content_words(texts[relation_id[r]]) for r, _ in q.path)) if q.path else set()
        )
        q_words = content_words(q.text.replace(topic, " "))
        kind = (
            "unanswerable"
            if not q.answerable
            else (
                "overlap" if q.overlaps_relation_name or words_overlap(q_words, verbalised) else "no-overlap"
            )
        )
        rows[kind].append((q, ranked))

    def is_right(q: EvalQuestion, entity: str) -> bool:
        return entity in q.answers or data.entities.get(entity, "").lower() in {
            n.lower() for n in q.answer_names
        }

    lines = []
    top_answerable, top_unanswerable = [], []
    for kind in ("overlap", "no-overlap", "unanswerable"):
        for hops in (1, 2) if kind != "unanswerable" else (0,):
            group = [(q, r) for q, r in rows[kind] if q.hops == hops]
            if not group:
                continue
            hits, rr, conf, right = [], [], [], []
            for q, ranked in group:
                first = next((i for i, (e, _) in enumerate(ranked) if is_right(q, e)), None)
                hit = first == 0
                hits.append(hit)
                rr.append(0.0 if first is None else 1.0 / (first + 1))
                conf.append(ranked[0][1] if ranked else 0.0)
                right.append(hit)
                (top_answerable if q.answerable else top_unanswerable).append(conf[-1])
            if kind == "unanswerable":
                lines.append(
                    f"| {name} | {kind} | {len(group)} | - | - | {ece(conf, right):.3f} | "
                    f"mean top score {sum(conf) / len(conf):.3f} |"
                )
            else:
                lines.append(
                    f"| {name} | {kind}, {hops} hop | {len(group)} | {sum(hits) / len(hits):.3f} | "
                    f"{sum(rr) / len(rr):.3f} | {ece(conf, right):.3f} | |"
                )
    lines.append(
        f"| {name} | AUROC answerable vs not | {len(top_answerable) + len(top_unanswerable)} | | | | "
        f"{auroc(top_answerable, top_unanswerable):.3f} (ingest {ingest_s:.0f} s, "
        f"{1000 * ask_s / len(questions):.1f} ms per Ask in batches of 32) |"
    )
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--graphs", nargs="+", default=list(GRAPHS), choices=GRAPHS)
    parser.add_argument("--per-wording", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--without", nargs="+", default=[], choices=ABLATIONS)
    parser.add_argument(
        "--questions", choices=("eval", "dev"), default="eval", help="wording set: evaluation or development"
    )
    args = parser.parse_args()
    turn_off(args.without)
    print(
        f"# bench.any_graph: {platform.machine()}, {torch.get_num_threads()} threads; "
        f"without {', '.join(args.without) or 'nothing'}; "
        f"seed {args.seed}, {args.per_wording} topics per wording\n"
    )
    print("| graph | bucket | questions | Hits@1 | MRR | ECE | |")
    print("|---|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.graphs:
            asyncio.run(run_graph(name, args, Path(folder)))


if __name__ == "__main__":
    main()
