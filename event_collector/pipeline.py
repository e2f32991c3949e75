"""raw messages -> events -> batches -> store: the collector's hot path.

Two tasks joined by a short queue, so decoding the next batch overlaps the Lua call of the
previous one (Redis runs the script on its own core), and two script calls in flight, so Redis
starts on the next batch while the collector reads the reply of the last one:
- ``decode``: takes every body the reader buffered, parses it, normalizes each event
  (invalid ones are counted, logged and skipped; with partition leases, the events of
  partitions this collector does not hold go undecoded to the replay window), and cuts batches at
  ``batch_size`` events or ``batch_interval`` seconds after the batch's first event, whichever
  comes first;
- ``write``: applies each batch in one script call, retrying the *same* batch with backoff
  while the store is unreachable, then updates metrics and tells the buffer and the reader how
  many raw messages are now safely written (the spool deletes segments written whole, RabbitMQ
  acks them).
On shutdown everything already read into memory is decoded and written before ``run`` returns;
what waits in the spool stays there for the next start (``RawBuffer.keep_spool``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

import msgspec

from event_collector.connection import STORE_UNAVAILABLE
from event_collector.consume import BAD_ENVELOPE, Backoff, RawBuffer
from event_collector.events import Event
from event_collector.metrics import CollectorMetrics
from event_collector.normalize import body_events
from event_collector.store import ApplyResult, EventStore

log = logging.getLogger("taskpulse.collector.pipeline")

INVALID_LOG_PER_INTERVAL: Final = 20
WRITES_IN_FLIGHT: Final = 2
STORE_ERRORS: Final = (*STORE_UNAVAILABLE, OSError)


class Source(Protocol):
    def done(self, messages: int) -> None: ...


class Gate(Protocol):
    """Which events this collector applies now (``leases.PartitionLeases``)."""

    def split(self, events: Sequence[Event]) -> list[Event]: ...

    def sift(self, body: bytes) -> bytes | None:
        """``body`` less the events set aside undecoded (None: all of them were)."""
        ...


class Batch(msgspec.Struct):
    events: list[Event]
    messages: int  # raw messages fully contained in this batch (for acks)


class PipelineStats(msgspec.Struct):
    """Running totals, for the periodic log line and ``/health``."""

    applied: int = 0
    duplicates: int = 0
    invalid: int = 0
    batches: int = 0
    last_write: float = 0.0
    store_connected: bool = True
    store_error: str = ""
    last_lag: float = 0.0


class Pipeline:
    def __init__(
        self,
        store: EventStore,
        source: Source,
        buffer: RawBuffer,
        metrics: CollectorMetrics,
        *,
        batch_size: int = 500,
        batch_interval: float = 0.05,
        reconnect_max: float = 10.0,
        gate: Gate | None = None,
    ) -> None:
        self.store = store
        self.gate = gate
        self.source = source
        self.buffer = buffer
        self.metrics = metrics
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.reconnect_max = reconnect_max
        self.stats = PipelineStats()
        self._batches: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=2)
        self._invalid_logged = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish: decode what is buffered, write it, then ``run`` returns."""
        self._stopping.set()

    async def run(self) -> None:
        writer = asyncio.create_task(self._write_loop(), name="batch-writer")
        decoder = asyncio.create_task(self._decode_loop(), name="batch-decoder")
        # A writer that died would leave the decoder blocked on a full queue: a silent stall.
        # Either one failing ends the run (the collector exits; a restart replays the spool).
        await asyncio.wait((writer, decoder), return_when=asyncio.FIRST_COMPLETED)
        if writer.done():
            decoder.cancel()
            writer.result()
            raise RuntimeError("the batch writer stopped before the decoder")
        try:
            decoder.result()
        finally:  # what was decoded is written, even after a decoder failure
            await self._batches.put(None)
            await writer

    # -- decode ------------------------------------------------------------------------------

    async def _decode_loop(self) -> None:
        events: list[Event] = []
        messages = 0
        deadline = 0.0
        while True:
            wait = max(0.0, deadline - time.monotonic()) if events else self.batch_interval
            stopping = self._stopping.is_set()
            # with a batch begun, nothing is written before its deadline anyway: take what
            # arrives meanwhile in one go rather than waking up for every message
            raws = await self.buffer.get(0 if stopping else wait, until_full=bool(events))
            for raw in raws:
                if not events:
                    deadline = time.monotonic() + self.batch_interval
                events.extend(self.decode(raw))
                messages += 1
                if len(events) >= self.batch_size:
                    await self._emit(events, messages)
                    events, messages = [], 0
            if events and (stopping or time.monotonic() >= deadline):
                await self._emit(events, messages)
                events, messages = [], 0
            elif messages and not events:
                # only invalid messages: nothing to write, but they are acked in order
                await self._emit([], messages)
                messages = 0
            if stopping and not raws:
                return

    async def _emit(self, events: list[Event], messages: int) -> None:
        await self._batches.put(Batch(events, messages))
        await asyncio.sleep(0)  # let the writer start on it while we decode the next one

    def decode(self, raw: bytes) -> Iterable[Event]:
        """One message body -> its valid events (a ``task.multi`` body holds a list)."""
        if raw.startswith(BAD_ENVELOPE):
            self._invalid("bad_envelope", ValueError(raw[1:80]))
            return ()
        # With leases, the events of partitions another collector applies wait raw in the
        # replay window: decoding them would cost ~5 us an event for nothing unless a takeover
        # comes (with 2 collectors, half the fanout).
        if self.gate is not None:
            sifted = self.gate.sift(raw)
            if sifted is None:
                return ()
            raw = sifted
        return body_events(raw, self._invalid)

    def _invalid(self, reason: str, exc: BaseException) -> None:
        self.stats.invalid += 1
        self.metrics.observe_invalid(reason)
        if self._invalid_logged < INVALID_LOG_PER_INTERVAL:
            self._invalid_logged += 1
            log.warning("invalid event skipped: %s (%s)", reason, str(exc)[:200])

    # -- write -------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        # Up to WRITES_IN_FLIGHT script calls at once (each on its own connection): Redis runs
        # one while we read the reply of the other and send the next, so the store never waits
        # for the collector between batches. Their order in Redis does not matter (projections
        # are order-independent, dedup applies each event once); confirmations keep it.
        in_flight: deque[asyncio.Task[None]] = deque()
        try:
            while (batch := await self._batches.get()) is not None:
                before = in_flight[-1] if in_flight else None
                in_flight.append(asyncio.create_task(self._write_and_confirm(batch, before)))
                if len(in_flight) >= WRITES_IN_FLIGHT:
                    await in_flight.popleft()
            while in_flight:
                await in_flight.popleft()
        finally:  # after a failure (the first one propagates): the rest are abandoned
            for write in in_flight:
                write.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _write_and_confirm(
        self, batch: Batch, before: asyncio.Task[None] | None
    ) -> None:
        """Write ``batch``, then, once the batch before it is confirmed, tell the buffer and
        the reader its messages are safely written: in order, and without waiting for a later
        batch to come along."""
        if batch.events:
            await self._write(batch.events)
        if before is not None:
            await before
        self.buffer.written(batch.messages)
        self.source.done(batch.messages)

    async def _write(self, events: list[Event]) -> None:
        if self.gate is not None:
            events = self.gate.split(events)
            if not events:
                return
        await self.write_now(events)

    async def write_now(self, events: list[Event]) -> None:
        """Apply ``events`` whatever the gate says (a taken-over partition's replay), counted
        as any batch is."""
        result = await self._apply(events)
        applied = result.applied
        self.metrics.observe_applied(applied, result.facts)
        self.metrics.observe_duplicates(result.duplicates)
        now = time.time()
        self.stats.last_lag = max(0.0, now - max(e.timestamp for e in events))
        self.metrics.observe_lag(self.stats.last_lag)
        self.stats.applied += len(applied)
        self.stats.duplicates += result.duplicates
        self.stats.batches += 1
        self.stats.last_write = now

    async def _apply(self, events: list[Event]) -> ApplyResult:
        backoff = Backoff(maximum=self.reconnect_max)
        while True:
            try:
                result = await self.store.apply(events)
            except STORE_ERRORS as exc:
                delay = backoff.next()
                self.stats.store_connected = False
                self.stats.store_error = f"{type(exc).__name__}: {exc}"
                log.warning("store unreachable (%s); retrying the batch of %d in %.1fs",
                            self.stats.store_error, len(events), delay)
                await asyncio.sleep(delay)
                continue
            if not self.stats.store_connected:
                log.info("store reachable again; writing resumed")
                self.stats.store_connected = True
            return result

    def take_summary(self) -> dict[str, int]:
        """Reset the per-interval log budget (called with each stats line)."""
        self._invalid_logged = 0
        return {"applied": self.stats.applied, "duplicates": self.stats.duplicates,
                "invalid": self.stats.invalid, "batches": self.stats.batches}
