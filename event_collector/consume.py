"""Broker fanout readers: move raw event messages off the broker into a bounded buffer, fast.

Celery publishes events to the ``celeryev`` topic exchange. On Redis that is PUB/SUB (kombu's
fanout: channel ``/<db>.celeryev/<routing key>``, e.g. ``/0.celeryev/task.multi``), where a
subscriber that reads too slowly is disconnected once Redis buffers 32 MB for it. So the Redis
reader is a thread that only reads the socket (hiredis parses many replies per ``recv``) and hands
lists of raw payloads to ``RawBuffer``, which never makes it wait: past the memory budget they go
to a disk spool (``spool.py``). Decoding happens behind it (``pipeline.py``).

On RabbitMQ the exchange feeds a durable queue owned by the collector, consumed with manual
acks: messages are acknowledged only after the batch holding them is written, so nothing is
lost while the collector is down or restarting, and a full buffer simply makes the reader wait
(the queue holds the backlog).

A reader yields *bodies*: the JSON of one Celery event, or of a list of them (``task.multi``,
sent by prefork workers that buffer task events). The Redis reader unwraps kombu's envelope in its
thread (same CPU either side of the GIL, but a waiting body takes half the memory of its
envelope); an envelope it cannot read is passed on as ``BAD_ENVELOPE`` + a prefix of it, so the
decoder counts it as invalid like any other bad event.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import hiredis
import msgspec
import orjson
import redis

from event_collector.spool import BUFFER_FULL, DropCounter, Spool, pack, unpack

log = logging.getLogger("taskpulse.collector.consume")

EVENT_EXCHANGE: Final = "celeryev"
BAD_ENVELOPE: Final = b"\x00"  # never the first byte of JSON
READ_CHUNK: Final = 1 << 20
# A recv that returns less than this waits this long before the next one: 2 ms of latency in
# front of a 50 ms batch, ~5x fewer wake-ups at a few thousand messages a second (and none at a
# flood: a recv then returns more).
COALESCE_BELOW: Final = 64 << 10
COALESCE_SECONDS: Final = 0.002
# Bytes a body costs in memory beyond its length (CPython bytes object + its list slot), so the
# memory budget is about real memory.
MESSAGE_OVERHEAD: Final = 41
_RAW_LIST: Final = msgspec.json.Decoder(list[msgspec.Raw]).decode


class ReaderStatus(msgspec.Struct):
    """What ``/health`` says about a reader; written by its thread, read by the loop."""

    source: str
    connected: bool = False
    since: float = 0.0
    reconnects: int = 0
    last_error: str = ""


class Backoff:
    """Exponential reconnect delay with jitter, reset after a successful connection."""

    def __init__(self, first: float = 0.2, maximum: float = 10.0) -> None:
        self.first, self.maximum = first, maximum
        self.current = first

    def next(self) -> float:
        delay = self.current
        self.current = min(self.maximum, self.current * 2)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.current = self.first


class RawBuffer:
    """Hand-off from a reader thread to the event loop, in chunks of messages, oldest first.

    Memory is bounded by ``max_bytes`` and ``max_messages`` (whichever is reached first). Past
    that budget:
    - with ``block`` (RabbitMQ: the durable queue keeps the backlog), ``put`` waits;
    - else (Redis PUB/SUB, where a reader that stops reading is disconnected and loses events)
      ``put`` never waits: the chunk goes to the ``spool`` on disk, and so does every later one
      until the spool is drained, so ``get`` hands out memory, then spool, in arrival order.
      What the spool cannot take (or everything past the budget, without a spool) is dropped
      and counted (``dropped``).
    Once more than ``pack_after`` messages wait in memory (a burst faster than the store), new
    chunks are kept compressed (``spool.pack``: JSON bodies shrink ~5-10x). ``get`` returns at
    most about ``take_max`` messages; ``written`` tells which of them are in the store, so a
    spool segment is deleted only once all of it is.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, max_bytes: int, max_messages: int,
        block: bool = False, spool: Spool | None = None, dropped: DropCounter | None = None,
        pack_after: int = 20_000, take_max: int = 5_000,
    ) -> None:
        self._loop = loop
        self._block = block
        self._max_bytes = max_bytes
        self._max_messages = max_messages
        self._spool = spool
        self._dropped = dropped
        self._pack_after = pack_after
        self._take_max = take_max
        # (messages, events, bytes, bodies or a packed blob)
        self._chunks: deque[tuple[int, int, int, list[bytes] | bytes]] = deque()
        self._count = self._events = self._bytes = 0
        # [messages, spool segment or None] in hand-out order, until ``written``
        self._handed: deque[list] = deque()
        self._spooling = bool(spool)  # a replayed spool goes before anything read now
        self._spool_reads = True
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._ready = asyncio.Event()
        self._wake_at = 0  # a get() waits: a put wakes it once this many messages wait (0: none)
        self._drops = DropLog()

    def use_spool(self, spool: Spool) -> None:
        """Spill to ``spool`` from now on; what it already holds goes first. Call before the
        reader starts."""
        with self._lock:
            self._spool = spool
            self._spooling = bool(spool)

    def __len__(self) -> int:
        """Messages waiting, in memory and in the spool."""
        return self._count + (self._spool.messages if self._spool is not None else 0)

    def snapshot(self) -> BufferSnapshot:
        with self._lock:
            spool = self._spool
            if spool is None:
                return BufferSnapshot(self._events, self._bytes, self._max_bytes)
            return BufferSnapshot(self._events, self._bytes, self._max_bytes,
                                  spool.events, spool.bytes, spool.max_bytes, spool.segments)

    def put(self, messages: list[bytes], stop: threading.Event) -> None:
        events = events_in(messages)
        chunk: list[bytes] | bytes = messages
        size = sum(map(len, messages)) + len(messages) * MESSAGE_OVERHEAD
        if len(messages) >= 16 and (self._spooling or self._count >= self._pack_after):
            chunk = pack(messages)
            size = len(chunk)
        dropped = None
        with self._not_full:
            if self._block:
                while self._full(len(messages), size) and not stop.is_set():
                    self._not_full.wait(0.2)
                self._keep(len(messages), events, size, chunk)
            elif not (self._spooling or self._full(len(messages), size)):
                self._keep(len(messages), events, size, chunk)
            elif self._spool is None:
                dropped = BUFFER_FULL
            else:
                self._spooling = True
                payload = chunk if isinstance(chunk, bytes) else pack(chunk)
                dropped = self._spool.append(payload, len(messages), events)
            wake = self._wake_at and (self._count >= self._wake_at or self._spooling)
            if wake:
                self._wake_at = 0
        if wake:  # one self-pipe write per idle period, not per message
            self._loop.call_soon_threadsafe(self._ready.set)
        if self._spool is not None:
            self._spool.sync_sealed()
        if dropped is not None:
            self._drop(dropped, events)

    def _full(self, messages: int, size: int) -> bool:
        # an empty buffer takes any chunk, however large: nothing else could make room
        return self._count > 0 and (
            self._count + messages > self._max_messages or self._bytes + size > self._max_bytes
        )

    def _keep(self, messages: int, events: int, size: int, chunk: list[bytes] | bytes) -> None:
        self._chunks.append((messages, events, size, chunk))
        self._count += messages
        self._events += events
        self._bytes += size

    def _drop(self, reason: str, events: int) -> None:
        if self._dropped is not None:
            self._dropped(reason, events)
        self._drops.add(reason, events, self._budget)

    def log_drops(self) -> None:
        """Log drops not logged yet (called with the periodic stats line)."""
        self._drops.flush(self._budget)

    def _budget(self) -> str:
        spool = self._spool
        if spool is None:
            return f"no spool; memory budget {self._max_bytes:,} bytes"
        return f"spool {spool.directory}: {spool.bytes:,} of {spool.max_bytes:,} bytes"

    async def get(self, wait: float | None = None, *, until_full: bool = False) -> list[bytes]:
        """The oldest waiting messages (possibly none after ``wait`` seconds). ``until_full``:
        when nothing waits, do not return on the first message but once a full slice waits or
        ``wait`` is over (a trickle then costs one wake-up per ``wait``, not one per message)."""
        while True:
            with self._lock:
                if self._chunks:
                    return self._take()
                if self._spooling and self._spool_reads and self._spool is not None:
                    found = self._spool.read()
                    if found is not None:
                        self._spooling = bool(self._spool)
                        self._handed.append([len(found[0]), found[1]])
                        return found[0]
                    if self._spool:  # counted but unreadable: never spin on it
                        log.error("spool %s counts %d messages it cannot hand out",
                                  self._spool.directory, self._spool.messages)
                    self._spooling = False
                self._wake_at = self._take_max if until_full else 1
                self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except TimeoutError:
                with self._lock:
                    self._wake_at = 0
                    if not self._chunks and not (self._spooling and self._spool_reads):
                        return []

    def _take(self) -> list[bytes]:
        out: list[bytes] = []
        while self._chunks and len(out) < self._take_max:
            n, events, size, chunk = self._chunks.popleft()
            self._count -= n
            self._events -= events
            self._bytes -= size
            out.extend(chunk if isinstance(chunk, list) else unpack(chunk))
        if self._spool is not None:
            if self._handed and self._handed[-1][1] is None:
                self._handed[-1][0] += len(out)
            else:
                self._handed.append([len(out), None])
        self._not_full.notify_all()
        return out

    def written(self, messages: int) -> None:
        """The oldest ``messages`` handed out are in the store: spool segments wholly written
        are deleted."""
        if self._spool is None:
            return
        with self._lock:
            while messages and self._handed:
                entry = self._handed[0]
                done = min(messages, entry[0])
                entry[0] -= done
                messages -= done
                if entry[1] is not None:
                    self._spool.written(entry[1], done)
                if not entry[0]:
                    self._handed.popleft()

    def keep_spool(self) -> int:
        """Stop handing out spooled messages (shutting down: they wait on disk for the next
        start, which replays them). Returns how many events stay there."""
        with self._lock:
            self._spool_reads = False
            return self._spool.events if self._spool is not None else 0


