"""Synthetic knowledge graphs for the scaling bench: power-law degrees, typed entities, hundreds of relations.

Entities belong to one of ``KINDS`` kinds (kind sizes are Zipf-distributed). Each relation joins a head kind
to a tail kind and has a Zipf-distributed share of the edges; within a relation, heads and tails are drawn
from their kind with a popularity that falls as a power of the entity's rank, so degrees follow a power law
(a few hubs with tens of thousands of edges, most entities with a handful). Entities are named by
pronounceable pseudo-words that are unique per entity ("Tovaremi Kel"), so a names TSV of them reads like a
real export; ``--ids`` writes opaque ids (``Q123``, or plain numbers with ``--ids ''``) instead.

Usage: python -m bench.synthetic_kg --edges 1000000 --out graph.tsv [--entities N] [--relations 250]
       [--ids [PREFIX]]
"""

from __future__ import annotations

import argparse
import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = (
    "person", "place", "organisation", "film", "book", "disease", "drug", "gene", "protein", "species",
    "event", "award", "language", "genre", "company", "product", "building", "river", "instrument", "team",
)  # fmt: skip
_VERBS = (
    "founded", "directed", "wrote", "treats", "binds", "located in", "member of", "born in", "plays",
    "produced", "owns", "causes", "regulates", "part of", "speaks", "won", "studied at", "married to",
    "influenced", "succeeded", "borders", "flows into", "published", "designed", "sponsored", "hosted",
)  # fmt: skip
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"][:64]  # 64 syllables: 6 bits each


@dataclass(frozen=True)
class SyntheticGraph:
    """Entity ``i`` is ``names[i]`` of kind ``KINDS[kinds[i]]``; relation ``r`` is ``relations[r]``."""

    names: np.ndarray  # (N,) str
    kinds: np.ndarray  # (N,) int
    relations: list[str]
    heads: np.ndarray  # (E,) int64
    rels: np.ndarray  # (E,) int64
    tails: np.ndarray  # (E,) int64


def pseudo_names(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct capitalised pseudo-word names: a two- or three-syllable word and a one-syllable one."""
    order = np.random.default_rng(seed).permutation(n)  # so that neighbouring ids do not share a prefix
    digits = [(order >> (6 * k)) & 63 for k in range(4)]
    syllables = np.array(_SYLLABLES)
    first = np.char.add(
        np.char.add(syllables[digits[0]], syllables[digits[1]]), np.where(digits[3] > 0, "", "n")
    )
    long = order >= 1 << 18
    first = np.where(long, np.char.add(first, syllables[digits[3]]), first)
    return np.char.add(np.char.add(np.char.capitalize(first), " "), np.char.capitalize(syllables[digits[2]]))


def generate(
    num_edges: int, num_entities: int | None = None, num_relations: int = 250, seed: int = 0
) -> SyntheticGraph:
    """A graph of about ``num_edges`` distinct edges (repeated draws are dropped) over ``num_entities``
    entities (default: one per ten edges)."""
    rng = np.random.default_rng(seed)
    n = num_entities or max(len(KINDS), num_edges // 10)
    kind_share = 1.0 / np.arange(1, len(KINDS) + 1) ** 0.8
    kinds = rng.choice(len(KINDS), size=n, p=kind_share / kind_share.sum())
    members = [np.flatnonzero(kinds == k) for k in range(len(KINDS))]
    relation_share = 1.0 / np.arange(1, num_relations + 1) ** 0.9
    relation_share /= relation_share.sum()
    ends = rng.integers(0, len(KINDS), size=(num_relations, 2))
    relations = [
        f"{KINDS[h]}_{_VERBS[r % len(_VERBS)].replace(' ', '_')}_{KINDS[t]}_{r}"
        for r, (h, t) in enumerate(ends)
    ]
    keys = np.empty(0, dtype=np.int64)
    while keys.size < num_edges:  # draw until enough distinct edges: popular pairs repeat
        wanted = int((num_edges - keys.size) * 1.5) + 1000
        heads, rels, tails = [], [], []
        for r, count in enumerate(rng.multinomial(wanted, relation_share)):
            rels.append(np.full(count, r))
            for side, out in ((ends[r, 0], heads), (ends[r, 1], tails)):
                pool = members[side]
                out.append(pool[_power_law_ranks(rng, pool.size, count)])
        drawn = (np.concatenate(heads) * num_relations + np.concatenate(rels)) * n + np.concatenate(tails)
        keys = _sorted_union(keys, np.unique(drawn))
    keys = rng.permutation(keys)[:num_edges]
    heads_, rest = np.divmod(keys, num_relations * n)
    rels_, tails_ = np.divmod(rest, n)
    return SyntheticGraph(pseudo_names(n, seed), kinds, relations, heads_, rels_, tails_)


def _sorted_union(keys: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """``np.unique`` of both sorted, distinct arrays, merging instead of sorting ``keys`` again."""
    at = np.searchsorted(keys, drawn).clip(max=max(keys.size - 1, 0))
    new = drawn[keys[at] != drawn] if keys.size else drawn
    return np.sort(np.concatenate([keys, new]), kind="stable")  # two sorted runs: one merge


def _power_law_ranks(rng: np.random.Generator, size: int, count: int, exponent: float = 1.1) -> np.ndarray:
    """``count`` draws from ``range(size)`` with probability falling as ``(rank + 1) ** -exponent``."""
    weights = _cumulative_weights(size, exponent)
    return np.minimum(np.searchsorted(weights, rng.random(count) * weights[-1]), size - 1)


@functools.lru_cache(maxsize=64)
def _cumulative_weights(size: int, exponent: float) -> np.ndarray:
    """One table per kind's size (every relation draws from one of the kinds)."""
    return np.cumsum(1.0 / np.arange(1, size + 1) ** exponent)


def write_tsv(
    graph: SyntheticGraph, path: Path, id_prefix: str | None = None, chunk: int = 2_000_000
) -> None:
    """Write ``head<TAB>relation<TAB>tail`` lines: entity names, or with ``id_prefix`` ids
    ``{id_prefix}{index}`` (``Q123``; plain numbers, which carry no words to embed, with ``""``)."""
    if id_prefix is None:
        labels = graph.names
    else:
        labels = np.char.add(id_prefix, np.arange(graph.names.size).astype(str))
    relations = np.array(graph.relations)
    with open(path, "w", encoding="utf-8") as out:
        for start in range(0, graph.heads.size, chunk):
            part = slice(start, start + chunk)
            frame = pd.DataFrame(
                {
                    "h": labels[graph.heads[part]],
                    "r": relations[graph.rels[part]],
                    "t": labels[graph.tails[part]],
                }
            )
            frame.to_csv(out, sep="\t", header=False, index=False, lineterminator="\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--edges", type=int, required=True)
    parser.add_argument("--entities", type=int, default=None)
    parser.add_argument("--relations", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ids", nargs="?", const="Q", default=None, metavar="PREFIX",
        help="Ids (PREFIX then the index; default prefix Q, '' for plain numbers) instead of names.",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    graph = generate(args.edges, args.entities, args.relations, args.seed)
    write_tsv(graph, args.out, id_prefix=args.ids)
    degree = np.bincount(np.concatenate([graph.heads, graph.tails]), minlength=graph.names.size)
    print(
        f"{args.out}: {graph.heads.size} edges, {graph.names.size} entities, "
        f"{len(graph.relations)} relations, "
        f"max degree {degree.max()}, median {int(np.median(degree))}, {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
