"""Evaluation-only natural-language questions over graphs that have no training questions.

The questions are generated from hand-written wordings (``wordings/<graph>.json``) and the graph's own
triples, so the gold answers are exactly what the graph holds along each wording's relation path.

Wording file schema (relation ids are the graph's own raw ids; ``metaqa-freebase`` reuses ``metaqa.json``
with metaqa's ids, which are mapped through ``FREEBASE_RELATIONS``)::

    {"graph": "umls",
     "one_hop": [{"relation": "treats", "direction": "forward", "wordings": ["..{e}..", "..."]}],
     "two_hop": [{"path": [["starred_actors", "inverse"], ["directed_by", "forward"]], "wordings": ["..."]}],
     "unanswerable": [{"topics_from": ["directed_by", "forward"], "wordings": ["..."]}]}

- Every wording holds exactly one ``{e}`` slot, filled with the topic's display name as written.
- ``forward``: the topic is the head of the triple and the answers are its tails; ``inverse``: the other way.
- ``topics_from`` only says which entities suit an unanswerable wording (heads for ``forward``, tails for
  ``inverse``); the question asks for something that no relation or relation path of the graph provides.

Topics of answerable wordings have between 1 and ``max_answers`` answers and a display name that is at
least 3 characters long and unique in the graph (case-insensitive). Two-hop answers are every entity reached
through any intermediate, without the topic itself.

``overlaps_relation_name`` tells whether the question (with the topic's name removed) shares a content word
with the names of the relations on its path (for hetionet also the words of the metaedge's full name, for
metaqa-freebase the Freebase path), compared by a crude stem: see ``content_words`` and ``words_overlap``.

Usage: ``python -m bench.any_graph_eval.questions --data /work/shared/data [--graph G] [--check]``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import json
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

GRAPHS = ("umls", "metaqa", "metaqa-freebase", "wn18rr", "hetionet")

WORDINGS_DIR = Path(__file__).resolve().parent / "wordings"
# Development wordings, written by another hand for tuning; the evaluation wordings above stay unread.
DEV_WORDINGS_DIR = Path(__file__).resolve().parents[1] / "any_graph_dev" / "wordings"
WORDING_SETS = {"eval": WORDINGS_DIR, "dev": DEV_WORDINGS_DIR}

FREEBASE_RELATIONS: dict[str, str] = {
    "directed_by": "/film/film/directed_by",
    "written_by": "/film/film/written_by",
    "starred_actors": "/film/film/starring",
    "release_year": "/film/film/initial_release_date",
    "in_language": "/film/film/language",
    "has_tags": "/film/film/subjects",
    "has_genre": "/film/film/genre",
    "has_imdb_votes": "/film/film/imdb_votes",
    "has_imdb_rating": "/film/film/imdb_rating",
}

DIRECTIONS = ("forward", "inverse")
MIN_UNANSWERABLE_SHARE = 0.12
MIN_NO_OVERLAP_SHARE = 0.5
MIN_TWO_HOP_CHAINS = 8
MIN_WORDINGS = 2
QUESTION_RANGE = (200, 600)


@dataclass(frozen=True)
class GraphData:
    """A graph as plain ids: names, optional kinds, triples and optional relation descriptions."""

    entities: dict[str, str]
    kinds: dict[str, str]
    triples: list[tuple[str, str, str]]
    relation_descriptions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalQuestion:
    """One evaluation question with its gold answers."""

    graph: str
    text: str
    topic: str
    answers: tuple[str, ...]
    answer_names: tuple[str, ...]
    hops: int
    path: tuple[tuple[str, str], ...]
    answerable: bool
    overlaps_relation_name: bool
    wording_id: str


# --------------------------------------------------------------------------------------------- loading


def _read_tsv_triples(path: Path, sep: str = "\t") -> list[tuple[str, str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split(sep)
            if len(parts) == 3 and all(parts):
                out.append((parts[0], parts[1], parts[2]))
    return out


def _dedupe(triples: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return list(dict.fromkeys(triples))


def pykeen_umls_dir() -> Path:
    """Folder of pykeen's UMLS files, found without importing pykeen.

    Falls back to the project's ``.venv`` when the running interpreter does not see pykeen.
    """
    candidates: list[Path] = []
    spec = importlib.util.find_spec("pykeen")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]))
    root = Path(__file__).resolve().parents[2]
    candidates += sorted(root.glob(".venv/lib/python*/site-packages/pykeen"))
    for base in candidates:
        folder = base / "datasets" / "umls"
        if folder.is_dir():
            return folder
    raise FileNotFoundError("pykeen's UMLS files were not found (pykeen is not installed here or in .venv)")


def _umls_file(folder: Path, split: str) -> Path:
    for name in (f"{split}.txt", f"{split}.txt.gz", f"{split}.tsv", f"{split}.tsv.gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no {split} split in {folder}")


def _load_umls() -> GraphData:
    folder = pykeen_umls_dir()
    triples = _dedupe(
        t for split in ("train", "valid", "test") for t in _read_tsv_triples(_umls_file(folder, split))
    )
    ids = {x for h, _, t in triples for x in (h, t)}
    return GraphData(entities={e: e.replace("_", " ") for e in sorted(ids)}, kinds={}, triples=triples)


def _load_metaqa(data_dir: Path, freebase: bool) -> GraphData:
    triples = _dedupe(_read_tsv_triples(data_dir / "metaqa" / "kb.txt", sep="|"))
    if freebase:
        triples = [(h, FREEBASE_RELATIONS[r], t) for h, r, t in triples]
    ids = {x for h, _, t in triples for x in (h, t)}
    return GraphData(entities={e: e for e in sorted(ids)}, kinds={}, triples=triples)


def _load_wn18rr(data_dir: Path) -> GraphData:
    folder = data_dir / "wn18rr"
    triples = _dedupe(
        t for split in ("train", "dev", "test") for t in _read_tsv_triples(folder / f"{split}.tsv")
    )
    names: dict[str, str] = {}
    with open(folder / "entity2text.txt", encoding="utf-8") as fh:
        for line in fh:
            ent, _, text = line.rstrip("\n").partition("\t")
            names[ent] = text.split(",", 1)[0].strip().replace("_", " ")
    ids = {x for h, _, t in triples for x in (h, t)}
    return GraphData(entities={e: names.get(e, e) for e in sorted(ids)}, kinds={}, triples=triples)


def _load_hetionet(data_dir: Path) -> GraphData:
    folder = data_dir / "hetionet"
    entities: dict[str, str] = {}
    kinds: dict[str, str] = {}
    with open(folder / "nodes.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            entities[row["id"]] = row["name"]
            kinds[row["id"]] = row["kind"]
    triples = _dedupe(
        t for t in _read_tsv_triples(folder / "edges-5k.sif.gz") if t != ("source", "metaedge", "target")
    )
    descriptions: dict[str, str] = {}
    with open(folder / "metaedges.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            descriptions[row["abbreviation"]] = row["metaedge"]
    return GraphData(entities=entities, triples=triples, kinds=kinds, relation_descriptions=descriptions)


def load_graph(name: str, data_dir: Path) -> GraphData:
    """Load one of ``GRAPHS`` from the shared data folder (umls from pykeen's package files)."""
    data_dir = Path(data_dir)
    if name == "umls":
        return _load_umls()
    if name in ("metaqa", "metaqa-freebase"):
        return _load_metaqa(data_dir, freebase=name == "metaqa-freebase")
    if name == "wn18rr":
        return _load_wn18rr(data_dir)
    if name == "hetionet":
        return _load_hetionet(data_dir)
    raise ValueError(f"unknown graph {name!r}; expected one of {GRAPHS}")


def load_wordings(graph: str, wordings: str = "eval") -> dict:
    """The wording file of a graph in a wording set (metaqa-freebase shares metaqa's)."""
    stem = "metaqa" if graph == "metaqa-freebase" else graph
    with open(WORDING_SETS[wordings] / f"{stem}.json", encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------------------------- words

STOPWORDS = frozenset(
    """a about above after all also am an and any are as at be been before being between both but by can
    could did do does doing during each else for from get got had has have having he her here his how i if
    in into is it its just me more most my no nor not of off on once only or other our out over own same she
    should so some such than that the their them then there these they this those through to too under up
    very was we were what when where which while who whom whose why will with would you your""".split()
)

_SUFFIXES = (
    "ational", "ations", "ation", "ments", "ment", "ness", "ings", "ing", "ions", "ion",
    "ical", "ives", "ive", "ers", "ors", "er", "or", "edly", "ed", "ly", "al", "es", "s",
)  # fmt: skip
_MIN_STEM = {"s": 2, "es": 2, "ed": 2}


def stem(word: str) -> str:
    """Crude stem: strip one common suffix, a final e, and a doubled final consonant."""
    w = word.lower()
    if w.endswith(("ies", "ied")) and len(w) > 4:
        w = w[:-3] + "i"
    else:
        for suffix in _SUFFIXES:
            if w.endswith(suffix) and len(w) - len(suffix) >= _MIN_STEM.get(
                suffix, 3 if len(suffix) < 4 else 4
            ):
                if suffix == "s" and w.endswith(("ss", "us", "is")):
                    continue
                w = w[: -len(suffix)]
                break
    if w.endswith("y") and len(w) > 3:
        w = w[:-1] + "i"
    if w.endswith("e") and len(w) > 2:
        w = w[:-1]
    if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "aeioulsz":
        w = w[:-1]
    return w


def _tokens(text: str) -> list[str]:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def content_words(text: str) -> set[str]:
    """Stemmed content words of a text or relation name (split on _ / . - spaces, camelCase; no stopwords)."""
    return {stem(t) for t in _tokens(text) if len(t) > 1 and t not in STOPWORDS}


def words_overlap(a: set[str], b: set[str]) -> bool:
    """Two stemmed word sets overlap when a stem is equal to, or (4+ letters) a prefix of, another."""
    for x in a:
        for y in b:
            short, long_ = (x, y) if len(x) <= len(y) else (y, x)
            if short == long_ or (len(short) >= 4 and long_.startswith(short)):
                return True
    return False


def relation_words(graph: GraphData, relation: str) -> set[str]:
    """Content words of a relation id plus, where the source ships one, its description."""
    words = content_words(relation)
    if relation in graph.relation_descriptions:
        words |= content_words(graph.relation_descriptions[relation])
    return words


def question_overlaps(graph: GraphData, text: str, topic_name: str, path: Iterable[tuple[str, str]]) -> bool:
    """Does ``text`` (topic name removed) share a content word with the relations of ``path``?"""
    if topic_name:
        text = re.sub(re.escape(topic_name), " ", text, flags=re.IGNORECASE)
    rel_words: set[str] = set()
    for relation, _ in path:
        rel_words |= relation_words(graph, relation)
    return words_overlap(content_words(text), rel_words)


# --------------------------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class Wording:
    """One wording template with its path (in the graph's own relation ids)."""

    wording_id: str
    template: str
    path: tuple[tuple[str, str], ...]
    topics_from: tuple[str, str] | None = None

    @property
    def answerable(self) -> bool:
        return bool(self.path)


def wordings_for(graph: str, spec: dict | None = None, wordings: str = "eval") -> list[Wording]:
    """All wordings of a graph, with relation ids mapped to the graph's own (metaqa-freebase)."""
    spec = load_wordings(graph, wordings) if spec is None else spec
    renames = FREEBASE_RELATIONS if graph == "metaqa-freebase" else {}

    def hop(r: str, d: str) -> tuple[str, str]:
        return (renames.get(r, r), d)

    out: list[Wording] = []
    for item in spec.get("one_hop", []):
        for i, text in enumerate(item["wordings"]):
            wid = f"1h:{item['relation']}:{item['direction']}:{i}"
            out.append(Wording(wid, text, (hop(item["relation"], item["direction"]),)))
    for k, item in enumerate(spec.get("two_hop", [])):
        path = tuple(hop(r, d) for r, d in item["path"])
        for i, text in enumerate(item["wordings"]):
            out.append(Wording(f"2h:{k}:{i}", text, path))
    for k, item in enumerate(spec.get("unanswerable", [])):
        r, d = item["topics_from"]
        for i, text in enumerate(item["wordings"]):
            out.append(Wording(f"un:{k}:{i}", text, (), hop(r, d)))
    return out


class _Index:
    """Adjacency of a graph per (relation, direction)."""

    def __init__(self, graph: GraphData) -> None:
        self.adj: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for h, r, t in graph.triples:
            self.adj[(r, "forward")][h].add(t)
            self.adj[(r, "inverse")][t].add(h)
        counts = Counter(name.lower() for name in graph.entities.values())
        self.nameable = {e for e, n in graph.entities.items() if len(n) >= 3 and counts[n.lower()] == 1}

    def step(self, sources: Iterable[str], hop: tuple[str, str]) -> set[str]:
        table = self.adj.get(hop, {})
        out: set[str] = set()
        for s in sources:
            out |= table.get(s, set())
        return out

    def answers(self, topic: str, path: tuple[tuple[str, str], ...]) -> set[str]:
        current = {topic}
        for hop in path:
            current = self.step(current, hop)
        if len(path) > 1:
            current.discard(topic)
        return current


def make_questions(
    graph: str,
    data_dir: Path,
    *,
    seed: int = 0,
    per_wording: int = 3,
    max_answers: int = 20,
    wordings: str = "eval",
) -> list[EvalQuestion]:
    """Questions for every wording of ``graph`` in a wording set (``eval`` or ``dev``); deterministic given
    ``seed``."""
    data = load_graph(graph, data_dir)
    found = wordings_for(graph, wordings=wordings)
    return _make_questions(graph, data, found, seed, per_wording, max_answers)


def _make_questions(
    graph: str, data: GraphData, wordings: list[Wording], seed: int, per_wording: int, max_answers: int
) -> list[EvalQuestion]:
    index = _Index(data)
    candidates: dict[tuple, list[tuple[str, tuple[str, ...]]]] = {}
    used: dict[tuple, set[str]] = defaultdict(set)
    out: list[EvalQuestion] = []
    for w in wordings:
        key = w.path or ("un", w.topics_from)
        if key not in candidates:
            candidates[key] = _candidates(index, w, max_answers)
        pool = candidates[key]
        rng = random.Random(f"{seed}:{graph}:{w.wording_id}")
        fresh = [c for c in pool if c[0] not in used[key]]
        stale = [c for c in pool if c[0] in used[key]]
        picked = rng.sample(fresh, min(per_wording, len(fresh)))
        if len(picked) < per_wording:
            picked += rng.sample(stale, min(per_wording - len(picked), len(stale)))
        for topic, answers in picked:
            used[key].add(topic)
            name = data.entities[topic]
            text = w.template.replace("{e}", name)
            out.append(
                EvalQuestion(
                    graph=graph,
                    text=text,
                    topic=topic,
                    answers=answers,
                    answer_names=tuple(data.entities[a] for a in answers),
                    hops=len(w.path),
                    path=w.path,
                    answerable=w.answerable,
                    overlaps_relation_name=w.answerable and question_overlaps(data, text, name, w.path),
                    wording_id=w.wording_id,
                )
            )
    return out


def _candidates(index: _Index, w: Wording, max_answers: int) -> list[tuple[str, tuple[str, ...]]]:
    """Eligible (topic, sorted answers) pairs of a wording, sorted by topic id."""
    if not w.answerable:
        assert w.topics_from is not None
        starts = index.adj.get(w.topics_from, {})
        return [(e, ()) for e in sorted(starts) if e in index.nameable]
    out = []
    for topic in sorted(index.adj.get(w.path[0], {})):
        if topic not in index.nameable:
            continue
        answers = index.answers(topic, w.path)
        if 1 <= len(answers) <= max_answers:
            out.append((topic, tuple(sorted(answers))))
    return out


# --------------------------------------------------------------------------------------------- checking


def template_overlaps(data: GraphData, w: Wording) -> bool:
    """Overlap of a wording template (slot removed) with its path's relation words."""
    return question_overlaps(data, w.template.replace("{e}", " "), "", w.path)


def check(
    graph: str,
    data: GraphData,
    questions: list[EvalQuestion],
    wordings: list[Wording],
    wording_set: str = "eval",
) -> list[str]:
    """Problems with a graph's wordings and questions (empty when every requirement holds)."""
    problems: list[str] = []
    spec = load_wordings(graph, wording_set)
    if spec.get("graph") != ("metaqa" if graph == "metaqa-freebase" else graph):
        problems.append(f"wording file names graph {spec.get('graph')!r}")
    relations = {r for _, r, _ in data.triples}
    texts = Counter(w.template for w in wordings)
    problems += [f"duplicate wording {t!r}" for t, c in texts.items() if c > 1]
    for w in wordings:
        if w.template.count("{e}") != 1:
            problems.append(f"{w.wording_id}: needs exactly one {{e}}: {w.template!r}")
        for r, d in w.path or (w.topics_from,):
            if r not in relations or d not in DIRECTIONS:
                problems.append(f"{w.wording_id}: unknown relation or direction {r!r} {d!r}")
    one_hop = Counter(w.path[0] for w in wordings if len(w.path) == 1)
    for r in sorted(relations):
        for d in DIRECTIONS:
            if one_hop[(r, d)] < MIN_WORDINGS:
                problems.append(f"relation {r} {d}: {one_hop[(r, d)]} one-hop wordings (< {MIN_WORDINGS})")
    chains = Counter(w.path for w in wordings if len(w.path) == 2)
    good_chains = [p for p, c in chains.items() if c >= MIN_WORDINGS]
    if len(good_chains) < MIN_TWO_HOP_CHAINS:
        problems.append(f"{len(good_chains)} two-hop chains with >= {MIN_WORDINGS} wordings")
    if any(len(w.path) > 2 for w in wordings):
        problems.append("paths longer than two hops")
    answerable = [w for w in wordings if w.answerable]
    free = sum(not template_overlaps(data, w) for w in answerable)
    if free < MIN_NO_OVERLAP_SHARE * len(answerable):
        problems.append(f"only {free}/{len(answerable)} answerable wordings avoid relation words")
    qa = [q for q in questions if q.answerable]
    free_q = sum(not q.overlaps_relation_name for q in qa)
    if free_q < MIN_NO_OVERLAP_SHARE * len(qa):
        problems.append(f"only {free_q}/{len(qa)} answerable questions avoid relation words")
    unans = len(questions) - len(qa)
    if unans < MIN_UNANSWERABLE_SHARE * len(questions):
        problems.append(f"only {unans}/{len(questions)} questions are unanswerable")
    problems += _check_questions(data, questions)
    return problems


def notes(graph: str, questions: list[EvalQuestion], wordings: list[Wording]) -> list[str]:
    """Soft targets that are reported but do not fail the check."""
    out: list[str] = []
    if not QUESTION_RANGE[0] <= len(questions) <= QUESTION_RANGE[1]:
        out.append(f"{len(questions)} questions, outside the aimed-for range {QUESTION_RANGE}")
    asked = {q.wording_id for q in questions}
    idle = [w.wording_id for w in wordings if w.wording_id not in asked]
    if idle:
        out.append(f"{len(idle)} wordings have no eligible topic: " + ", ".join(idle))
    return out


def _check_questions(data: GraphData, questions: list[EvalQuestion]) -> list[str]:
    """Recompute every gold answer set with a plain scan of the triples."""
    problems: list[str] = []
    names = Counter(n.lower() for n in data.entities.values())
    by_rel: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for h, r, t in data.triples:
        by_rel[r].append((h, t))
    seen: Counter[tuple[str, str]] = Counter()
    for q in questions:
        name = data.entities.get(q.topic, "")
        seen[(q.wording_id, q.topic)] += 1
        if len(name) < 3 or names[name.lower()] != 1 or name not in q.text:
            problems.append(f"{q.wording_id}: bad topic {q.topic!r}")
        if not q.answerable:
            if q.answers or q.hops or q.path or q.overlaps_relation_name:
                problems.append(f"{q.wording_id}: unanswerable question carries answers or a path")
            continue
        current = {q.topic}
        for r, d in q.path:
            if d == "forward":
                current = {t for h, t in by_rel[r] if h in current}
            else:
                current = {h for h, t in by_rel[r] if t in current}
        if q.hops > 1:
            current.discard(q.topic)
        if set(q.answers) != current or not q.answers or q.hops != len(q.path):
            problems.append(f"{q.wording_id}: gold answers differ from the triples for {q.topic!r}")
        if q.answer_names != tuple(data.entities[a] for a in q.answers):
            problems.append(f"{q.wording_id}: answer names out of step")
    problems += [f"{wid}: topic {t!r} drawn twice" for (wid, t), c in seen.items() if c > 1]
    return problems


def summarize(graph: str, data: GraphData, questions: list[EvalQuestion]) -> dict[str, int]:
    """Counts per bucket and per hop count."""
    qa = [q for q in questions if q.answerable]
    return {
        "relations": len({r for _, r, _ in data.triples}),
        "questions": len(questions),
        "overlap": sum(q.overlaps_relation_name for q in qa),
        "no_overlap": sum(not q.overlaps_relation_name for q in qa),
        "unanswerable": len(questions) - len(qa),
        "1-hop": sum(q.hops == 1 for q in qa),
        "2-hop": sum(q.hops == 2 for q in qa),
    }


def main(argv: list[str] | None = None) -> int:
    """Print per-graph counts; with ``--check`` fail when a requirement is not met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--graph", choices=GRAPHS, action="append")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wordings", choices=WORDING_SETS, default="eval")
    args = parser.parse_args(argv)
    cols = ("relations", "questions", "overlap", "no_overlap", "unanswerable", "1-hop", "2-hop")
    print(f"{'graph':<16}" + "".join(f"{c:>13}" for c in cols))
    failures: dict[str, list[str]] = {}
    for graph in args.graph or GRAPHS:
        data = load_graph(graph, args.data)
        wordings = wordings_for(graph, wordings=args.wordings)
        questions = _make_questions(graph, data, wordings, args.seed, 3, 20)
        row = summarize(graph, data, questions)
        print(f"{graph:<16}" + "".join(f"{row[c]:>13}" for c in cols))
        if args.check:
            for note in notes(graph, questions, wordings):
                print(f"  note: {note}")
            problems = check(graph, data, questions, wordings, args.wordings)
            if questions != _make_questions(graph, data, wordings, args.seed, 3, 20):
                problems.append("question generation is not deterministic")
            if problems:
                failures[graph] = problems
    for graph, problems in failures.items():
        print(f"\nFAILED {graph}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems[:50]:
            print(f"  - {p}", file=sys.stderr)
    if args.check and not failures:
        print("\ncheck passed: every requirement holds")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