class BufferSnapshot(msgspec.Struct, frozen=True):
    """What waits between reader and writer, for ``/metrics`` and ``/health``."""

    memory_events: int = 0
    memory_bytes: int = 0
    memory_limit_bytes: int = 0
    spool_events: int = 0
    spool_bytes: int = 0
    spool_limit_bytes: int = 0  # 0: no spool
    spool_segments: int = 0


class DropLog:
    """Logs dropped events with their count: at once, then at most every ``interval`` seconds
    while drops go on (one line per flood, not one per message); ``flush`` logs the rest."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.total: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}
        self._next = 0.0
        self._lock = threading.Lock()

    def add(self, reason: str, events: int, detail: Callable[[], str]) -> None:
        with self._lock:
            self.total[reason] = self.total.get(reason, 0) + events
            self._unlogged[reason] = self._unlogged.get(reason, 0) + events
            if time.monotonic() < self._next:
                return
        self.flush(detail)

    def flush(self, detail: Callable[[], str]) -> None:
        with self._lock:
            unlogged, self._unlogged = self._unlogged, {}
            if unlogged:
                self._next = time.monotonic() + self.interval
            for reason, count in sorted(unlogged.items()):
                log.error("dropped %d events (%s; %s); %d dropped for this reason since start",
                          count, reason, detail(), self.total[reason])


def events_in(bodies: list[bytes]) -> int:
    """Events in these message bodies: a ``task.multi`` body is a JSON list of them (counted
    without building them: ~0.7 us per body); an unreadable one counts once, as the decoder
    will count it invalid once."""
    count = len(bodies)
    for body in bodies:
        if body[:1] == b"[":
            with contextlib.suppress(msgspec.DecodeError):
                count += len(_RAW_LIST(body)) - 1
    return count


def unwrap_kombu_redis(raw: bytes) -> bytes:
    """kombu's Redis envelope ``{"body": <base64>, "properties": {"body_encoding": ...}}``."""
    envelope = orjson.loads(raw)
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        # binascii directly: base64.b64decode's wrapper cost ~half of it per message
        return binascii.a2b_base64(body)
    return body.encode() if isinstance(body, str) else orjson.dumps(body)


