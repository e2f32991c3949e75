"""Which collector applies which partition: leases in Redis, renewed, taken over when a holder dies.

With a Redis broker every collector reads the whole event fanout. In a partitioned store
(``TASKPULSE_PARTITIONS`` > 1) each partition's events are applied by the collector holding its
lease (``P lease:<N>``, a string with a TTL), so the store does each partition's work once, and
collectors share the partitions between them: each takes up to ``ceil(partitions / collectors
alive)`` (``P lease:members`` lists who took part in a round lately) and gives back what is over
that share, so a new collector gets its part within a few rounds.

Nothing is lost between a holder's death and the takeover: every collector keeps the events of
the partitions it does not hold in a bounded replay window (``replay_seconds`` of arrival, at
most ``replay_max_events``) and, when it takes a partition over, applies that partition's part
of the window first. The events there wait as they came (each one's raw JSON, read only far
enough to know its task id: ``sift``) and are decoded only on a takeover: with two collectors
half the fanout is such events, and decoding them for nothing was a large part of the second
collector's CPU. Events the dead holder had applied already are duplicates to the store
(event-id dedup in ``store.lua``: the task's timeline, ``_dd`` past its cap, ``wdd:`` for
workers), so applying them again changes nothing and counts nothing: metrics summed across
collectors stay exact, as only the collector that applied an event first counts it. The window
covers a holder that dies up to ``replay_seconds`` behind the fanout; the TTL is a few seconds.

Events of no task (worker events) are applied by every collector: their dedup marker makes that
exact, and they are few. A RabbitMQ collector takes no leases: collectors share one durable
queue there, so each event reaches one collector, which applies it whatever its partition.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

import msgspec
import redis.asyncio as aioredis

from event_collector.events import Event
from event_collector.keys import Keys
from event_collector.normalize import body_events, join_items, task_heads
from event_collector.scripts import run_many

log = logging.getLogger("taskpulse.collector.leases")

SCRIPT: Final = Path(__file__).with_name("leases.lua").read_text()


class PartitionLeases:
    """This collector's leases and its replay window. ``run_round`` every ``ttl / 3`` seconds;
    ``split`` each batch before it is written."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        collector_id: str,
        *,
        ttl_seconds: float = 6.0,
        replay_seconds: float = 30.0,
        replay_max_events: int = 300_000,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        decode: Callable[[bytes], Iterable[Event]] = body_events,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.id = collector_id
        self.ttl_seconds = ttl_seconds
        self._replay_seconds = replay_seconds
        self._replay_max = replay_max_events
        self._clock = clock
        self._monotonic = monotonic
        self._decode = decode  # a waiting event's JSON, on takeover (an invalid one skipped)
        self._script = redis.register_script(SCRIPT)
        self.held: set[int] = set()
        # (arrival, partition, event) of events of partitions not held when they came: decoded
        # (split at write time) or the event's own JSON (set aside by ``sift``)
        self._window: deque[tuple[float, int, Event | bytes]] = deque()
        # where this collector starts looking for free partitions: spreads first picks
        self._start = zlib.crc32(collector_id.encode()) % keys.partitions

    @property
    def interval(self) -> float:
        """Seconds between rounds: three renewals per TTL, so one slow round loses nothing."""
        return self.ttl_seconds / 3

    def split(self, events: Sequence[Event]) -> list[Event]:
        """The events to apply now: those of held partitions and those of no task. The rest
        wait in the replay window."""
        now = self._monotonic()
        keys, held = self._keys, self.held
        out: list[Event] = []
        for event in events:
            if not (event.uuid and event.is_task_event):
                out.append(event)
                continue
            partition = keys.partition_of(event.uuid)
            if partition in held:
                out.append(event)
            else:
                self._window.append((now, partition, event))
        self._prune(now)
        return out

    def sift(self, body: bytes) -> bytes | None:
        """A message body before it is decoded: its task events of partitions not held go to
        the window as their raw JSON; returns the body of the rest (None when nothing is left).
        A body that is not plain task events with ids is returned whole (decoded, then
        ``split``)."""
        if len(self.held) == self._keys.partitions:  # alone: every event is applied now
            return body
        heads = task_heads(body)
        if heads is None:
            return body
        partition_of, held = self._keys.partition_of, self.held
        now = self._monotonic()
        kept: list[bytes | msgspec.Raw] = []
        window = self._window
        for task_id, item in heads:
            partition = partition_of(task_id)
            if partition in held:
                kept.append(item)
            else:
                window.append((now, partition, bytes(item)))
        self._prune(now)
        if len(kept) == len(heads):
            return body
        return join_items(kept) if kept else None

    def _prune(self, now: float) -> None:
        window, oldest = self._window, now - self._replay_seconds
        while window and (len(window) > self._replay_max or window[0][0] < oldest):
            window.popleft()

    def _take_from_window(self, partitions: Iterable[int]) -> list[Event]:
        wanted = set(partitions)
        taken: list[Event] = []
        for _, partition, event in self._window:
            if partition in wanted:
                if isinstance(event, bytes):
                    taken += self._decode(event)
                else:
                    taken.append(event)
        self._window = deque(entry for entry in self._window if entry[1] not in wanted)
        return taken

    @property
    def waiting(self) -> int:
        """Events in the replay window."""
        return len(self._window)

    async def run_round(self) -> list[Event]:
        """Renew what is held, give back what is over the fair share, take free partitions up
        to it. Returns the replay window's events of the partitions just taken (to apply now)."""
        k, now = self._keys, self._clock()
        ttl_ms = int(self.ttl_seconds * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(k.lease_members, {self.id: now})
            pipe.zremrangebyscore(k.lease_members, "-inf", now - self.ttl_seconds)
            pipe.zcard(k.lease_members)
            alive = max(1, int((await pipe.execute())[2]))
        held = sorted(self.held)
        renewed = await run_many(self._redis, self._script, [
            ([k.lease(p)], ["renew", self.id, ttl_ms]) for p in held
        ]) if held else []
        lost = {p for p, kept in zip(held, renewed, strict=True) if not kept}
        if lost:
            log.warning("partition leases lapsed (a round came too late; another collector may"
                        " hold them now): %s", sorted(lost))
        self.held -= lost
        share = math.ceil(k.partitions / alive)
        if len(self.held) > share:
            await self._release(sorted(self.held)[share:])
        taken = await self._acquire(share - len(self.held), ttl_ms)
        if not taken:
            return []
        self.held |= set(taken)
        replay = self._take_from_window(taken)
        log.info("took partitions %s (holding %s); replaying %d events seen meanwhile",
                 taken, sorted(self.held), len(replay))
        return replay

    async def _acquire(self, wanted: int, ttl_ms: int) -> list[int]:
        """Take up to ``wanted`` free partitions, trying them in this collector's own order."""
        n = self._keys.partitions
        candidates = [p for i in range(n) if (p := (self._start + i) % n) not in self.held]
        taken: list[int] = []
        while candidates and len(taken) < wanted:
            tries, candidates = candidates[: wanted - len(taken)], candidates[wanted - len(taken):]
            async with self._redis.pipeline(transaction=False) as pipe:
                for p in tries:
                    pipe.set(self._keys.lease(p), self.id, nx=True, px=ttl_ms)
                got = await pipe.execute()
            taken += [p for p, ok in zip(tries, got, strict=True) if ok]
        return taken

    async def _release(self, partitions: Sequence[int]) -> None:
        if partitions:
            await run_many(self._redis, self._script, [
                ([self._keys.lease(p)], ["release", self.id, 0]) for p in partitions
            ])
        self.held -= set(partitions)
        if partitions:
            log.info("gave back partitions %s (holding %s)", list(partitions), sorted(self.held))

    async def release_all(self) -> None:
        """On a clean stop: hand every partition over now instead of after the TTL."""
        await self._release(sorted(self.held))
        await self._redis.zrem(self._keys.lease_members, self.id)
