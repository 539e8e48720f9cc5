"""Concurrent Ask calls meet here: questions on the same graph that arrive within a short window are answered
by one batched propagation (an ``(N, B)`` block), so throughput grows with load instead of queueing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass

from encoder import DeadlineExpired
from gnn.reasoner import Question, Reasoning
from server.errors import ResourceExhausted, Unavailable
from server.state import GraphState


@dataclass
class _Item:
    state: GraphState
    question: Question
    future: asyncio.Future
    deadline: float | None = None  # time.monotonic() time after which the caller no longer waits


class ReasonBatcher:
    """Merges questions into batched reasoner calls run on ``executor``.

    Args:
        executor: where reasoning runs (the server's compute thread).
        max_wait_ms: how long the first question of a window waits for company.
        max_batch: questions per propagation.
        max_queued: questions waiting; beyond it callers get :class:`ResourceExhausted` at once.
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        max_wait_ms: float = 1.0,
        max_batch: int = 64,
        max_queued: int = 4096,
    ) -> None:
        self.executor = executor
        self.max_wait = max_wait_ms / 1000
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.batches = 0
        self.questions = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(Unavailable("the server is shutting down"))

    async def reason(self, state: GraphState, question: Question, deadline: float | None = None) -> Reasoning:
        if self._task is None or self._task.done():
            raise Unavailable("the reasoner is not running")
        if self._queue.qsize() >= self.max_queued:
            raise ResourceExhausted(
                f"the reasoner queue is full ({self._queue.qsize()} questions waiting); retry later"
            )
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(state, question, future, deadline))
        return await future

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
            now = time.monotonic()
            for item in window:
                if item.deadline is not None and now >= item.deadline and not item.future.done():
                    item.future.set_exception(
                        DeadlineExpired("the deadline passed while the question was queued")
                    )
            window = [item for item in window if not item.future.done()]  # gone or late callers cost nothing
            groups: dict[int, list[_Item]] = {}
            for item in window:
                groups.setdefault(id(item.state), []).append(item)
            for items in groups.values():
                state = items[0].state
                try:
                    results = await loop.run_in_executor(
                        self.executor,
                        lambda s=state, q=[i.question for i in items]: s.reasoner.reason(
                            s.graph, s.relation_vectors, q
                        ),
                    )
                except Exception as error:  # noqa: BLE001 - each caller gets the failure
                    for item in items:
                        if not item.future.done():
                            item.future.set_exception(error)
                    continue
                self.batches += 1
                self.questions += len(items)
                for item, result in zip(items, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)
