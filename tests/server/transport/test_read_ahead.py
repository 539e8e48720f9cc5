"""Reading a client stream ahead of its handler: order, batch bounds, errors and early stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from graphfuse.server.transport.read_ahead import arrived_together


async def _items(count: int, fail: bool = False, pause: float = 0.0) -> AsyncIterator[int]:
    for item in range(count):
        if pause:
            await asyncio.sleep(pause)
        yield item
    if fail:
        raise ValueError("the stream broke")


async def _batches(source: AsyncIterator[int], most: int, handle: float = 0.0) -> list[list[int]]:
    batches = []
    async for batch in arrived_together(source, most):
        batches.append(batch)
        await asyncio.sleep(handle)  # the handler's work, while the reader reads on
    return batches


def test_items_come_in_order_in_batches_of_what_arrived_meanwhile() -> None:
    batches = asyncio.run(_batches(_items(20), most=4, handle=0.01))
    assert [item for batch in batches for item in batch] == list(range(20))
    assert all(1 <= len(batch) <= 4 for batch in batches)
    assert max(len(batch) for batch in batches) == 4  # read ahead while the handler worked


def test_batches_and_reading_ahead_are_bounded_by_weight() -> None:
    sizes = [3, 1, 1, 2, 9, 1, 1]  # item i weighs sizes[i]

    async def run() -> tuple[list[list[int]], int]:
        read = 0

        async def source() -> AsyncIterator[int]:
            nonlocal read
            for item in range(len(sizes)):
                read += 1
                yield item

        batches = arrived_together(source(), most=4, weight=lambda item: sizes[item])
        first = await anext(batches)
        await asyncio.sleep(0.01)  # the handler's work: the reader stops once what it holds weighs 4
        ahead = read
        return [first, *[batch async for batch in batches]], ahead

    batches, ahead = asyncio.run(run())
    assert batches == [[0, 1], [2, 3], [4], [5, 6]]  # 9 is heavier than the bound: alone
    assert ahead == 5  # items 2, 3 and 4 read ahead (1 + 2 + 9), no further


def test_a_slow_stream_is_handled_item_by_item() -> None:
    batches = asyncio.run(_batches(_items(5, pause=0.01), most=4))
    assert batches == [[0], [1], [2], [3], [4]]


def test_an_error_of_the_stream_comes_after_the_items_read_before_it() -> None:
    async def run() -> list[int]:
        seen: list[int] = []
        with pytest.raises(ValueError, match="broke"):
            async for batch in arrived_together(_items(3, fail=True), most=8):
                seen.extend(batch)
        return seen

    assert asyncio.run(run()) == [0, 1, 2]


def test_a_handler_that_stops_early_stops_the_reader() -> None:
    async def run() -> int:
        read = 0

        async def endless() -> AsyncIterator[int]:
            nonlocal read
            while True:
                read += 1
                yield read

        batches = arrived_together(endless(), most=2)
        await anext(batches)
        await batches.aclose()
        await asyncio.sleep(0.01)
        before = read
        await asyncio.sleep(0.01)
        return read - before

    assert asyncio.run(run()) == 0
