"""What an operator set for the fleet and wants to stay set: task-type limits and paused queues.

Celery's remote control changes running workers only; a worker started later comes up with its
own configuration. So the API records the desired state here (keys.py ``F limits``,
``F paused``), shows it, and the collector re-applies it to each worker that comes online
(``event_collector.fleet_apply``). Both sides read and write it through this one module.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from event_collector.keys import Keys
from event_collector.replies import text


class TaskLimits(msgspec.Struct, frozen=True, omit_defaults=True):
    """Limits of one task type. ``rate_limit`` in Celery's syntax (``10/m``); None: unlimited.
    The two time limits go together (Celery's ``time_limit`` command sets both)."""

    rate_limit: str | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None
    set_by: str = ""
    set_at: float = 0.0


class PausedQueue(msgspec.Struct, frozen=True):
    """A queue no worker consumes until it is resumed; its messages wait in the broker."""

    workers: list[str]  # consumed it when paused (or came online since): resume re-adds them
    paused_by: str
    paused_at: float


def limit_commands(name: str, limits: TaskLimits) -> list[tuple[str, dict[str, Any]]]:
    """The remote-control commands (name, arguments) that put ``limits`` in force on workers:
    the API sends them to running workers, the collector to workers coming online."""
    commands: list[tuple[str, dict[str, Any]]] = [
        ("rate_limit", {"task_name": name, "rate_limit": limits.rate_limit})]
    if limits.time_limit is not None:
        commands.append(("time_limit", {"task_name": name, "soft": limits.soft_time_limit,
                                        "hard": limits.time_limit}))
    return commands


_LIMITS = msgspec.json.Decoder(TaskLimits)
_PAUSED = msgspec.json.Decoder(PausedQueue)
_ENCODER = msgspec.json.Encoder()


class FleetState:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def limits(self, name: str) -> TaskLimits | None:
        raw = await self.redis.hget(self.keys.task_limits, name)
        return _LIMITS.decode(raw) if raw else None

    async def all_limits(self) -> dict[str, TaskLimits]:
        raw = await self.redis.hgetall(self.keys.task_limits)
        return {text(name): _LIMITS.decode(value) for name, value in raw.items()}

    async def set_limits(self, name: str, limits: TaskLimits) -> None:
        await self.redis.hset(self.keys.task_limits, name, _ENCODER.encode(limits))

    async def paused(self) -> dict[str, PausedQueue]:
        raw = await self.redis.hgetall(self.keys.paused_queues)
        return {text(queue): _PAUSED.decode(value) for queue, value in raw.items()}

    async def pause(self, queue: str, paused: PausedQueue) -> None:
        await self.redis.hset(self.keys.paused_queues, queue, _ENCODER.encode(paused))

    async def resume(self, queue: str) -> PausedQueue | None:
        """Forget that ``queue`` is paused; what was recorded, or None if it was not."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.keys.paused_queues, queue)
            pipe.hdel(self.keys.paused_queues, queue)
            raw, _ = await pipe.execute()
        return _PAUSED.decode(raw) if raw else None

    async def add_paused_worker(self, queue: str, hostname: str) -> None:
        """A worker that came online consuming a paused queue had it cancelled: resume must add
        it back there too. WATCHed, so a resume in between is not undone by this write."""
        key = self.keys.paused_queues
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, queue)
                    if not raw:
                        return
                    paused = _PAUSED.decode(raw)
                    if hostname in paused.workers:
                        return
                    updated = msgspec.structs.replace(paused, workers=[*paused.workers, hostname])
                    pipe.multi()
                    pipe.hset(key, queue, _ENCODER.encode(updated))
                    await pipe.execute()
                    return
                except WatchError:
                    continue
