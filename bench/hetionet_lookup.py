"""Medical lookups on Hetionet's sample served by a real server: ingest, train and Lookup latency in one run.

For each way a user brings Hetionet's sample (``DATA/hetionet``), a real `graphfuse serve --no-demo`
process is started on a fresh data directory and the graph is loaded with the CLI:

- ``nodes-edges``: `graphfuse ingest --nodes nodes.tsv --edges edges-5k.sif.gz --relations metaedges.tsv`;
  entities are Hetionet's ids (``Compound::DB00997``), ``treats`` resolves to CtD through its name;
- ``names``: a ``head name<TAB>verb<TAB>tail name`` TSV written from the same files (names with
  whitespace collapsed, the verb of the metaedge: ``Compound - treats - Disease`` -> ``treats``).

Then `graphfuse train --task link --relation treats --target ...` (timed until the server answers with the
new predictor; the target is 15 minutes at most), and Lookups through the Python client, one caller, after
5 warm-up calls: "what does compound X treat" for 200 compounds without evidence (top 200, inferred only),
50 of them with evidence paths (top 10), and "what treats disease Y" for 50 diseases (top 100). The
server's resident memory (VmRSS) is read empty, after ingest and with the predictor loaded.

Usage: python -m bench.hetionet_lookup --data ../shared/data [--as nodes-edges|names]
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import random
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench.umls_qa import GRAPHFUSE, percentile, start_server, stop_server
from graphfuse.server.client import Client

VARIANTS = ("nodes-edges", "names")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def timed(*args: str, timeout: float | None = None) -> float:
    """Run a `graphfuse` command; its seconds, or its output in the error when it fails."""
    started = time.perf_counter()
    done = subprocess.run([*GRAPHFUSE, *args], capture_output=True, text=True, env=ENV, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"graphfuse {args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started


def read_hetionet(folder: Path) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str, str]]]:
    """Node names by id (whitespace collapsed), metaedge verbs by abbreviation, and the edges."""
    rows = [line.split("\t") for line in (folder / "nodes.tsv").read_text().splitlines()[1:]]
    names = {row[0]: " ".join(row[1].split()) for row in rows}
    rows = [line.split("\t") for line in (folder / "metaedges.tsv").read_text().splitlines()[1:]]
    verbs = {row[1]: re.split(r" [->] ", row[0])[1] for row in rows}
    with gzip.open(folder / "edges-5k.sif.gz", "rt") as file:
        edges = [tuple(line.rstrip("\n").split("\t")) for line in file][1:]
    return names, verbs, edges


def latencies(client: Client, calls: list[dict]) -> tuple[list[float], list]:
    for call in calls[:5]:  # warm-up
        client.lookup(graph="het", relation="treats", **call)
    times, responses = [], []
    for call in calls:
        started = time.perf_counter()
        responses.append(client.lookup(graph="het", relation="treats", **call))
        times.append((time.perf_counter() - started) * 1e3)
    return times, responses


def run_variant(variant: str, folder: Path, names: dict, verbs: dict, edges: list, picks: tuple) -> dict:
    compounds, diseases = picks
    label = (lambda i: i) if variant == "nodes-edges" else names.get
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        if variant == "nodes-edges":
            files = ["--nodes", str(folder / "nodes.tsv"), "--edges", str(folder / "edges-5k.sif.gz")]
            files += ["--relations", str(folder / "metaedges.tsv")]
        else:
            names_tsv = Path(tmp) / "names.tsv"
            names_tsv.write_text("".join(f"{names[h]}\t{verbs[r]}\t{names[t]}\n" for h, r, t in edges))
            files = [str(names_tsv), "--chunk-size", "5000"]
        process, target, _ = start_server(data_dir, "--no-demo")
        threading.Thread(target=process.stdout.read, daemon=True).start()  # never let its pipe fill
        try:
            row = {"rss": [rss_mb(process.pid)]}
            row["ingest"] = timed("ingest", "--graph", "het", *files, "--target", target)
            row["rss"].append(rss_mb(process.pid))
            train = ["train", "--task", "link", "--graph", "het", "--relation", "treats"]
            row["train"] = timed(*train, "--data-dir", str(data_dir), "--target", target, timeout=15 * 60)
            row["rss"].append(rss_mb(process.pid))
            with Client(target, timeout=60) as client:
                plain = dict(exclude_facts=True, no_evidence=True)
                heads = [dict(head=label(c), top_k=200, **plain) for c in compounds]
                evidence = [dict(head=label(c), top_k=10, exclude_facts=True) for c in compounds[:50]]
                tails = [dict(tail=label(d), top_k=100, **plain) for d in diseases]
                row["head"], answers = latencies(client, heads)
                row["evidence"], with_paths = latencies(client, evidence)
                row["tail"], _ = latencies(client, tails)
            row["rss_after"] = rss_mb(process.pid)
            row["empty"] = sum(not r.triples for r in answers)
            row["paths"] = sum(any(t.evidence for t in r.triples) for r in with_paths)
            row["predictor"] = answers[0].link_predictor or "(none)"
            row["relation"] = answers[0].resolved_relation
        finally:
            stop_server(process)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--as", dest="variant", choices=VARIANTS, help="default: both, in sequence")
    args = parser.parse_args()

    folder = args.data / "hetionet"
    names, verbs, edges = read_hetionet(folder)
    linked = sorted({e for h, _, t in edges for e in (h, t)})  # in the graph in both variants
    rng = random.Random(0)
    compounds = rng.sample([e for e in linked if e.startswith("Compound::")], 200)
    diseases = rng.sample([e for e in linked if e.startswith("Disease::")], 50)

    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {os.cpu_count()} cores; client and server on one machine")
    print(f"# Hetionet sample: {len(names)} nodes, {len(edges)} edges; one caller, 5 warm-up calls")
    print()
    print(
        "| variant | ingest s | train s | RSS empty / after ingest / with predictor (MB) "
        "| Lookup head p50/p99 ms, no evidence | with evidence | tail p50/p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    notes = []
    for variant in [args.variant] if args.variant else VARIANTS:
        row = run_variant(variant, folder, names, verbs, edges, (compounds, diseases))
        p = {
            k: f"{percentile(row[k], 0.5):.1f} / {percentile(row[k], 0.99):.1f}"
            for k in ("head", "evidence", "tail")
        }
        rss = " / ".join(f"{mb:.0f}" for mb in row["rss"])
        print(
            f"| {variant} | {row['ingest']:.1f} | {row['train']:.1f} | {rss} "
            f"| {p['head']} | {p['evidence']} | {p['tail']} |",
            flush=True,
        )
        notes.append(
            f"{variant}: treats -> {row['relation']}, predictor {row['predictor']}, {row['empty']}/200 head "
            f"lookups empty, {row['paths']}/50 with evidence paths, "
            f"RSS after the lookups {row['rss_after']:.0f} MB"
        )
    print()
    print("Targets: p50 < 50 ms without evidence, < 200 ms with it; training <= 15 min.")
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
