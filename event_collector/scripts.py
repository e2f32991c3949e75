"""Calling one Lua script for several partitions at once, on one Redis or a Redis Cluster.

On one Redis the calls go in one pipeline: one round trip. On a cluster each partition may live
on another node, and redis-py's cluster pipeline refuses ``evalsha()`` (its
``PIPELINE_BLOCKED_COMMANDS``) because it cannot load a script a node lacks. So the calls go as
raw ``EVALSHA`` commands in one cluster pipeline, which redis-py splits into one pipeline per
node, sent to the nodes at once: one round trip per node instead of one per partition (with 8
partitions on 3 primaries the per-call Python and wake-ups were most of a read's and a batch's
client cost). A node that answers NOSCRIPT (new, flushed, or a replica just promoted) gets the
script loaded on every primary and the calls are sent once more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from event_collector.connection import is_cluster


async def run_many(
    redis: Any, script: AsyncScript, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
) -> list[Any]:
    """``script(keys, args)`` for each call, replies in the same order."""
    if len(calls) == 1:
        keys, args = calls[0]
        return [await script(keys=keys, args=args)]
    if is_cluster(redis):
        return await _cluster_evalsha(redis, script, calls)
    async with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            await script(keys=keys, args=args, client=pipe)
        return await pipe.execute()  # type: ignore[no-any-return]


async def _cluster_evalsha(
    redis: Any, script: AsyncScript, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
) -> list[Any]:
    # raise_on_error stays on: redis-py then also retries a lost node or a moved slot with a
    # fresh topology (its pipeline retry only sees errors that are raised)
    try:
        return await _evalsha_pipeline(redis, script.sha, calls)
    except NoScriptError:
        await redis.script_load(script.script)  # every primary (redis-py's routing)
        return await _evalsha_pipeline(redis, script.sha, calls)


async def _evalsha_pipeline(
    redis: Any, sha: str, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        return await pipe.execute()  # type: ignore[no-any-return]
