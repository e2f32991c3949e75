"""The live event feed: one reader of the event stream per API process, fanned out to every SSE
subscriber.

Each ``GET /events`` used to XREAD BLOCK on a connection of the shared pool, so 100 viewers held
all of redis-py's 100 connections and every other route answered 503. Here one background task
reads the stream on a connection of its own and hands each batch to every subscriber's queue;
a live subscriber holds no Redis connection at all.

- A subscriber more than ``backlog`` events behind is ended once it has sent what it was given:
  its client reconnects with Last-Event-ID and catches up, so a slow client neither grows memory
  nor slows anybody else down.
- A subscriber resuming from an older id catches up with XRANGE pages on the shared pool, at most
  ``CATCH_UP_READERS`` at a time, up to the feed's head; it joins the feed at that head in the
  same step of the event loop in which it checks it, so nothing is missed or sent twice.
- Task events without a name get it from the task record, one pipelined HGET per batch for the
  names not cached, done once for every subscriber.
- The reader runs while someone listens. Redis gone: live streams end, new ones get a 503 until
  the reader is back, and it retries with backoff; it never crashes the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Final

import msgspec
import redis.asyncio as aioredis

from event_collector.connection import STORE_UNAVAILABLE
from event_collector.events import EVENT_ENCODER, Event
from event_collector.keys import Keys
from event_collector.read import EventPage, EventReader
from event_collector.replies import text
from producer_api.errors import Unavailable

log = logging.getLogger("producer_api")

BATCH: Final = 500  # entries per XREAD of the feed and per catch-up XRANGE page
BLOCK_MS: Final = 1000  # how long the feed's XREAD waits for new entries
# Fan-outs are at least this far apart unless the stream has a backlog (a full batch): each one
# costs every stream a socket write, so fewer, fuller batches cost the event loop less.
FANOUT_INTERVAL: Final = 0.1
CATCH_UP_READERS: Final = 4  # catch-up reads on the shared pool at once: it stays free for the rest
NAME_CACHE: Final = 10_000  # task id -> name entries kept
RETRY_FIRST, RETRY_MAX = 0.1, 2.0  # seconds between reconnect attempts, doubling
_REDIS_DOWN: Final = STORE_UNAVAILABLE


class LiveEvent:
    """A stream entry as subscribers get it; its SSE frame is encoded once, on first use."""

    __slots__ = ("_frame", "event", "id")

    def __init__(self, entry_id: str, event: Event) -> None:
        self.id = entry_id
        self.event = event
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = b"id: %s\nevent: %s\ndata: %s\n\n" % (
                self.id.encode(), self.event.type.encode(), EVENT_ENCODER.encode(self.event),
            )
        return self._frame


def stream_position(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


class TaskNames:
    """Task id -> name, learned from events that carry it and read from task records otherwise."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self._names: OrderedDict[str, str] = OrderedDict()

    async def fill(self, client: aioredis.Redis, entries: Sequence[tuple[str, Event]]
                   ) -> list[LiveEvent]:
        unnamed: dict[str, None] = {}
        for _, event in entries:
            if not event.is_task_event or not event.uuid:
                continue
            if event.name:
                self._remember(event.uuid, event.name)
            elif event.uuid not in self._names:
                unnamed[event.uuid] = None
        if unnamed:
            async with client.pipeline(transaction=False) as pipe:
                for task_id in unnamed:
                    pipe.hget(self.keys.task(task_id), "name")
                found = await pipe.execute()
            for task_id, raw in zip(unnamed, found, strict=True):
                if name := text(raw):  # unknown yet (task-sent not folded): ask again next time
                    self._remember(task_id, name)
        return [LiveEvent(entry_id, self._named(event)) for entry_id, event in entries]

    def _named(self, event: Event) -> Event:
        if event.name or not event.is_task_event or not event.uuid:
            return event
        name = self._names.get(event.uuid)
        return event if name is None else msgspec.structs.replace(event, name=name)

    def _remember(self, task_id: str, name: str) -> None:
        self._names[task_id] = name
        if len(self._names) > NAME_CACHE:
            self._names.popitem(last=False)


class _Subscriber:
    """A joined subscriber's queue of batches; ``None`` ends it. ``pending`` counts events."""

    __slots__ = ("pending", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[LiveEvent] | None] = asyncio.Queue()
        self.pending = 0

    def put(self, batch: list[LiveEvent]) -> None:
        self.pending += len(batch)
        self.queue.put_nowait(batch)

    def end(self) -> None:
        self.queue.put_nowait(None)


