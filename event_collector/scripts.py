"""Calling one Lua script for several partitions at once, on one Redis or a Redis Cluster.

On one Redis the calls go in one pipeline: one round trip. On a cluster each partition may live
on another node, and redis-py's cluster pipeline refuses ``evalsha()`` (its
``PIPELINE_BLOCKED_COMMANDS``) because it cannot load a script a node lacks. So the calls go as
raw ``EVALSHA`` commands in one cluster pipeline (``connection.NodePipeline``: one pipeline per
node, sent to the nodes at once): one round trip per node instead of one per partition (with 8
partitions on 3 primaries the per-call Python and wake-ups were most of a read's and a batch's
client cost). A node that answers NOSCRIPT (new, flushed, or a replica just promoted) gets the
script loaded on every primary, and the calls it refused are sent once more.
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
    pipe = _evalsha_pipeline(redis, script.sha, calls)
    try:
        return await pipe.execute()  # type: ignore[no-any-return]
    except NoScriptError:
        pass
    # A node without the script (new, flushed, a replica just promoted): load it on every
    # primary and send again only the calls that node refused; the others ran (a script call
    # is not always safe to repeat: the store's would count its events as duplicates)
    done = getattr(pipe, "commands", None)
    await redis.script_load(script.script)  # every primary (redis-py's routing)
    if not done or len(done) != len(calls):
        return await _evalsha_pipeline(redis, script.sha, calls).execute()  # type: ignore[no-any-return]
    refused = [i for i, cmd in enumerate(done) if isinstance(cmd.result, NoScriptError)]
    results = [cmd.result for cmd in done]
    again = await _evalsha_pipeline(redis, script.sha, [calls[i] for i in refused]).execute()
    for i, result in zip(refused, again, strict=True):
        results[i] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def _evalsha_pipeline(
    redis: Any, sha: str, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
) -> Any:
    pipe = redis.pipeline(transaction=False)
    for keys, args in calls:
        pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
    return pipe
