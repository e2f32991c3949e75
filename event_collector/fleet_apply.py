"""Re-apply what operators set for the fleet (``event_collector.fleet``) to workers that come
online after it was set.

Celery's remote control changes the workers running at the time; a worker started later comes
up with its own ``-Q`` and task settings. This periodic job watches the store's workers for a
new ``online_at`` (a worker-online event folded by the collector) and tells each such worker:
the rate and time limits kept in ``F limits``, and, for every paused queue it consumes, to
cancel that consumer (the worker is then added to the queue's record, so resume adds it back).

Every command is idempotent, so a collector restart (all alive workers look new) or two
collectors doing it at once change nothing. Remote control blocks: it runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from celery import Celery

from event_collector.fleet import FleetState, PausedQueue, TaskLimits, limit_commands
from event_collector.keys import Keys
from event_collector.read import EventReader

log = logging.getLogger("taskpulse.collector.fleet")


class FleetApplier:
    def __init__(self, store: aioredis.Redis, keys: Keys, broker_url: str,
                 timeout: float = 1.0) -> None:
        self._reader = EventReader(store, keys)
        self._fleet = FleetState(store, keys)
        self._app = Celery(broker=broker_url, set_as_current=False)
        self._timeout = timeout
        self._applied: dict[str, float] = {}  # hostname -> the online_at already handled

    async def aclose(self) -> None:
        self._app.close()

    async def run_once(self) -> list[str]:
        """Apply the fleet settings to workers online since the last run; their hostnames."""
        alive = [w for w in await self._reader.workers() if w.alive and w.online_at]
        # Forget workers gone since (pods with generated names come and go).
        self._applied = {h: t for h, t in self._applied.items()
                         if h in {w.hostname for w in alive}}
        fresh = [w for w in alive if self._applied.get(w.hostname) != w.online_at]
        if not fresh:
            return []
        limits = await self._fleet.all_limits()
        paused = await self._fleet.paused()
        for worker in fresh:
            cancelled = await asyncio.to_thread(self._apply, worker.hostname, limits, paused)
            if cancelled is None:
                continue  # did not answer: tried again next run
            for queue in cancelled:
                await self._fleet.add_paused_worker(queue, worker.hostname)
            self._applied[worker.hostname] = worker.online_at  # type: ignore[assignment]
            if limits or cancelled:
                log.info("fleet settings applied to %s: limits of %d task types, paused %s",
                         worker.hostname, len(limits), ", ".join(cancelled) or "no queue")
        return [w.hostname for w in fresh]

    def _apply(self, hostname: str, limits: dict[str, TaskLimits],
               paused: dict[str, PausedQueue]) -> list[str] | None:
        """Send the limits and cancel paused queues on one worker; the queues it cancelled, or
        None when it does not answer a ping."""
        if hostname not in self._command(hostname, "ping"):
            return None
        for name, limit in limits.items():
            for command, arguments in limit_commands(name, limit):
                self._command(hostname, command, **arguments)
        if not paused:
            return []
        consuming = self._command(hostname, "active_queues").get(hostname) or []
        names = {q.get("name") for q in consuming if isinstance(q, dict)}
        cancelled = sorted(queue for queue in paused if queue in names)
        for queue in cancelled:
            self._command(hostname, "cancel_consumer", queue=queue)
        return cancelled

    def _command(self, hostname: str, command: str, **arguments: Any) -> dict[str, Any]:
        replies = self._app.control.broadcast(
            command, arguments=arguments, destination=[hostname], reply=True,
            timeout=self._timeout,
        ) or []
        return {host: value for reply in replies for host, value in reply.items()}
