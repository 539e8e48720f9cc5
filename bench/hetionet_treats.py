"""Drug repurposing on Hetionet: held-out Compound-treats-Disease edges, ranked among compound-disease pairs.

Hetionet's sample (`DATA/hetionet/`: nodes, edges, metaedges) is loaded as `graphfuse ingest --nodes --edges
--relations` reads it. Its 755 treatments are held out two ways, a share at random and every treatment of a
share of the treated compounds (compound-disjoint: no held-out compound has a treatment left in training),
the rest of the graph stays, and three scorers rank every compound x disease pair that is not a training
treatment:

- degree prior: the product of the compound's and the disease's numbers of training treatments (+1 each);
- DWPC: the degree-weighted count of every path of length 2-3 between them (damping 0.4, as in Rephetio),
  all patterns summed, unsupervised;
- path patterns: the predictor `graphfuse train --task link --relation treats` fits
  (:mod:`graphfuse.gnn.models.path_patterns`), scored as Lookup scores it.

Reported: AUROC and AUPRC of the held-out treatments against every other pair; MRR and Hits@10 of each
held-out treatment among its compound's diseases (training treatments filtered), and the fitting time; and
how the predictor's probabilities hold up: their sum against the number of held-out treatments, and over the
100 most probable pairs their mean against the share that are held-out treatments.

``--as names`` loads the graph as a names TSV carries it (no node kinds; edge kinds by their verb alone), the
way `graphfuse ingest names.tsv` would; the evaluation grid still uses the kinds.

Usage: python -m bench.hetionet_treats --data ../shared/data [--share 0.2] [--seeds 0 1 2] [--as typed names]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from graphfuse.gnn.data.graph import KnowledgeGraph
from graphfuse.gnn.data.records import EntityRecord, RelationRecord, TripleRecord
from graphfuse.gnn.formats.node_edge import iter_node_edge_records
from graphfuse.gnn.inference.pattern_links import PatternLinkInference
from graphfuse.gnn.models.path_patterns import DirectionMatrices, PathPatternConfig
from graphfuse.gnn.training.path_patterns import enumerate_patterns, train_path_patterns

TARGET = "CtD"


def load(data: Path) -> tuple[list[EntityRecord | RelationRecord], list[TripleRecord]]:
    folder = data / "hetionet"
    records = list(
        iter_node_edge_records(folder / "nodes.tsv", folder / "edges-5k.sif.gz", folder / "metaedges.tsv")
    )
    triples = [r for r in records if isinstance(r, TripleRecord)]
    return [r for r in records if not isinstance(r, TripleRecord)], triples


def split(
    triples: list[TripleRecord], share: float, disjoint: bool, rng: np.random.Generator
) -> tuple[list[TripleRecord], list[TripleRecord]]:
    """``(kept, held out)`` treatments."""
    treats = [t for t in triples if t.relation == TARGET]
    if disjoint:
        compounds = sorted({t.head for t in treats})
        held = set(rng.choice(compounds, int(round(share * len(compounds))), replace=False).tolist())
        out = [t for t in treats if t.head in held]
    else:
        out = [treats[i] for i in rng.choice(len(treats), int(round(share * len(treats))), replace=False)]
    gone = set(out)
    return [t for t in triples if t not in gone], out


def ranking(scores: np.ndarray, truth: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """Metrics over a ``(C, D)`` score grid: held-out ``truth`` against every pair not ``known``."""
    candidates = ~known
    auroc = roc_auc_score(truth[candidates], scores[candidates])
    auprc = average_precision_score(truth[candidates], scores[candidates])
    reciprocal, hits = [], []
    for c, d in zip(*np.nonzero(truth), strict=True):
        row = np.where(candidates[c], scores[c], -np.inf)
        rank = 1 + int((row > scores[c, d]).sum()) + 0.5 * int((row == scores[c, d]).sum() - 1)
        reciprocal.append(1.0 / rank)
        hits.append(rank <= 10)
    mrr, hits_at_10 = float(np.mean(reciprocal)), float(np.mean(hits))
    return {"AUROC": auroc, "AUPRC": auprc, "MRR": mrr, "Hits@10": hits_at_10}


def as_names(
    entities: list, triples: list[TripleRecord]
) -> tuple[list[EntityRecord], list[TripleRecord], dict[str, str]]:
    """The graph as a names TSV carries it: no node kinds, each edge kind by its verb alone (Compound- and
    Disease-upregulates-Gene become one relation); and the relation each original kind became."""
    verbs = {r.id: r.name for r in entities if isinstance(r, RelationRecord) and r.name}
    untyped = [dataclasses.replace(e, type=None) for e in entities if isinstance(e, EntityRecord)]
    return untyped, [dataclasses.replace(t, relation=verbs[t.relation]) for t in triples], verbs


def run(
    entities: list, triples: list[TripleRecord], share: float, disjoint: bool, seed: int, names: bool
) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    kept, held = split(triples, share, disjoint, rng)
    kinds = {e.id: e.type for e in entities if isinstance(e, EntityRecord)}
    if names:
        nodes, kept, verbs = as_names(entities, kept)
        graph, target_id = KnowledgeGraph(nodes, kept), verbs[TARGET]
    else:
        graph, target_id = KnowledgeGraph([e for e in entities if isinstance(e, EntityRecord)], kept), TARGET
        graph.add([e for e in entities if isinstance(e, RelationRecord)])
    target = graph.relation_index[target_id]
    compounds = np.array([i for i, e in enumerate(graph.entity_ids) if kinds.get(e) == "Compound"])
    diseases = np.array([i for i, e in enumerate(graph.entity_ids) if kinds.get(e) == "Disease"])
    at_c = {int(c): i for i, c in enumerate(compounds)}
    at_d = {int(d): i for i, d in enumerate(diseases)}
    known = np.zeros((compounds.size, diseases.size), dtype=bool)
    truth = np.zeros_like(known)
    heads, rels, tails = (x.numpy() for x in graph.edges)
    for h, t in zip(heads[rels == target], tails[rels == target], strict=True):
        known[at_c[int(h)], at_d[int(t)]] = True
    for t in held:
        truth[at_c[graph.entity_index[t.head]], at_d[graph.entity_index[t.tail]]] = True

    matrices = DirectionMatrices(graph, 0.4)
    out_degree, in_degree = matrices.degrees[target]
    prior = np.outer(out_degree[compounds] + 1, in_degree[diseases] + 1)
    paths = [p for p in enumerate_patterns(graph, target, compounds, diseases, 3) if len(p) >= 2]
    dwpc = matrices.walks(compounds, paths, diseases).sum(0)

    started = time.perf_counter()
    predictor, _ = train_path_patterns(graph, [target], PathPatternConfig(seed=seed))
    fit_s = time.perf_counter() - started
    inference = PatternLinkInference(predictor, "bench")
    learned = inference.tail_probabilities(
        graph, torch.from_numpy(compounds), torch.full((compounds.size,), target)
    )[:, torch.from_numpy(diseases)].numpy()
    return {
        "degree prior": ranking(prior.astype(np.float64), truth, known),
        "DWPC, paths of length 2-3": ranking(dwpc.astype(np.float64), truth, known),
        "path patterns (Lookup)": {
            **ranking(learned.astype(np.float64), truth, known),
            **calibration(learned.astype(np.float64), truth, known),
            "fit s": fit_s,
        },
    }


def calibration(probability: np.ndarray, truth: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """How the probabilities hold up: their sum over the candidate pairs against the held-out treatments
    among them, and over the 100 most probable pairs, their mean against the share that are held out."""
    candidates = ~known
    top = np.argsort(-probability[candidates])[:100]
    return {
        "expected / held out": float(probability[candidates].sum() / truth[candidates].sum()),
        "top 100 mean p": float(probability[candidates][top].mean()),
        "top 100 held out": float(truth[candidates][top].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--share", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--as",
        dest="forms",
        nargs="+",
        choices=("typed", "names"),
        default=["typed", "names"],
        help="typed: node and edge kinds as the node and edge tables give them; names: as a names TSV "
        "carries the graph (no kinds, edge kinds by their verb alone)",
    )
    args = parser.parse_args()
    entities, triples = load(args.data)
    print(
        f"# bench.hetionet_treats: {platform.machine()}, {torch.get_num_threads()} threads; "
        f"{len(triples)} edges; {args.share:.0%} of treatments held out; seeds {args.seeds} (mean)\n"
    )
    calibrated: list[str] = []
    print("| loaded as | split | scorer | AUROC | AUPRC | MRR | Hits@10 | fit s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for form in args.forms:
        for disjoint in (False, True):
            results = [
                run(entities, triples, args.share, disjoint, seed, form == "names") for seed in args.seeds
            ]
            for scorer in results[0]:
                mean = {k: float(np.mean([r[scorer][k] for r in results])) for k in results[0][scorer]}
                fit = f"{mean['fit s']:.0f}" if "fit s" in mean else ""
                if "top 100 mean p" in mean:
                    calibrated.append(
                        f"| {form} | {'compound-disjoint' if disjoint else 'random'} | "
                        f"{mean['expected / held out']:.2f} | {mean['top 100 mean p']:.3f} | "
                        f"{mean['top 100 held out']:.3f} |"
                    )
                print(
                    f"| {form} | {'compound-disjoint' if disjoint else 'random'} | {scorer} | "
                    f"{mean['AUROC']:.3f} | {mean['AUPRC']:.3f} | {mean['MRR']:.3f} | {mean['Hits@10']:.3f} "
                    f"| {fit} |",
                    flush=True,
                )

    print("\nPath patterns' probabilities: summed over the candidate pairs, against the held-out treatments;")
    print("over the 100 most probable pairs, their mean against the share of held-out treatments there.\n")
    print("| loaded as | split | sum / held out | top 100 mean p | top 100 held out |")
    print("|---|---|---:|---:|---:|")
    print("\n".join(calibrated))


if __name__ == "__main__":
    main()
