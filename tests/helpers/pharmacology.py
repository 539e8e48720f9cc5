"""A small hand-made pharmacology graph for link-prediction tests."""

from __future__ import annotations

import random

from graphfuse.gnn.data.records import EntityRecord, TripleRecord


def pharmacology(typed: bool = True, seed: int = 0) -> tuple[list[EntityRecord], list[TripleRecord]]:
    """Compounds bind genes, diseases are associated with genes, and a compound treats most diseases that
    share a gene with it (and a few others)."""
    rng = random.Random(seed)
    compounds = [f"c{i}" for i in range(40)]
    genes = [f"g{i}" for i in range(30)]
    diseases = [f"d{i}" for i in range(15)]
    binds = {c: rng.sample(genes, 2) for c in compounds}
    associated = {d: rng.sample(genes, 3) for d in diseases}
    triples = [TripleRecord(c, "binds", g) for c, gs in binds.items() for g in gs]
    triples += [TripleRecord(d, "associates", g) for d, gs in associated.items() for g in gs]
    for c in compounds:
        for d in diseases:
            shared = set(binds[c]) & set(associated[d])
            if (shared and rng.random() < 0.7) or rng.random() < 0.01:
                triples.append(TripleRecord(c, "treats", d))
    kinds = {"c": "Compound", "g": "Gene", "d": "Disease"}
    entities = [
        EntityRecord(e, None, (), kinds[e[0]] if typed else None) for e in compounds + genes + diseases
    ]
    return entities, triples
