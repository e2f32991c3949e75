"""Calling one Lua script for several partitions at once, on one Redis or a Redis Cluster.

On one Redis the calls go in one pipeline: one round trip. A cluster pipeline refuses EVALSHA
(redis-py's ``PIPELINE_BLOCKED_COMMANDS``), and each partition may live on another node anyway,
so there they run concurrently, each on its own connection (and each loads the script on its
node when that node does not know it yet).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript

from event_collector.connection import is_cluster


async def run_many(
    redis: Any, script: AsyncScript, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
) -> list[Any]:
    """``script(keys, args)`` for each call, replies in the same order."""
    if len(calls) == 1:
        keys, args = calls[0]
        return [await script(keys=keys, args=args)]
    if is_cluster(redis):
        return list(await asyncio.gather(*(script(keys=k, args=a) for k, a in calls)))
    async with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            await script(keys=keys, args=args, client=pipe)
        return await pipe.execute()  # type: ignore[no-any-return]