def unwrap_all(raws: list[bytes]) -> list[bytes]:
    out = []
    for raw in raws:
        try:
            out.append(unwrap_kombu_redis(raw))
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            out.append(BAD_ENVELOPE + raw[:200])
    return out


class RedisFanoutReader:
    """PSUBSCRIBE to Celery's event channels of one broker db, in a thread of its own."""

    def __init__(
        self, broker_url: str, reconnect_max: float = 10.0,
        disconnected: Callable[[], None] | None = None,
    ) -> None:
        self.url = broker_url
        self._on_disconnect = disconnected
        params = redis.connection.parse_url(broker_url)
        self.pattern = f"/{params.get('db', 0)}.{EVENT_EXCHANGE}/*"
        self.status = ReaderStatus(source=f"redis PSUBSCRIBE {self.pattern}")
        self._backoff = Backoff(maximum=reconnect_max)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: redis.Connection | None = None

    def start(self, buffer: RawBuffer) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(buffer,), name="redis-fanout-reader", daemon=True
        )
        self._thread.start()

    def done(self, messages: int) -> None:
        """PUB/SUB has nothing to acknowledge."""

    def stop(self) -> None:
        """Stop reading (what is buffered stays for the pipeline)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        """After the pipeline flushed: nothing left to acknowledge on PUB/SUB."""

    def _run(self, buffer: RawBuffer) -> None:
        while not self._stop.is_set():
            try:
                self._subscribe_and_read(buffer)
            except (OSError, redis.RedisError, hiredis.ProtocolError) as exc:
                self._disconnected(exc)
            finally:
                if self._conn is not None:
                    self._conn.disconnect()
                    self._conn = None

    def _disconnected(self, exc: BaseException) -> None:
        was_connected = self.status.connected
        self.status.connected = False
        self.status.last_error = f"{type(exc).__name__}: {exc}"
        delay = self._backoff.next()
        if was_connected:
            if self._on_disconnect is not None:
                self._on_disconnect()
            log.warning(
                "broker connection lost (%s); events published until resubscribed are lost;"
                " reconnecting in %.1fs", self.status.last_error, delay,
            )
        else:
            log.warning("broker unreachable (%s); reconnecting in %.1fs",
                        self.status.last_error, delay)
        self._stop.wait(delay)

    def _subscribe_and_read(self, buffer: RawBuffer) -> None:
        # redis-py connects (auth, TLS, sockets); then we read its socket with our own hiredis
        # reader so one recv() yields hundreds of messages without per-message Python overhead.
        client = redis.Redis.from_url(self.url, socket_connect_timeout=5)
        self._conn = client.connection_pool.make_connection()
        self._conn.connect()
        self._conn.send_command("PSUBSCRIBE", self.pattern)
        sock = self._conn._sock
        assert sock is not None
        sock.settimeout(0.5)  # wake up to notice stop()
        reader = hiredis.Reader()
        while not self._stop.is_set():
            try:
                data = sock.recv(READ_CHUNK)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError("broker closed the connection")
            reader.feed(data)
            messages = self._drain(reader)
            if messages:
                buffer.put(unwrap_all(messages), self._stop)
            if len(data) < COALESCE_BELOW:
                # A trickle (workers publish one message at a time): let a few arrive before the
                # next recv, instead of one recv, one put and one loop wake-up per message.
                time.sleep(COALESCE_SECONDS)

    def _drain(self, reader: hiredis.Reader) -> list[bytes]:
        messages: list[bytes] = []
        while (reply := reader.gets()) is not False:
            if isinstance(reply, list) and reply[0] == b"pmessage":
                messages.append(reply[3])
            elif isinstance(reply, list) and reply[0] == b"psubscribe":
                self._subscribed()
            elif isinstance(reply, hiredis.ReplyError):
                raise redis.ResponseError(str(reply))
        return messages

    def _subscribed(self) -> None:
        self.status.connected = True
        self.status.since = time.time()
        if self.status.reconnects or self.status.last_error:
            log.info("broker reconnected; subscribed to %s", self.pattern)
        else:
            log.info("connected to broker; subscribed to %s", self.pattern)
        self.status.reconnects += 1 if self.status.last_error else 0
        self._backoff.reset()


class AmqpQueueReader:
    """Consume Celery events from a durable queue bound to ``celeryev`` (routing key ``#``).

    kombu objects are not thread-safe, so this thread also does the acks: ``done(n)`` only
    records that the next ``n`` delivered messages are written; the thread acks them (one
    ``multiple=True`` ack) on its next turn.
    """

    def __init__(
        self, broker_url: str, queue: str, max_length: int, prefetch: int = 5000,
        reconnect_max: float = 10.0, disconnected: Callable[[], None] | None = None,
    ) -> None:
        self.url = broker_url
        self._on_disconnect = disconnected
        self.queue_name = queue
        self.max_length = max_length
        self.prefetch = prefetch
        self.status = ReaderStatus(source=f"amqp queue {queue}")
        self._backoff = Backoff(maximum=reconnect_max)
        self._stop = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._tags: deque[int] = deque()
        self._written = 0
        self._written_lock = threading.Lock()

    def start(self, buffer: RawBuffer) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(buffer,), name="amqp-event-reader", daemon=True
        )
        self._thread.start()

    def done(self, messages: int) -> None:
        with self._written_lock:
            self._written += messages

    def stop(self) -> None:
        """Stop taking deliveries; keep acknowledging what the pipeline still writes."""
        self._stop.set()

    def close(self) -> None:
        """After the pipeline flushed: ack the rest and disconnect (unacked ones come again)."""
        self._stop.set()
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self, buffer: RawBuffer) -> None:
        import kombu

        while not self._stop.is_set():
            try:
                with kombu.Connection(self.url, connect_timeout=5) as conn:
                    conn.ensure_connection(max_retries=1)
                    self._consume(conn, buffer)
            except Exception as exc:  # kombu/amqp raise many types; all mean "reconnect"
                if self.status.connected and self._on_disconnect is not None:
                    self._on_disconnect()
                self.status.connected = False
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                delay = self._backoff.next()
                log.warning("broker connection failed (%s); unacked events will be redelivered;"
                            " reconnecting in %.1fs", self.status.last_error, delay)
                self._stop.wait(delay)

    def _queue(self, conn: object) -> object:
        import kombu

        exchange = kombu.Exchange(EVENT_EXCHANGE, type="topic", durable=True, auto_delete=False)
        return kombu.Queue(
            self.queue_name, exchange=exchange, routing_key="#", durable=True,
            auto_delete=False, queue_arguments={"x-max-length": self.max_length},
        )

    def _consume(self, conn, buffer: RawBuffer) -> None:  # type: ignore[no-untyped-def]
        channel = conn.channel()
        queue = self._queue(conn)(channel)
        queue.declare()
        channel.basic_qos(0, self.prefetch, False)
        self._tags.clear()
        with self._written_lock:
            self._written = 0  # unacked deliveries of a dead channel come again
        pending: list[bytes] = []

        def on_message(message) -> None:  # type: ignore[no-untyped-def]
            self._tags.append(message.delivery_tag)
            body = message.body  # py-amqp hands over str for text content types
            pending.append(body.encode() if isinstance(body, str) else body)

        tag = channel.basic_consume(self.queue_name, callback=on_message, no_ack=False)
        self.status.connected, self.status.since = True, time.time()
        self.status.reconnects += 1 if self.status.last_error else 0
        self._backoff.reset()
        log.info("connected to broker; consuming durable queue %s (bound to %s, '#')",
                 self.queue_name, EVENT_EXCHANGE)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.1)
            if pending:
                buffer.put(list(pending), self._stop)
                pending.clear()
            self._ack(channel)
        channel.basic_cancel(tag)
        while not self._closed.wait(0.05):
            self._ack(channel)
        self._ack(channel)

    def _ack(self, channel) -> None:  # type: ignore[no-untyped-def]
        with self._written_lock:
            n, self._written = self._written, 0
        last = None
        for _ in range(min(n, len(self._tags))):
            last = self._tags.popleft()
        if last is not None:
            channel.basic_ack(last, multiple=True)
