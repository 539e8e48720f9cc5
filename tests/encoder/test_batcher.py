import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from graphfuse.encoder import (
    BatcherClosed,
    BatcherConfig,
    DeadlineExpired,
    EmbeddingCache,
    EncodeBatcher,
    EncoderConfig,
    Overloaded,
    TextEncoder,
    TextTooLongError,
)
from graphfuse.encoder.errors import EncoderError

PARAGRAPH = (
    "The Amazon River in South America is the largest river by discharge volume of water in the world, "
    "and the disputed longest river system in the world in comparison to the Nile."
)
POOL = [
    "Paris",
    "Barack Obama",
    "Q42",
    "Zürich",
    "東京都",
    "",
    "Who directed Inception?",
    "What is the capital of Australia?",
    "Which rivers flow through more than three countries?",
    "Name the films in which Tom Hanks and Meg Ryan both starred.",
    "born_in(Albert_Einstein, Ulm)",
    "pharmacologic substance",
    PARAGRAPH,
    PARAGRAPH * 2,
]
LONG = "knowledge graph " * 200  # about 400 tokens, over the limit of 256
TIMEOUT = 30  # seconds; a test that waits longer has hung


@pytest.fixture(scope="module")
def enc() -> TextEncoder:
    """Loaded once; no cache, so `enc.encode` is an independent unbatched reference."""
    return TextEncoder(EncoderConfig(cache_size=0))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Two intra-op threads on a 2-core machine that also runs another CPU-heavy job go 10-30x slower
    (OpenMP threads spin waiting for each other); one thread keeps this file fast on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ForwardSpy:
    """Wraps `enc.embed_tokens` and records the token ids of every forward pass, and its thread."""

    def __init__(self, enc: TextEncoder, monkeypatch, delay: float = 0.0):
        self.calls: list[list[list[int]]] = []
        self.threads: set[str] = set()
        embed = enc.embed_tokens

        def spy(ids, type_ids=None, token_states=False):
            self.calls.append([list(row) for row in ids])
            self.threads.add(threading.current_thread().name)
            if delay:
                time.sleep(delay)
            return embed(ids, type_ids, token_states)

        monkeypatch.setattr(enc, "embed_tokens", spy)

    def saw(self, ids: list[int]) -> bool:
        return any(ids in call for call in self.calls)


def ids_of(enc: TextEncoder, text: str) -> list[int]:
    return enc.tokenize([text]).ids[0]


async def gather(*coros):
    return await asyncio.wait_for(asyncio.gather(*coros, return_exceptions=True), TIMEOUT)


async def test_concurrent_callers_get_their_own_vectors(enc, monkeypatch):
    rng = random.Random(0)
    requests = [rng.choices(POOL, k=rng.randint(1, 3)) for _ in range(64)]  # duplicates across callers
    spy = ForwardSpy(enc, monkeypatch)
    async with EncodeBatcher(enc, BatcherConfig(max_wait_ms=5)) as batcher:
        results = await gather(*(batcher.encode(texts) for texts in requests))
    for texts, out in zip(requests, results, strict=True):
        assert not isinstance(out, BaseException), out
        expected = enc.encode(texts)
        assert out.vectors.shape == (len(texts), enc.dimensions)
        assert (out.vectors - expected.vectors).abs().max() <= 1e-5
        assert out.tokens == expected.tokens == enc.count_tokens(texts)
        assert out.cache_hits == 0
    stats = batcher.stats
    assert stats.batches == len(spy.calls) < 64
    assert stats.texts == len(set(POOL) & {t for texts in requests for t in texts})  # each once
    assert stats.queued_texts == 0 and stats.hits == 0


