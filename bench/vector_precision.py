"""Entity name vectors in half precision: what linking by meaning loses, and what it saves.

The names of two real graphs in ``--data`` (Hetionet's nodes, WN18RR's entity texts) are encoded once;
2,000 of them, each with one typo (two neighbouring letters swapped, or one dropped) and lower-cased, are
the queries. Every query is linked to its nearest name (``nearest_entities``: the scan, then the best
candidates re-scored in fp32) with the table stored in fp32, fp16 and bf16, in one run: how often the top
name is the one the typo came from (or a name spelt the same), how often it agrees with fp32, bytes per
vector, and milliseconds per query, one query at a time as Ask and Lookup link (and per query in batches of
32).

Usage: python -m bench.vector_precision --data ../shared/data [--queries 2000]
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import time
from pathlib import Path

import torch

from graphfuse.encoder import TextEncoder
from graphfuse.gnn.inference.linking import nearest_entities

BATCH = 32


def real_names(data: Path) -> list[str]:
    names = []
    with open(data / "hetionet" / "nodes.tsv", encoding="utf-8") as nodes:
        names += [row["name"] for row in csv.DictReader(nodes, delimiter="\t")]
    with open(data / "wn18rr" / "entity2text.txt", encoding="utf-8") as texts:
        names += [line.rstrip("\n").split("\t")[1].split(",")[0] for line in texts if "\t" in line]
    return sorted({" ".join(n.split()) for n in names if n.strip()})


def with_typo(name: str, rng: random.Random) -> str:
    letters = [i for i, ch in enumerate(name[:-1]) if ch.isalpha() and name[i + 1].isalpha()]
    if not letters:
        return name.lower()
    i = rng.choice(letters)
    if rng.random() < 0.5:
        name = name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    else:
        name = name[:i] + name[i + 1 :]
    return name.lower()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    names = real_names(args.data)
    rng = random.Random(0)
    sources = rng.sample(range(len(names)), args.queries)
    encoder = TextEncoder()
    started = time.perf_counter()
    table = encoder.encode(names, truncate=True).vectors
    queries = encoder.encode([with_typo(names[i], rng) for i in sources], truncate=True).vectors
    print(
        f"{platform.machine()}, {torch.get_num_threads()} threads; {len(names):,} names, {args.queries:,} "
        f"queries with a typo; encoded in {time.perf_counter() - started:.0f} s\n"
    )
    spelt = {}
    for i, name in enumerate(names):
        spelt.setdefault(name.lower(), set()).add(i)
    exact = None
    print("| stored as | bytes per vector | top name right | same as fp32 | ms per query | batched |")
    print("|---|---:|---:|---:|---:|---:|")
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        stored = table.to(dtype)
        top, seconds = [], 0.0
        for query in queries:
            began = time.perf_counter()
            _, indices = nearest_entities(query, stored, 1)
            seconds += time.perf_counter() - began
            top.append(int(indices[0]))
        began = time.perf_counter()
        for start in range(0, args.queries, BATCH):
            nearest_entities(queries[start : start + BATCH], stored, 1)
        batched = time.perf_counter() - began
        exact = exact or top
        right = sum(t in spelt[names[s].lower()] for t, s in zip(top, sources, strict=True)) / args.queries
        same = sum(a == b for a, b in zip(top, exact, strict=True)) / args.queries
        size = stored.element_size() * stored.shape[1]
        print(
            f"| {str(dtype).removeprefix('torch.')} | {size} | {right:.4f} | {same:.4f} | "
            f"{1000 * seconds / args.queries:.2f} | {1000 * batched / args.queries:.2f} |"
        )


if __name__ == "__main__":
    main()
