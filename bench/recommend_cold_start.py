"""How much item names help a recommender with items nobody has interacted with yet (cold start).

The interaction graph is built from MetaQA's WikiMovies knowledge base (``../shared/data/metaqa/kb.txt``):
users are the people who made movies (``starred_actors``, ``directed_by``, ``written_by``), items are the
movies, an interaction is "this person worked on this movie", and each movie is named as a catalog would
describe it: ``"<title>: <genres>; <tags>; <language>; <year>"`` from its other facts. The graph is written
to a fresh store and fitted with `graphfuse train --task recommend`'s code path, which holds out 10 % of each
person's movies and 10 % of the movies whole (cold: no interaction left), then ranks the held-out
interactions twice: graph filter only (a cold movie is never recommended) and with cold movies competing by
the similarity of their description to the person's movies' descriptions.

Usage: python -m bench.recommend_cold_start [--kb ../shared/data/metaqa/kb.txt] [--min-movies 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from graphfuse.gnn.data.records import EntityRecord, TripleRecord
from graphfuse.gnn.formats.loaders import iter_records
from graphfuse.gnn.models.graph_filter import GraphFilterConfig
from graphfuse.server.jobs.recommend_training import train_recommender_graph
from graphfuse.server.storage.store import GraphStore

PEOPLE = {"starred_actors", "directed_by", "written_by"}
DESCRIBING = ("has_genre", "has_tags", "in_language", "release_year")


def movie_graph(kb: Path, min_movies: int) -> list[EntityRecord | TripleRecord]:
    facts: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    worked: dict[str, set[str]] = defaultdict(set)
    for record in iter_records(kb, "metaqa"):
        assert isinstance(record, TripleRecord)
        if record.relation in PEOPLE:
            worked[record.tail].add(record.head)
        elif record.relation in DESCRIBING:
            facts[record.head][record.relation].append(record.tail)
    people = {p: movies for p, movies in worked.items() if len(movies) >= min_movies}
    movies = sorted({m for ms in people.values() for m in ms})
    records: list[EntityRecord | TripleRecord] = []
    for movie in movies:
        parts = [", ".join(facts[movie][r]) for r in DESCRIBING if facts[movie][r]]
        records.append(EntityRecord(f"movie:{movie}", f"{movie}: {'; '.join(parts)}", type="movie"))
    for person, ms in sorted(people.items()):
        records.append(EntityRecord(f"person:{person}", person, type="person"))
        records += [TripleRecord(f"person:{person}", "worked_on", f"movie:{m}") for m in sorted(ms)]
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--kb", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/metaqa/kb.txt"
    )
    parser.add_argument("--min-movies", type=int, default=2, help="people with fewer movies are left out")
    parser.add_argument("--cold-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ideal-weight", type=float, default=None, help="the graph filter's ideal_weight (0 skips the SVD)"
    )
    args = parser.parse_args()
    config = (
        GraphFilterConfig()
        if args.ideal_weight is None
        else GraphFilterConfig(ideal_weight=args.ideal_weight)
    )
    records = movie_graph(args.kb, args.min_movies)
    interactions = sum(isinstance(r, TripleRecord) for r in records)
    with tempfile.TemporaryDirectory() as tmp:
        with GraphStore(tmp) as store:
            store.create_graph("movies")
            store.write("movies", records)
        started = time.perf_counter()
        report = train_recommender_graph(
            Path(tmp), "movies", cold_share=args.cold_share, seed=args.seed, config=config, on_stage=print
        )
        seconds = time.perf_counter() - started
    assert report.metrics is not None and report.with_text is not None
    print(
        f"\nMetaQA people x movies: {report.users} people, {report.items} movies, {interactions} "
        f"interactions; {report.cold_items} movies held out whole; train {seconds:.0f} s\n"
    )
    k = report.metrics.k
    print(f"| held-out interactions ({report.metrics.users} people) | Recall@{k} | NDCG@{k} |")
    print("|---|---:|---:|")
    print(f"| graph filter only | {report.metrics.recall:.4f} | {report.metrics.ndcg:.4f} |")
    text = report.with_text
    print(f"| with cold movies ranked by their descriptions | {text.recall:.4f} | {text.ndcg:.4f} |")


if __name__ == "__main__":
    main()