async def test_single_texts_share_forward_passes(enc, monkeypatch):
    texts = [f"question number {i} about {POOL[i % 12]}" for i in range(32)]
    spy = ForwardSpy(enc, monkeypatch)
    async with EncodeBatcher(enc, BatcherConfig(max_wait_ms=20)) as batcher:
        results = await gather(*(batcher.encode([text]) for text in texts))
    assert all(not isinstance(out, BaseException) for out in results)
    stats = batcher.stats
    assert stats.batches == len(spy.calls) < 32
    assert (stats.texts, stats.misses) == (32, 32)
    assert stats.real_tokens == sum(enc.count_tokens(texts)) <= stats.padded_tokens
    assert stats.padded_tokens <= stats.batches * batcher.max_batch_tokens
    assert stats.queue_seconds >= 32 * 0.01  # all arrived together and waited ~20 ms for company
    for text, out in zip(texts, results, strict=True):
        assert (out.vectors - enc.encode([text]).vectors).abs().max() <= 1e-5


async def test_micro_batches_respect_the_padded_token_budget(enc, monkeypatch):
    rng = random.Random(1)
    texts = [" ".join(["token"] * rng.randint(1, 30)) for _ in range(40)]
    spy = ForwardSpy(enc, monkeypatch)
    async with EncodeBatcher(enc, BatcherConfig(max_batch_tokens=96, max_wait_ms=20)) as batcher:
        results = await gather(*(batcher.encode([text]) for text in texts))
    assert all(not isinstance(out, BaseException) for out in results)
    assert 1 < len(spy.calls) < 40
    for call in spy.calls:
        assert len(call) * max(map(len, call)) <= 96
        assert max(map(len, call)) - min(map(len, call)) <= 10  # sorted by length: similar rows together
    assert batcher.stats.padded_tokens <= 96 * batcher.stats.batches


async def test_forward_passes_run_off_the_event_loop_on_the_given_executor(enc, monkeypatch):
    spy = ForwardSpy(enc, monkeypatch, delay=0.3)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    with ThreadPoolExecutor(1, thread_name_prefix="compute") as executor:
        async with EncodeBatcher(enc, executor=executor) as batcher:
            task = asyncio.create_task(ticker())
            await gather(*(batcher.encode([text]) for text in POOL[:8]))
            task.cancel()
    assert ticks >= 5  # the loop kept running through a 0.3 s forward pass (blocked: 0 or 1 tick)
    assert spy.threads and all(name.startswith("compute") for name in spy.threads)


async def test_overload_refuses_the_excess_at_once(enc):
    texts = [f"overload text {i}" for i in range(20)]
    async with EncodeBatcher(enc, BatcherConfig(max_queued_texts=8, max_wait_ms=20)) as batcher:
        results = await gather(*(batcher.encode([text]) for text in texts))
        refused = [out for out in results if isinstance(out, Overloaded)]
        served = [out for out in results if not isinstance(out, BaseException)]
        assert (len(served), len(refused)) == (8, 12)
        assert "8 texts queued, limit 8" in str(refused[0])
        assert isinstance(refused[0], EncoderError)
        assert batcher.stats.overloaded == 12 and batcher.stats.queued_texts == 0
        with pytest.raises(Overloaded, match="fewer distinct texts per request"):
            await batcher.encode([f"too many {i}" for i in range(9)])
        out = await asyncio.wait_for(batcher.encode(["after the burst"]), TIMEOUT)  # room again
        assert out.vectors.shape == (1, enc.dimensions)


async def test_expired_deadline_never_reaches_the_model(enc, monkeypatch):
    spy = ForwardSpy(enc, monkeypatch)
    async with EncodeBatcher(enc, BatcherConfig(max_wait_ms=100)) as batcher:
        with pytest.raises(DeadlineExpired, match="had passed"):
            await batcher.encode(["too late"], deadline=time.monotonic() - 0.001)
        # expires while waiting for company in the queue; the caller without a deadline is served
        started = time.monotonic()
        late, fine = await gather(
            batcher.encode(["late in the queue"], deadline=time.monotonic() + 0.02),
            batcher.encode(["no deadline"]),
        )
        assert isinstance(late, DeadlineExpired) and isinstance(late, TimeoutError)
        assert time.monotonic() - started < TIMEOUT
        assert fine.vectors.shape == (1, enc.dimensions)
        assert batcher.stats.expired == 2 and batcher.stats.queued_texts == 0
    assert not spy.saw(ids_of(enc, "too late"))
    assert not spy.saw(ids_of(enc, "late in the queue"))
    assert spy.saw(ids_of(enc, "no deadline"))


