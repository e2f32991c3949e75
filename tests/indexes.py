"""What an index holds, for assertions: segmented indexes are not plain sorted sets (keys.py
"Indexes"), so tests read them through ``segments.Indexes`` like the read side does."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from event_collector.connection import AsyncStore, open_async
from event_collector.keys import Keys
from event_collector.segments import Indexes


async def index_entries(redis: AsyncStore, keys: Keys, index: str) -> dict[str, float]:
    """member -> score of every entry of ``index``."""
    return await Indexes(redis, keys).snapshot(index)


def index_entries_sync(url: str, keys: Keys, index: str) -> dict[str, float]:
    """``index_entries`` for tests written with the synchronous client; ``url`` is any store
    URL (a cluster's too)."""

    async def read() -> dict[str, float]:
        redis = open_async(url)
        try:
            return await index_entries(redis, keys, index)
        finally:
            await redis.aclose()

    # in a thread of its own: callers may be inside a running event loop (async tests)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, read()).result()

