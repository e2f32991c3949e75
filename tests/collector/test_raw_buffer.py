"""The reader -> pipeline hand-off keeps order, bounds each slice and packs a backlog; past its
memory budget it spills to the spool (Redis) or waits (RabbitMQ), and counts what it drops."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path

import pytest

from event_collector.consume import MESSAGE_OVERHEAD, RawBuffer, events_in
from event_collector.spool import Spool


def drain(buffer: RawBuffer) -> list[list[bytes]]:
    async def go() -> list[list[bytes]]:
        slices = []
        while len(buffer):
            slices.append(await buffer.get(0))
        return slices

    return asyncio.run(go())


def fill(pack_after: int, take_max: int) -> tuple[RawBuffer, list[bytes]]:
    loop = asyncio.new_event_loop()
    buffer = RawBuffer(loop, max_bytes=1 << 30, max_messages=10_000, pack_after=pack_after,
                       take_max=take_max)
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
        return await RawBuffer(asyncio.get_running_loop(), max_bytes=100, max_messages=10).get(0.01)

    assert asyncio.run(go()) == []


# -- past the memory budget ------------------------------------------------------------------


class Drops:
    def __init__(self) -> None:
        self.events: dict[str, int] = {}

    def __call__(self, reason: str, events: int) -> None:
        self.events[reason] = self.events.get(reason, 0) + events


def bodies(first: int, count: int = 10) -> list[bytes]:
    return [b'{"n": %d}' % n for n in range(first, first + count)]


def take_all(buffer: RawBuffer) -> list[bytes]:
    """Everything waiting, each slice confirmed written as soon as it is handed out."""
    async def go() -> list[bytes]:
        out: list[bytes] = []
        while part := await buffer.get(0):
            out += part
            buffer.written(len(part))
        return out

    return asyncio.run(go())


def spilling(tmp_path: Path, max_messages: int = 20, spool_bytes: int = 1 << 20,
             drops: Drops | None = None) -> tuple[RawBuffer, Spool]:
    spool = Spool(tmp_path, max_bytes=spool_bytes, dropped=drops or Drops())
    buffer = RawBuffer(asyncio.new_event_loop(), max_bytes=1 << 30, max_messages=max_messages,
                       spool=spool, dropped=drops)
    return buffer, spool


def test_past_the_memory_budget_chunks_spill_to_the_spool_and_come_back_in_order(
    tmp_path: Path,
) -> None:
    buffer, spool = spilling(tmp_path)
    sent = [m for i in range(10) for m in bodies(i * 10)]
    for i in range(10):
        buffer.put(bodies(i * 10), threading.Event())
    assert spool.messages == 80
    assert buffer.snapshot().spool_events == 80
    assert take_all(buffer) == sent
    assert not list(tmp_path.glob("*.seg"))


def test_once_anything_is_spooled_newer_messages_queue_behind_it(tmp_path: Path) -> None:
    buffer, spool = spilling(tmp_path)
    for i in range(3):  # 20 in memory, 10 spooled
        buffer.put(bodies(i * 10), threading.Event())

    async def first_slice() -> list[bytes]:
        return await buffer.get(0)

    assert asyncio.run(first_slice()) == bodies(0, 20)  # memory has room again...
    buffer.put(bodies(30), threading.Event())
    assert spool.messages == 20  # ...but the newest go behind the spooled ones
    assert take_all(buffer) == bodies(20, 20)


def test_after_the_spool_drains_chunks_stay_in_memory_again(tmp_path: Path) -> None:
    buffer, spool = spilling(tmp_path)
    for i in range(3):
        buffer.put(bodies(i * 10), threading.Event())
    take_all(buffer)
    buffer.put(bodies(30), threading.Event())
    assert spool.messages == 0
    assert buffer.snapshot().memory_events == 10


def test_the_memory_budget_counts_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops())
    buffer = RawBuffer(asyncio.new_event_loop(), max_bytes=2000, max_messages=10**6, spool=spool)
    for _i in range(10):
        buffer.put([b"x" * 300], threading.Event())
    memory = buffer.snapshot().memory_bytes
    assert 0 < memory <= 2000
    assert spool.messages == 10 - memory // (300 + MESSAGE_OVERHEAD)


def test_put_never_waits_for_room_when_not_blocking(tmp_path: Path) -> None:
    drops = Drops()
    buffer, _ = spilling(tmp_path, spool_bytes=2000, drops=drops)
    done = threading.Event()

    def fill_up() -> None:
        for i in range(100):
            buffer.put(bodies(i * 10), threading.Event())
        done.set()

    threading.Thread(target=fill_up, daemon=True).start()
    assert done.wait(10), "put waited although nobody takes anything"


def test_past_the_spool_budget_events_are_dropped_and_counted_exactly(tmp_path: Path) -> None:
    drops = Drops()
    buffer, _ = spilling(tmp_path, spool_bytes=2000, drops=drops)
    multi = [b'[{"a": 1}, {"a": 2}, {"a": 3}]'] * 5  # task.multi bodies: 3 events each
    for _ in range(200):
        buffer.put(list(multi), threading.Event())
    kept = take_all(buffer)
    assert drops.events["spool_full"] > 0
    assert len(kept) * 3 + drops.events["spool_full"] == 200 * 15


def test_without_a_spool_past_the_budget_events_are_dropped_and_counted(tmp_path: Path) -> None:
    drops = Drops()
    buffer = RawBuffer(asyncio.new_event_loop(), max_bytes=1 << 30, max_messages=20,
                       dropped=drops)
    for i in range(5):
        buffer.put(bodies(i * 10), threading.Event())
    assert take_all(buffer) == bodies(0, 20)
    assert drops.events == {"buffer_full": 30}


def test_a_blocking_buffer_makes_the_reader_wait_for_room() -> None:
    buffer = RawBuffer(asyncio.new_event_loop(), max_bytes=1 << 30, max_messages=20, block=True)
    buffer.put(bodies(0, 20), threading.Event())
    done = threading.Event()

    def put_more() -> None:
        buffer.put(bodies(20), threading.Event())
        done.set()

    threading.Thread(target=put_more, daemon=True).start()
    assert not done.wait(0.5), "put should wait while the buffer is full"

    async def one_slice() -> list[bytes]:
        return await buffer.get(0)

    assert asyncio.run(one_slice()) == bodies(0, 20)
    assert done.wait(5)
    assert take_all(buffer) == bodies(20)


def test_shutting_down_hands_out_memory_and_leaves_the_spool(tmp_path: Path) -> None:
    buffer, spool = spilling(tmp_path)
    for i in range(3):
        buffer.put(bodies(i * 10), threading.Event())
    assert buffer.keep_spool() == 10
    assert take_all(buffer) == bodies(0, 20)
    assert spool.messages == 10


def test_task_multi_bodies_count_as_their_events() -> None:
    assert events_in([b'{"type": "x"}', b'[{"a": 1}, {"b": 2}]', b"[]", b"[broken", b"\x00x"]) == 5


def test_waiting_until_full_ignores_a_trickle_until_the_deadline() -> None:
    async def go() -> tuple[list[bytes], float]:
        buffer = RawBuffer(asyncio.get_running_loop(), max_bytes=1 << 30, max_messages=10_000,
                           take_max=100)
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, buffer.put, bodies(0, 3), threading.Event())
        started = loop.time()
        got = await buffer.get(0.3, until_full=True)
        return got, loop.time() - started

    got, waited = asyncio.run(go())
    assert got == bodies(0, 3)
    assert waited >= 0.25, "woken by three messages although it waits for a full slice"


def test_waiting_until_full_returns_as_soon_as_a_full_slice_waits() -> None:
    async def go() -> tuple[int, float]:
        buffer = RawBuffer(asyncio.get_running_loop(), max_bytes=1 << 30, max_messages=10_000,
                           take_max=100)
        loop = asyncio.get_running_loop()
        for i in range(10):
            loop.call_later(0.01, buffer.put, bodies(i * 10), threading.Event())
        started = loop.time()
        got = await buffer.get(5, until_full=True)
        return len(got), loop.time() - started

    count, waited = asyncio.run(go())
    assert count == 100
    assert waited < 2


@pytest.mark.parametrize("seed", range(40))
def test_every_message_is_handed_out_once_in_order_or_counted_dropped(
    tmp_path: Path, seed: int
) -> None:
    """Random puts, takes and write confirmations against small budgets: nothing is lost
    uncounted, nothing comes twice or out of order, and a drained spool leaves no file."""
    rng = random.Random(seed)
    drops = Drops()
    spool = Spool(tmp_path, max_bytes=rng.choice([3000, 8000, 50_000]), dropped=drops,
                  segment_bytes=4096)
    buffer = RawBuffer(asyncio.new_event_loop(), max_bytes=rng.choice([200, 2000, 1 << 30]),
                       max_messages=rng.choice([5, 20, 100]), spool=spool, dropped=drops,
                       take_max=rng.choice([3, 10, 50]))
    sent: list[bytes] = []
    got: list[bytes] = []
    unconfirmed: list[int] = []

    async def go() -> None:
        for _ in range(600):
            action = rng.random()
            if action < 0.45:
                part = bodies(len(sent), rng.randint(1, 12))
                sent.extend(part)
                buffer.put(part, threading.Event())
            elif action < 0.75:
                part = await buffer.get(0)
                got.extend(part)
                unconfirmed.append(len(part))
            elif unconfirmed:
                cut = rng.randint(1, len(unconfirmed))
                buffer.written(sum(unconfirmed[:cut]))
                del unconfirmed[:cut]
        while part := await buffer.get(0):
            got.extend(part)
            unconfirmed.append(len(part))
        buffer.written(sum(unconfirmed))

    asyncio.run(go())
    position = {body: i for i, body in enumerate(sent)}
    order = [position[body] for body in got]
    assert order == sorted(set(order)), "a message came twice or out of order"
    assert len(got) + sum(drops.events.values()) == len(sent)
    assert not list(tmp_path.glob("*.seg"))
    assert (spool.bytes, spool.messages, spool.events) == (0, 0, 0)