async def test_a_cancelled_caller_is_dropped_before_the_forward_pass(enc, monkeypatch):
    spy = ForwardSpy(enc, monkeypatch)
    async with EncodeBatcher(enc, BatcherConfig(max_wait_ms=300)) as batcher:
        gone = asyncio.create_task(batcher.encode(["client went away"]))
        kept = asyncio.create_task(batcher.encode(["client still here"]))
        await asyncio.sleep(0.01)
        assert batcher.stats.queued_texts == 2
        gone.cancel()
        out = await asyncio.wait_for(kept, TIMEOUT)
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert out.vectors.shape == (1, enc.dimensions)
        assert batcher.stats.cancelled == 1 and batcher.stats.queued_texts == 0
    assert spy.saw(ids_of(enc, "client still here"))
    assert not spy.saw(ids_of(enc, "client went away"))


async def test_too_long_text_fails_only_its_caller(enc):
    async with EncodeBatcher(enc, BatcherConfig(max_wait_ms=20)) as batcher:
        strict, truncated, plain = await gather(
            batcher.encode(["fine", LONG]),
            batcher.encode([LONG, "fine"], truncate=True),
            batcher.encode(["fine", "also fine"]),
        )
        # one window, two passes: padding the short texts to the cut one's 256 tokens would cost more
        assert batcher.stats.batches == 2 and batcher.stats.texts == 3
    assert isinstance(strict, TextTooLongError)
    assert (strict.index, strict.tokens, strict.max_tokens) == (1, enc.count_tokens([LONG])[0], 256)
    assert truncated.tokens == [256, 3]
    expected = enc.encode([LONG, "fine"], truncate=True).vectors
    assert (truncated.vectors - expected).abs().max() <= 1e-5
    assert (plain.vectors - enc.encode(["fine", "also fine"]).vectors).abs().max() <= 1e-5
    assert batcher.stats.too_long == 1


async def test_cache_hits_skip_the_queue_and_misses_fill_the_cache(enc, monkeypatch):
    monkeypatch.setattr(enc, "cache", EmbeddingCache(100))
    spy = ForwardSpy(enc, monkeypatch)
    async with EncodeBatcher(enc) as batcher:
        first = await batcher.encode(["cached text", "other"])
        assert (first.cache_hits, len(spy.calls)) == (0, 1)
        again = await batcher.encode(["cached text"])
        assert (again.cache_hits, len(spy.calls)) == (1, 1)  # no forward pass, no queueing
        assert batcher.stats.misses == 2 and batcher.stats.hits == 1
        torch.testing.assert_close(again.vectors[0], first.vectors[0], rtol=0, atol=0)
        mixed = await batcher.encode(["new one", "cached text", "new one"])
        assert (mixed.cache_hits, len(spy.calls)) == (1, 2)
        assert spy.calls[-1] == [ids_of(enc, "new one")]  # only the miss, once
        assert (mixed.vectors[1] - first.vectors[0]).abs().max() == 0
        assert (mixed.vectors[0] - mixed.vectors[2]).abs().max() == 0
        assert batcher.stats.queued_texts == 0
    assert enc.encode(["cached text", "new one"]).cache_hits == 2  # shared with the encoder's own path
    assert enc.cache.get(("cached text", True)) is None  # keyed like TextEncoder.encode


async def test_cut_text_is_cached_only_for_truncating_callers(enc, monkeypatch):
    monkeypatch.setattr(enc, "cache", EmbeddingCache(100))
    async with EncodeBatcher(enc, BatcherConfig(max_wait_ms=20)) as batcher:
        await gather(batcher.encode([LONG]), batcher.encode([LONG], truncate=True))
        assert enc.cache.get((LONG, True)) is not None
        assert enc.cache.get((LONG, False)) is None
        with pytest.raises(TextTooLongError):
            await batcher.encode([LONG])