class EventFeed:
    def __init__(self, stream: EventReader, store: EventReader, names: TaskNames, *,
                 backlog: int, wait_seconds: float) -> None:
        self._stream = stream  # on a connection of its own: XREAD BLOCK holds it
        self._store = store  # the shared pool, for catch-up reads
        self._names = names
        self._backlog = backlog
        self._wait_seconds = wait_seconds  # how long a new subscriber waits for the feed
        self._subscribers: set[_Subscriber] = set()
        self._listeners = 0  # joined or catching up: the reader runs while there are any
        self._wanted = asyncio.Event()
        self._settled = asyncio.Event()  # set while live or down; clear while idle or connecting
        self._head: str | None = None  # the last entry handed out; None unless live
        self._catch_up = asyncio.Semaphore(CATCH_UP_READERS)
        self._closed = False
        self._lost_redis = False

    # ------------------------------------------------------------------ the reader

    async def run(self) -> None:
        """The background task: follow the stream while anyone listens; survive Redis outages."""
        delay = RETRY_FIRST
        while True:
            if not self._listeners:
                self._wanted.clear()
                await self._wanted.wait()
            try:
                await self._follow()
                delay = RETRY_FIRST
                continue
            except _REDIS_DOWN as exc:
                if not self._lost_redis:
                    log.warning("event feed lost redis (%s): live streams end; retrying", exc)
                self._lost_redis = True
            except Exception:  # a bug: streams end and the feed starts over, the API serves on
                log.exception("event feed failed; retrying")
            self._down()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
            self._settled.clear()  # connecting again: new subscribers wait for the outcome

    async def _follow(self) -> None:
        self._head = await self._stream.last_event_id()
        self._settled.set()
        if self._lost_redis:
            log.info("event feed reconnected to redis")
            self._lost_redis = False
        loop = asyncio.get_running_loop()
        while self._listeners:
            page = await self._stream.read_events(self._head, count=BATCH, block_ms=BLOCK_MS)
            if page.last_id is None:
                continue
            published = loop.time()
            batch = await self._names.fill(self._stream.redis, page.events)
            self._head = page.last_id  # with the publish below, in one step of the loop
            self._publish(batch)
            if page.size < BATCH:
                await asyncio.sleep(published + FANOUT_INTERVAL - loop.time())
        self._head = None
        self._settled.clear()

    def _publish(self, batch: list[LiveEvent]) -> None:
        if not batch:
            return
        # One batch always fits (a batch may hold up to BATCH events, more than a small backlog).
        lagging = [s for s in self._subscribers
                   if s.pending and s.pending + len(batch) > self._backlog]
        for subscriber in lagging:
            self._subscribers.discard(subscriber)
            subscriber.end()  # after what it holds: its client resumes from there
        for subscriber in self._subscribers:
            subscriber.put(batch)

    def _down(self) -> None:
        self._head = None
        self._settled.set()
        for subscriber in self._subscribers:
            subscriber.end()
        self._subscribers.clear()

    def close(self) -> None:
        """The API is shutting down: end every stream now rather than at the shutdown timeout."""
        self._closed = True
        self._down()

    # ------------------------------------------------------------------ subscribers

    @contextlib.asynccontextmanager
    async def subscribe(self, after: str | None) -> AsyncIterator[Subscription]:
        """A subscription to entries after ``after`` (None: from now on). Raises ``Unavailable``
        (before the caller has sent anything) when the feed cannot reach Redis; a Redis error
        while fixing "now" propagates (the error middleware makes it a 503 too)."""
        if self._closed:
            raise Unavailable("the API is shutting down", {"dependency": "redis"})
        self._listeners += 1
        self._wanted.set()
        subscription: Subscription | None = None
        try:
            if not await self._live():
                raise Unavailable("the live event feed cannot reach redis",
                                  {"dependency": "redis"})
            if after is None:
                # From now on: the stream's newest entry, not the feed's head, which may be up to
                # FANOUT_INTERVAL behind. On the shared pool, so bounded like catch-up reads.
                async with self._catch_up:
                    after = await self._store.last_event_id()
            subscription = Subscription(self, after)
            yield subscription
        finally:
            self._listeners -= 1
            if subscription is not None:
                subscription.leave()

    async def _live(self) -> bool:
        if not self._settled.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._wait_seconds):
                    await self._settled.wait()
        return self._head is not None and not self._closed

    async def _read_range(self, after_id: str, until_id: str) -> tuple[EventPage, list[LiveEvent]]:
        async with self._catch_up:
            page = await self._store.read_range(after_id, until_id, BATCH)
            return page, await self._names.fill(self._store.redis, page.events)


class Subscription:
    """One SSE stream's view of the feed: catch-up pages first, then the shared live batches."""

    def __init__(self, feed: EventFeed, after: str) -> None:
        self._feed = feed
        self._cursor = after  # the last entry this subscriber has been given
        self._joined: _Subscriber | None = None

    def leave(self) -> None:
        if self._joined is not None:
            self._feed._subscribers.discard(self._joined)

    async def batches(self, idle_seconds: float) -> AsyncIterator[list[LiveEvent]]:
        """Entries in stream order, in batches; an empty batch after ``idle_seconds`` without
        any. Ends when the feed ends this subscriber (lagging, Redis gone, shutdown)."""
        feed = self._feed
        while self._joined is None:
            head = feed._head
            if head is None:
                if not await feed._live():
                    return
                continue
            if stream_position(self._cursor) >= stream_position(head):
                # Joined in the same step of the loop as the head was checked: the feed's next
                # batch starts right after ``head``, and entries up to the cursor are skipped.
                self._joined = _Subscriber()
                feed._subscribers.add(self._joined)
                break
            page, batch = await feed._read_range(self._cursor, head)
            # A short page read everything up to ``head``; a full one may have stopped before.
            self._cursor = page.last_id if page.size == BATCH and page.last_id else head
            if batch:
                yield batch
        joined = self._joined
        while True:
            try:
                async with asyncio.timeout(idle_seconds):
                    batch = await joined.queue.get()
            except TimeoutError:
                yield []
                continue
            if batch is None:
                return
            joined.pending -= len(batch)
            cursor = stream_position(self._cursor)
            if stream_position(batch[0].id) <= cursor:  # the cursor was ahead of the feed
                batch = [e for e in batch if stream_position(e.id) > cursor]
            if batch:
                self._cursor = batch[-1].id
                yield batch
