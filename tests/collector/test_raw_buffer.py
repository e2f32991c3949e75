"""The reader -> pipeline hand-off keeps order, bounds each slice and packs a backlog."""

from __future__ import annotations

import asyncio
import threading

from event_collector.consume import RawBuffer


def drain(buffer: RawBuffer) -> list[list[bytes]]:
    async def go() -> list[list[bytes]]:
        slices = []
        while len(buffer):
            slices.append(await buffer.get(0))
        return slices

    return asyncio.run(go())


def fill(pack_after: int, take_max: int) -> tuple[RawBuffer, list[bytes]]:
    loop = asyncio.new_event_loop()
    buffer = RawBuffer(loop, 10_000, pack_after=pack_after, take_max=take_max)
    sent = [b'{"n": %d}' % i for i in range(400)]
    for start in range(0, 400, 40):
        buffer.put(sent[start:start + 40], threading.Event())
    loop.close()
    return buffer, sent


def test_a_packed_backlog_comes_out_whole_and_in_order() -> None:
    buffer, sent = fill(pack_after=50, take_max=10_000)
    assert [m for part in drain(buffer) for m in part] == sent


def test_each_get_returns_a_bounded_slice() -> None:
    buffer, sent = fill(pack_after=10_000, take_max=100)
    slices = drain(buffer)
    assert all(len(part) <= 100 + 40 for part in slices)
    assert [m for part in slices for m in part] == sent


def test_get_on_an_empty_buffer_returns_nothing_after_the_wait() -> None:
    async def go() -> list[bytes]:
        return await RawBuffer(asyncio.get_running_loop(), 10).get(0.01)

    assert asyncio.run(go()) == []