async def test_close_fails_waiting_callers_and_refuses_new_ones(enc):
    batcher = EncodeBatcher(enc, BatcherConfig(max_wait_ms=10_000))
    tasks = [asyncio.create_task(batcher.encode([f"waiting {i}"])) for i in range(3)]
    await asyncio.sleep(0.01)
    await asyncio.wait_for(batcher.close(), TIMEOUT)
    results = await gather(*tasks)
    assert all(isinstance(out, BatcherClosed) for out in results)
    assert "closed before these texts were encoded" in str(results[0])
    assert batcher.stats.queued_texts == 0
    with pytest.raises(BatcherClosed):
        await batcher.encode(["after close"])
    await batcher.close()  # idempotent


async def test_close_during_a_forward_pass_does_not_hang(enc, monkeypatch):
    ForwardSpy(enc, monkeypatch, delay=0.3)
    batcher = EncodeBatcher(enc, BatcherConfig(max_wait_ms=0))
    task = asyncio.create_task(batcher.encode(["in the model when closed"]))
    await asyncio.sleep(0.1)
    await asyncio.wait_for(batcher.close(), TIMEOUT)
    (result,) = await gather(task)
    assert isinstance(result, BatcherClosed)


async def test_a_failing_forward_pass_fails_its_window_only(enc, monkeypatch):
    embed = enc.embed_tokens
    calls = 0

    def flaky(ids, type_ids=None, token_states=False):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("out of memory")
        return embed(ids, type_ids, token_states)

    monkeypatch.setattr(enc, "embed_tokens", flaky)
    async with EncodeBatcher(enc) as batcher:
        with pytest.raises(RuntimeError, match="out of memory"):
            await batcher.encode(["first"])
        out = await asyncio.wait_for(batcher.encode(["second"]), TIMEOUT)
        assert out.vectors.shape == (1, enc.dimensions)
        assert batcher.stats.queued_texts == 0


async def test_empty_and_invalid_input(enc):
    async with EncodeBatcher(enc) as batcher:
        out = await batcher.encode([])
        assert out.vectors.shape == (0, enc.dimensions) and out.tokens == []
        with pytest.raises(ValueError, match="single str"):
            await batcher.encode("not a list")
        with pytest.raises(ValueError, match=r"texts\[1\] to be a str"):
            await batcher.encode(["ok", 3])
    with pytest.raises(ValueError, match="max_queued_texts"):
        EncodeBatcher(enc, BatcherConfig(max_queued_texts=0))
    with pytest.raises(ValueError, match="max_wait_ms"):
        EncodeBatcher(enc, BatcherConfig(max_wait_ms=-1))
    assert EncodeBatcher(enc).max_batch_tokens == enc.batch_tokens == 2048


async def test_token_states_for_callers_that_ask_and_shared_passes_for_those_that_do_not(enc, monkeypatch):
    spy = ForwardSpy(enc, monkeypatch)
    texts = ["batched states probe one", "batched states probe two"]
    async with EncodeBatcher(enc, BatcherConfig(max_wait_ms=20)) as batcher:
        plain, with_states = await gather(batcher.encode(texts[:1]), batcher.encode(texts, token_states=True))
    assert plain.token_states is None
    assert len(spy.calls) == 1  # one forward pass served both callers
    direct = enc.encode(texts, token_states=True)
    for ours, expected in zip(with_states.token_states, direct.token_states, strict=True):
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


async def test_texts_queued_past_their_queue_delay_bound_are_overloaded(enc, monkeypatch):
    spy = ForwardSpy(enc, monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        async with EncodeBatcher(
            enc, BatcherConfig(max_wait_ms=1, max_window_texts=1), executor=pool
        ) as batcher:
            busy = pool.submit(time.sleep, 0.2)  # the first window's forward pass waits behind it
            first, bounded, unbounded = await gather(
                batcher.encode(["taken into the first window"]),
                batcher.encode(["waits too long"], max_queue_delay=0.05),
                batcher.encode(["waits as long as it takes"]),
            )
            busy.result()
            assert isinstance(bounded, Overloaded) and "bound" in str(bounded)
            assert first.vectors.shape == unbounded.vectors.shape == (1, enc.dimensions)
            assert batcher.queue_delay() == 0.0
    assert not spy.saw(ids_of(enc, "waits too long"))
