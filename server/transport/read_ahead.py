"""Reading a client stream ahead of its handler, which then takes what has arrived as one batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
_END = object()


@dataclass(frozen=True)
class _Failed:
    error: Exception


async def arrived_together(source: AsyncIterator[T], most: int) -> AsyncIterator[list[T]]:
    """``source``'s items in order, in lists: the next item, waited for, with those that arrived while the
    previous list was handled, ``most`` at most. A task reads up to ``most`` items ahead; an error of
    ``source`` is raised after the items read before it."""
    queue: asyncio.Queue[object] = asyncio.Queue(most)

    async def read() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as error:  # handed to the consumer, which raises it in order
            await queue.put(_Failed(error))
        else:
            await queue.put(_END)

    reader = asyncio.create_task(read())
    try:
        while True:
            batch: list[T] = []
            item = await queue.get()
            while True:
                if item is _END or isinstance(item, _Failed):
                    if batch:
                        yield batch
                    if isinstance(item, _Failed):
                        raise item.error
                    return
                batch.append(item)  # type: ignore[arg-type]
                if len(batch) == most or queue.empty():
                    break
                item = queue.get_nowait()
            yield batch
    finally:
        reader.cancel()
