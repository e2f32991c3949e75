"""The replay window keeps the events of partitions a collector does not hold undecoded
(``PartitionLeases.sift``) and decodes them on takeover into exactly the events a full decode
gives (real redis-server behind the leases; bodies in Celery's wire shape)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis

from event_collector.keys import Keys
from event_collector.leases import PartitionLeases
from event_collector.normalize import body_events
from tests.collector.conftest import STORE_DB, run
from tests.services import RedisServer

KEYS = Keys.layout("tp:", partitions=8)


def wire_event(kind: str, task_id: str, clock: int) -> dict[str, Any]:
    return {"type": f"task-{kind}", "uuid": task_id, "hostname": "w1@box", "pid": 7,
            "clock": clock, "timestamp": time.time(), "utcoffset": 0, "name": "demo.add"}


def ids_in(partition_wanted: set[int], count: int, *, inside: bool) -> list[str]:
    found, n = [], 0
    while len(found) < count:
        task_id = f"task-{n}"
        n += 1
        if (KEYS.partition_of(task_id) in partition_wanted) == inside:
            found.append(task_id)
    return found


def test_sift_sets_aside_unheld_events_raw_and_takeover_decodes_them(
    clean_redis: RedisServer,
) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(clean_redis.url(STORE_DB))
        try:
            leases = PartitionLeases(redis, KEYS, "c1")
            leases.held = {0, 1, 2, 3}
            mine = ids_in(leases.held, 3, inside=True)
            theirs = ids_in(leases.held, 5, inside=False)
            # a task.multi body mixing both, one body only of theirs, one only of mine
            mixed = [wire_event("started", t, i) for i, t in enumerate([*mine[:2], *theirs[:3]])]
            only_theirs = [wire_event("succeeded", t, 9) for t in theirs[3:]]
            only_mine = wire_event("received", mine[2], 11)
            bodies = [orjson.dumps(b) for b in (mixed, only_theirs, only_mine)]

            kept = [leases.sift(b) for b in bodies]
            assert kept[1] is None
            assert kept[2] == bodies[2]
            assert kept[0] is not None
            assert body_events(kept[0]) == body_events(orjson.dumps(mixed[:2]))
            assert leases.waiting == 5

            # worker events and bodies the fast path does not vouch for go through whole
            worker = orjson.dumps({"type": "worker-heartbeat", "hostname": "w1@box"})
            assert leases.sift(worker) == worker
            assert leases.sift(b"not json") == b"not json"

            # taking over the partitions of one event of each body: exactly their events, as a
            # full decode of the bodies makes them, in arrival order
            taken = {KEYS.partition_of(theirs[0]), KEYS.partition_of(theirs[3])}
            everything = [e for b in bodies for e in body_events(b)]
            expected = [e for e in everything
                        if e.uuid in theirs and KEYS.partition_of(e.uuid) in taken]
            assert leases._take_from_window(taken) == expected
            assert leases.waiting == 5 - len(expected)
        finally:
            await redis.aclose()

    run(scenario())
