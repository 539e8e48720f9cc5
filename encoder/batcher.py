"""Dynamic batching for the text encoder: concurrent callers share forward passes under a token budget.

In the manner of text-embeddings-inference: callers put requests on a bounded queue and await their own
future; one background task takes a window of requests (the first waits up to `max_wait_ms` for
company), tokenises it, sorts its texts by length, cuts micro-batches whose padded token count
(batch size * longest text) stays within `max_batch_tokens`, where the lengths jump enough that padding would
cost more than another pass (`micro_batches.py`), runs each forward pass on an executor thread
(never on the event loop) and answers every caller as soon as its last row is done. Callers that were
cancelled or whose deadline passed are dropped before their texts reach the model.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from graphfuse.encoder.errors import BatcherClosed, DeadlineExpired, Overloaded
from graphfuse.encoder.micro_batches import length_groups
from graphfuse.encoder.model import Embedded, Encoded, TextEncoder, TextTooLongError, Tokens

__all__ = [
    "BatcherClosed",
    "BatcherConfig",
    "BatcherStats",
    "DeadlineExpired",
    "EncodeBatcher",
    "Overloaded",
]

log = logging.getLogger(__name__)


@dataclass
class BatcherConfig:
    max_batch_tokens: int | None = None  # padded tokens per forward pass (batch size * longest text);
    # None = the encoder's batch_tokens (2048 on CPU)
    max_wait_ms: float = 2.0  # how long the first request of a batch may wait for company
    max_queued_texts: int = 4096  # texts accepted and not yet answered; more -> Overloaded at once
    max_window_texts: int | None = None  # texts taken from the queue per window (one tokenizer call, then
    # micro-batches sorted by length); None = max_batch_tokens // 4. Bounds the wait of a window's
    # earliest caller behind later ones.


@dataclass
class BatcherStats:
    """Counters since the batcher was made; `queued_texts` is the current queue depth."""

    hits: int = 0  # texts answered from the cache at submission
    misses: int = 0  # texts queued for the model
    batches: int = 0  # forward passes
    texts: int = 0  # rows through the model (duplicates within a window are encoded once)
    padded_tokens: int = 0  # sum over passes of batch size * longest text
    real_tokens: int = 0  # sum over passes of the texts' token counts
    queued_texts: int = 0  # texts accepted and not yet answered (waiting or in a forward pass)
    overloaded: int = 0  # requests refused with Overloaded
    expired: int = 0  # requests failed with DeadlineExpired
    cancelled: int = 0  # requests whose caller went away before they were answered
    too_long: int = 0  # requests failed with TextTooLongError
    queue_seconds: float = 0.0  # sum over requests of the wait from submission to being taken into a window


@dataclass(eq=False)
class _Request:
    texts: list[str]
    truncate: bool
    deadline: float | None  # time.monotonic() seconds
    future: asyncio.Future[Encoded]
    vectors: torch.Tensor  # (n, D), filled as rows arrive
    tokens: list[int]
    hits: int
    misses: dict[str, list[int]]  # text -> its positions in `texts`, for texts not served from the cache
    remaining: int  # positions still to fill
    token_states: list[torch.Tensor | None] | None = None  # per text, when the caller asked for them
    enqueued: float = field(default_factory=time.monotonic)
    max_queue_delay: float | None = None  # seconds it may wait for a window; past it: Overloaded
    waiting: bool = True  # on the queue, not yet taken into a window
    started: bool = False  # some of its texts reached the model: its deadline no longer applies
    timer: asyncio.TimerHandle | None = None

    @property
    def live(self) -> bool:
        return not self.future.done()


@dataclass(eq=False)
class _Item:
    """One distinct text of a window, with the requests waiting for it."""

    text: str
    ids: list[int]  # cut to max_tokens
    type_ids: list[int] | None
    count: int  # tokens before truncation
    targets: list[_Request] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return any(request.live for request in self.targets)

    @property
    def wants_token_states(self) -> bool:
        return any(request.token_states is not None for request in self.targets)


class EncodeBatcher:
    """Merges the texts of concurrent `encode` calls into shared forward passes of a `TextEncoder`.

    Cache hits are answered at once; misses wait on a bounded queue for a background task (started by
    `start` or by the first `encode`). Results go into the encoder's cache under the same keys as
    `TextEncoder.encode`. All methods must be called from one event loop.

    Args:
        encoder: the model; its cache (if any) is shared with direct `encoder.encode` calls.
        config: see BatcherConfig (default: the encoder's token budget, 2 ms wait, 4096 queued texts).
        executor: where tokenisation and forward passes run, e.g. a server's single compute thread, so
            that model work and graph work never run at once; None = a thread of the batcher's own.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        config: BatcherConfig | None = None,
        executor: concurrent.futures.Executor | None = None,
    ):
        self.encoder = encoder
        self.config = config = config or BatcherConfig()
        self.max_batch_tokens = config.max_batch_tokens or encoder.batch_tokens
        self.max_window_texts = config.max_window_texts or max(1, self.max_batch_tokens // 4)
        for name, value in (
            ("max_batch_tokens", self.max_batch_tokens),
            ("max_queued_texts", config.max_queued_texts),
            ("max_window_texts", self.max_window_texts),
        ):
            if value < 1:
                raise ValueError(f"Expected '{name}' >= 1 (got {value})")
        if not config.max_wait_ms >= 0:
            raise ValueError(f"Expected 'max_wait_ms' >= 0 (got {config.max_wait_ms})")
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="graphfuse-encoder"
        )
        self.stats = BatcherStats()
        self._queue: deque[_Request] = deque()
        self._waiting = 0  # texts of live requests on the queue
        self._pending: set[_Request] = set()  # accepted and not yet answered
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Starts the background task (the first `encode` does so too)."""
        self._ensure_started()

    async def close(self) -> None:
        """Stops the background task; callers still waiting get BatcherClosed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for request in list(self._pending):
            self._fail(request, BatcherClosed("the encoder batcher closed before these texts were encoded"))
        self._queue.clear()
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> EncodeBatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def queue_delay(self) -> float:
        """Seconds the oldest request still queued has waited for a window (0 when none waits)."""
        return time.monotonic() - self._queue[0].enqueued if self._queue else 0.0

    def _ensure_started(self) -> None:
        if self._closed:
            raise BatcherClosed("the encoder batcher is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="encode-batcher")

    # ---------------------------------------------------------------------------------------- callers
    async def encode(
        self,
        texts: Sequence[str],
        truncate: bool = False,
        deadline: float | None = None,
        token_states: bool = False,
        max_queue_delay: float | None = None,
    ) -> Encoded:
        """Embeds `texts`, in order, sharing forward passes with concurrent callers.

        Args:
            texts: the strings to embed.
            truncate: cut texts longer than the model's limit instead of raising TextTooLongError
                (default False).
            deadline: absolute `time.monotonic()` seconds after which the texts are no longer wanted;
                None = no deadline (default).
            token_states: also return each text's token states (see `TextEncoder.encode`).
            max_queue_delay: seconds the texts may wait in the queue for a window; past it the call fails
                with Overloaded (a queue-delay bound, as Triton's queue policy rejects); None = no bound.

        Raises:
            TextTooLongError: a text is over the limit and `truncate` is False (this caller only).
            Overloaded: the queue would hold more than `max_queued_texts` texts, or the texts waited longer
                than `max_queue_delay`.
            DeadlineExpired: the deadline passed before the texts reached the model.
            BatcherClosed: the batcher is closed.

        Shapes:
            vectors: (len(texts), dimensions), float32 on CPU.
        """
        texts = self.encoder._check(texts)
        self._ensure_started()
        if deadline is not None and deadline <= time.monotonic():
            self.stats.expired += 1
            raise DeadlineExpired(f"the deadline had passed when {len(texts)} texts arrived")

        n = len(texts)
        vectors, tokens, hits, misses = self.encoder.from_cache(texts, truncate)
        states = self.encoder.cached_token_states(texts, truncate, misses) if token_states else None
        hits = n - sum(len(positions) for positions in misses.values())
        if not misses:
            self.stats.hits += n
            return Encoded(vectors=vectors, tokens=tokens, cache_hits=n, token_states=states)

        queued, limit = self.stats.queued_texts, self.config.max_queued_texts
        if queued + len(misses) > limit:
            self.stats.overloaded += 1
            raise Overloaded(
                f"the encoder queue is full: {queued} texts queued, limit {limit}, and this request "
                f"adds {len(misses)}; retry later"
                + (" with fewer distinct texts per request" if len(misses) > limit else "")
            )

        loop = asyncio.get_running_loop()
        request = _Request(
            texts=texts,
            truncate=truncate,
            deadline=deadline,
            future=loop.create_future(),
            vectors=vectors,
            tokens=tokens,
            hits=hits,
            misses=misses,
            remaining=n - hits,
            token_states=states,
            max_queue_delay=max_queue_delay,
        )
        self.stats.hits += hits
        self.stats.misses += len(misses)
        self.stats.queued_texts += len(misses)
        self._waiting += len(misses)
        self._pending.add(request)
        self._queue.append(request)
        if deadline is not None:
            request.timer = loop.call_later(deadline - time.monotonic(), self._expire, request)
        if len(self._queue) == 1 or self._waiting >= self.max_window_texts:
            self._wakeup.set()
        try:
            return await request.future
        except asyncio.CancelledError:
            if request in self._pending:
                self.stats.cancelled += 1
                self._release(request)
            raise

    # ------------------------------------------------------------------------------------ bookkeeping
    def _take(self, request: _Request) -> None:
        """Moves a request's texts from the queue's count into a window."""
        if request.waiting:
            request.waiting = False
            self._waiting -= len(request.misses)

    def _release(self, request: _Request) -> None:
        """Forgets an answered (or failed, or abandoned) request: its queue slots, its timer."""
        if request in self._pending:
            self._pending.discard(request)
            self.stats.queued_texts -= len(request.misses)
        self._take(request)
        if request.timer is not None:
            request.timer.cancel()
            request.timer = None

    def _fail(self, request: _Request, error: BaseException) -> None:
        if request.live:
            request.future.set_exception(error)
        self._release(request)

    def _expire(self, request: _Request) -> None:
        """Fails the request with DeadlineExpired, unless its texts already reached the model."""
        request.timer = None
        if request.live and not request.started:
            self.stats.expired += 1
            waited = time.monotonic() - request.enqueued
            error = DeadlineExpired(
                f"the deadline passed while {len(request.misses)} texts waited {waited * 1e3:.1f} ms "
                "for the model"
            )
            self._fail(request, error)

    def _wanted(self, request: _Request, now: float) -> bool:
        """Whether the request still wants its texts; expires it if its deadline has passed."""
        if request.live and not request.started and request.deadline is not None and request.deadline <= now:
            self._expire(request)
        return request.live

    # -------------------------------------------------------------------------------- background task
    async def _run(self) -> None:
        while True:
            while self._queue and not self._queue[0].live:
                self._take(self._queue.popleft())
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # the first request may wait for company, counted from its arrival (so not again after a
            # forward pass it already waited through)
            wait_until = self._queue[0].enqueued + self.config.max_wait_ms / 1e3
            while self._waiting < self.max_window_texts and (delay := wait_until - time.monotonic()) > 0:
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(delay):
                        await self._wakeup.wait()
                except TimeoutError:
                    break
            window: list[_Request] = []
            size = 0
            taken_at = time.monotonic()
            while self._queue and (not window or size + len(self._queue[0].misses) <= self.max_window_texts):
                request = self._queue.popleft()
                self._take(request)
                waited = taken_at - request.enqueued
                # the batching window's own wait (max_wait_ms) is not queueing
                bound = request.max_queue_delay
                if request.live and bound is not None and waited > bound + self.config.max_wait_ms / 1e3:
                    self.stats.overloaded += 1
                    self._fail(
                        request,
                        Overloaded(
                            f"{len(request.misses)} texts waited {waited * 1e3:.0f} ms for the encoder, more "
                            f"than the {bound * 1e3:.0f} ms bound; retry later"
                        ),
                    )
                elif request.live:
                    window.append(request)
                    size += len(request.misses)
                    self.stats.queue_seconds += waited
            try:
                await self._encode_window(window)
            except Exception as error:  # a failing model fails this window's callers, not the batcher
                log.exception("encoding a window of %d requests failed", len(window))
                for request in window:
                    self._fail(request, error)

    async def _encode_window(self, window: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        window = [request for request in window if self._wanted(request, now)]
        if not window:
            return
        texts = list(dict.fromkeys(text for request in window for text in request.misses))
        tokens: Tokens = await loop.run_in_executor(self._executor, self.encoder.tokenize, texts)
        items = {
            text: _Item(
                text,
                tokens.ids[j],
                tokens.type_ids[j] if tokens.type_ids is not None else None,
                tokens.counts[j],
            )
            for j, text in enumerate(texts)
        }
        max_tokens = self.encoder.max_tokens
        for request in window:
            if not request.live:  # cancelled while tokenising
                continue
            too_long = [(p[0], t) for t, p in request.misses.items() if items[t].count > max_tokens]
            if too_long and not request.truncate:
                index, text = min(too_long)
                self.stats.too_long += 1
                self._fail(request, TextTooLongError(index, items[text].count, max_tokens))
                continue
            for text in request.misses:
                items[text].targets.append(request)

        # shortest first: each micro-batch is padded to its last text's length
        pending = sorted((item for item in items.values() if item.targets), key=lambda item: len(item.ids))
        while pending:
            now = time.monotonic()
            for request in window:
                self._wanted(request, now)
            pending = [item for item in pending if item.live]
            if not pending:
                break
            lengths = [len(item.ids) for item in pending]
            size = length_groups(lengths, self.max_batch_tokens, self.encoder.pass_overhead_tokens)[0]
            batch, pending = pending[:size], pending[size:]
            for item in batch:
                for request in item.targets:
                    request.started = True
            ids = [item.ids for item in batch]
            type_ids = [item.type_ids for item in batch] if tokens.type_ids is not None else None
            with_states = any(item.wants_token_states for item in batch)
            embedded = await loop.run_in_executor(
                self._executor, self.encoder.embed_tokens, ids, type_ids, with_states
            )
            self.stats.batches += 1
            self.stats.texts += len(batch)
            self.stats.padded_tokens += len(batch) * len(batch[-1].ids)
            self.stats.real_tokens += sum(len(row) for row in ids)
            self._deliver(batch, embedded)

    def _deliver(self, batch: list[_Item], embedded: Embedded) -> None:
        """Caches each row and hands it to its waiting requests; answers those now complete."""
        max_tokens = self.encoder.max_tokens
        for row, (item, vector) in enumerate(zip(batch, embedded.vectors, strict=True)):
            length = len(item.ids)
            # a cut text goes under truncate=True only, as TextEncoder.encode does
            for truncate in {request.truncate for request in item.targets}:
                if truncate or item.count <= max_tokens:
                    self.encoder.remember(item.text, truncate, vector, length, embedded.token_states, row)
            for request in item.targets:
                if not request.live:
                    continue
                positions = request.misses[item.text]
                request.vectors[positions] = vector
                for i in positions:
                    request.tokens[i] = length
                    if request.token_states is not None and embedded.token_states is not None:
                        request.token_states[i] = embedded.token_states[row]
                request.remaining -= len(positions)
                if request.remaining == 0:
                    request.future.set_result(
                        Encoded(
                            vectors=request.vectors,
                            tokens=request.tokens,
                            cache_hits=request.hits,
                            token_states=request.token_states,
                        )
                    )
                    self._release(request)
