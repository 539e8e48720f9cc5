"""Concurrent calls on the same graph meet here: questions (Ask) or lookups (Lookup with inference) arriving
within a short window are answered by one batched pass (an ``(N, B)`` block), so throughput grows with load
instead of queueing."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from graphfuse.encoder import DeadlineExpired
from graphfuse.server.core.errors import ResourceExhausted, Unavailable
from graphfuse.server.core.state import GraphState


@dataclass
class _Item:
    state: GraphState
    work: Any  # one question, one lookup...
    future: asyncio.Future
    deadline: float | None = None  # time.monotonic() time after which the caller no longer waits
    shed_at: float | None = None  # time.monotonic() time after which it is refused if still queued


class ReasonBatcher:
    """Merges items of work on the same graph into one call of ``run`` on ``executor``.

    Args:
        executor: where the work runs (the server's compute thread).
        run: ``run(state, items) -> results``, one result per item, in order.
        what: what an item is, for messages ("questions", "lookups").
        max_wait_ms: how long the first item of a window waits for company.
        max_batch: items per call.
        max_queued: items waiting; beyond it callers get :class:`ResourceExhausted` at once.
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        run: Callable[[GraphState, list[Any]], Sequence[Any]],
        what: str = "questions",
        max_wait_ms: float = 1.0,
        max_batch: int = 64,
        max_queued: int = 4096,
    ) -> None:
        self.executor = executor
        self.work = run
        self.what = what
        self.max_wait = max_wait_ms / 1000
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.batches = 0
        self.items = 0
        self.seconds = 0.0  # spent in ``run`` (on the executor), summed over batches
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._enqueued: collections.deque[float] = collections.deque()  # when each queued item arrived
        self._task: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def queue_delay(self) -> float:
        """Seconds the oldest item still queued has waited (0 when none is)."""
        return time.monotonic() - self._enqueued[0] if self._enqueued else 0.0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._enqueued.clear()
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(Unavailable("the server is shutting down"))

    async def submit(
        self,
        state: GraphState,
        work: Any,
        deadline: float | None = None,
        max_queue_delay: float | None = None,
    ) -> Any:
        """The result of ``work``, computed with the other items that arrive within the window; refused
        with :class:`ResourceExhausted` when it waited longer than ``max_queue_delay`` seconds to be taken."""
        if self._task is None or self._task.done():
            raise Unavailable("the reasoner is not running")
        if self._queue.qsize() >= self.max_queued:
            raise ResourceExhausted(
                f"the reasoner queue is full ({self._queue.qsize()} {self.what} waiting); retry later"
            )
        future = asyncio.get_running_loop().create_future()
        now = time.monotonic()
        # the batching window's own wait (max_wait) is not queueing
        shed_at = None if max_queue_delay is None else now + max_queue_delay + self.max_wait
        self._queue.put_nowait(_Item(state, work, future, deadline, shed_at))
        self._enqueued.append(now)
        return await future

    def _timed(self, state: GraphState, work: list[Any]) -> Sequence[Any]:
        started = time.perf_counter()
        try:
            return self.work(state, work)
        finally:
            self.seconds += time.perf_counter() - started

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            window = [await self._queue.get()]
            deadline = time.monotonic() + self.max_wait
            while len(window) < self.max_batch:
                if not self._queue.empty():
                    window.append(self._queue.get_nowait())
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    window.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            for _ in window:  # items leave the queue in the order they arrived
                self._enqueued.popleft()
            now = time.monotonic()
            for item in window:
                if item.deadline is not None and now >= item.deadline and not item.future.done():
                    item.future.set_exception(
                        DeadlineExpired(f"the deadline passed while the {self.what} waited to be batched")
                    )
                elif item.shed_at is not None and now > item.shed_at and not item.future.done():
                    item.future.set_exception(
                        ResourceExhausted(
                            f"the {self.what} waited longer than the queue-delay bound (max_queue_ms) to be "
                            "batched; retry later"
                        )
                    )
            window = [item for item in window if not item.future.done()]  # gone or late callers cost nothing
            groups: dict[int, list[_Item]] = {}
            for item in window:
                groups.setdefault(id(item.state), []).append(item)
            for items in groups.values():
                state = items[0].state
                try:
                    results = await loop.run_in_executor(
                        self.executor, self._timed, state, [item.work for item in items]
                    )
                except Exception as error:  # noqa: BLE001 - each caller gets the failure
                    for item in items:
                        if not item.future.done():
                            item.future.set_exception(error)
                    continue
                self.batches += 1
                self.items += len(items)
                for item, result in zip(items, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)
