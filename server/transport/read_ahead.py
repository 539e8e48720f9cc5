"""Reading a client stream ahead of its handler, which then takes what has arrived as one batch."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
_END = object()


@dataclass(frozen=True)
class _Failed:
    error: Exception


def _one(_: object) -> int:
    return 1


async def arrived_together(
    source: AsyncIterator[T], most: int, weight: Callable[[T], int] = _one
) -> AsyncIterator[list[T]]:
    """``source``'s items in order, in lists: the next item, waited for, with those that arrived while the
    previous list was handled. Each item weighs ``weight(item)`` (1 by default): a task reads ahead while
    the items read and not yet handed out weigh less than ``most``, and a list weighs ``most`` at most (an
    item heavier than that comes alone). An error of ``source`` is raised after the items read before it."""
    buffered: deque[tuple[object, int]] = deque()
    held = 0  # weight of the items read and not yet handed out
    arrived, taken = asyncio.Event(), asyncio.Event()

    def put(item: object, size: int) -> None:
        nonlocal held
        buffered.append((item, size))
        held += size
        arrived.set()

    async def read() -> None:
        try:
            async for item in source:
                put(item, weight(item))
                while held >= most:
                    taken.clear()
                    await taken.wait()
        except Exception as error:  # handed to the consumer, which raises it in order
            put(_Failed(error), 0)
        else:
            put(_END, 0)

    reader = asyncio.create_task(read())
    try:
        while True:
            while not buffered:
                arrived.clear()
                await arrived.wait()
            batch: list[T] = []
            size = 0
            while buffered:
                item, item_size = buffered[0]
                if item is _END or isinstance(item, _Failed) or (batch and size + item_size > most):
                    break
                buffered.popleft()
                batch.append(item)  # type: ignore[arg-type]
                size += item_size
            if batch:
                held -= size
                taken.set()
                yield batch
                continue
            item, _ = buffered.popleft()
            if isinstance(item, _Failed):
                raise item.error
            return
    finally:
        reader.cancel()
