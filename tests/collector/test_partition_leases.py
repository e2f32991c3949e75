"""Collectors sharing a partitioned store: each applies the partitions it leases, a killed one's
partitions are taken over and nothing is lost or counted twice (real redis-server, collector
processes, events through Celery's own dispatcher on the Redis fanout)."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from event_collector.keys import Keys
from tests.collector.conftest import (
    STORE_DB,
    collector_env,
    http_get,
    metric_sum,
    start_collector,
)
from tests.collector.test_collector_faults import Publisher
from tests.collector.test_worker_ground_truth import (
    EXPECTED_KINDS,
    FINAL_STATE,
    METRIC_FOR_KIND,
    NAME,
)
from tests.services import RedisServer, ServiceProcess, celery_worker, wait_until

PARTITIONS = 8
KEYS = Keys.layout("tp:", partitions=PARTITIONS)
KINDS = ("SENT", "RECEIVED", "STARTED", "SUCCESS")


def partitioned_env(service_env: dict[str, str], collector_id: str, **extra: str
                    ) -> dict[str, str]:
    return collector_env(
        service_env, TASKPULSE_PARTITIONS=str(PARTITIONS), TASKPULSE_COLLECTOR_ID=collector_id,
        TASKPULSE_PARTITION_LEASE_SECONDS="1.5", **extra,
    )


def counters(client: Any) -> dict[str, int]:
    """``cnt:total`` summed over the partitions."""
    total: dict[str, int] = {}
    for keys in KEYS.each_partition():
        for field, value in client.hgetall(keys.counters_total).items():
            total[field.decode()] = total.get(field.decode(), 0) + int(value)
    return total


def holders(client: Any) -> list[str | None]:
    return [v.decode() if v else None
            for v in (client.get(KEYS.lease(p)) for p in range(PARTITIONS))]


def states(client: Any, ids: list[str]) -> set[str | None]:
    return {s.decode() if s else None
            for s in (client.hget(KEYS.task(task_id), "state") for task_id in ids)}


def stream_entries(client: Any) -> int:
    return sum(client.xlen(stream) for stream in KEYS.streams)


def split_evenly(client: Any) -> bool:
    return sorted(map(str, holders(client))) == ["c-one"] * 4 + ["c-two"] * 4


def start_two(service_env: dict[str, str], tmp_path: Path, **extra: str
              ) -> tuple[list[dict[str, str]], list[ServiceProcess]]:
    envs = [partitioned_env(service_env, name, **extra) for name in ("c-one", "c-two")]
    procs = [start_collector(env, tmp_path / f"{env['TASKPULSE_COLLECTOR_ID']}.log")
             for env in envs]
    return envs, procs


def test_two_collectors_share_the_partitions_and_their_metrics_sum_exactly(
    clean_redis: RedisServer, service_env: dict[str, str], tmp_path: Path
) -> None:
    envs, procs = start_two(service_env, tmp_path)
    client = clean_redis.client(STORE_DB)
    try:
        wait_until(lambda: split_evenly(client), timeout=20, what="the partitions split 4/4")
        ids = Publisher(clean_redis.url(0)).lifecycle(300)
        wait_until(lambda: counters(client) == {f"demo.test_task|{k}": 300 for k in KINDS},
                   timeout=30, what="every event counted once")
        assert states(client, ids) == {"SUCCESS"}
        assert stream_entries(client) == 1200  # each event appended once

        def succeeded(env: dict[str, str]) -> float:
            return metric_sum(http_get(env, "/metrics")[1], "celery_task_succeeded_total")

        wait_until(lambda: sum(succeeded(env) for env in envs) == 300, timeout=10,
                   what="succeeded summed over both collectors == 300")
        assert all(succeeded(env) > 0 for env in envs)  # both applied their share
        held = [metric_sum(http_get(env, "/metrics")[1], "taskpulse_partitions_held")
                for env in envs]
        assert held == [4, 4]
        # what TaskpulsePartitionsUnheld compares the held ones with
        assert [metric_sum(http_get(env, "/metrics")[1], "taskpulse_partitions")
                for env in envs] == [8, 8]
    finally:
        for proc in procs:
            proc.stop()


def kill_one_mid_run(
    broker_url: str, client: Any, envs: list[dict[str, str]], procs: list[ServiceProcess]
) -> None:
    """Publish 400 tasks while SIGKILLing the second collector; then everything is exact."""
    survivor, victim = procs
    wait_until(lambda: split_evenly(client), timeout=20, what="the partitions split 4/4")
    publisher = Publisher(broker_url)
    ids: list[str] = []
    halfway = threading.Event()

    def publish() -> None:
        for chunk in range(20):
            ids.extend(publisher.lifecycle(20))
            if chunk == 8:
                halfway.set()
            time.sleep(0.1)

    sender = threading.Thread(target=publish)
    sender.start()
    halfway.wait(timeout=30)
    victim.stop(signal.SIGKILL)  # mid-run: its batches in flight and its leases die with it
    sender.join(timeout=60)
    assert len(ids) == 400

    wait_until(lambda: holders(client) == ["c-one"] * PARTITIONS, timeout=15,
               what="the survivor holding every partition")
    wait_until(lambda: counters(client) == {f"demo.test_task|{k}": 400 for k in KINDS},
               timeout=30, what="every event of the run counted exactly once")
    assert states(client, ids) == {"SUCCESS"}
    assert stream_entries(client) == 1600
    # the takeover applied the events that came while nobody held the victim's partitions
    takeover = [ln for ln in survivor.log().splitlines() if "took partitions" in ln][-1]
    assert int(takeover.split("replaying ")[1].split()[0]) > 0, takeover
    health = http_get(envs[0], "/health")[1]
    assert '"held":[0,1,2,3,4,5,6,7]' in health.replace(" ", "")


def test_a_killed_collectors_partitions_are_taken_over_and_nothing_is_lost(
    clean_redis: RedisServer, service_env: dict[str, str], tmp_path: Path
) -> None:
    envs, procs = start_two(service_env, tmp_path)
    try:
        kill_one_mid_run(clean_redis.url(0), clean_redis.client(STORE_DB), envs, procs)
    finally:
        for proc in procs:
            proc.stop()


def test_a_real_worker_over_two_collectors_and_eight_partitions_matches_ground_truth(
    clean_redis: RedisServer, service_env: dict[str, str], tmp_path: Path
) -> None:
    """Tasks with known outcomes (success, failure, retry then success) run by a real Celery
    worker: every task in its true state, counters and both collectors' metrics summed exact."""
    from worker import create_app, load_settings

    env = {**service_env, "TASKPULSE_RETRY_BACKOFF": "1"}
    envs, procs = start_two(env, tmp_path)
    worker = celery_worker(env, tmp_path / "worker.log")
    client = clean_redis.client(STORE_DB)
    try:
        wait_until(lambda: split_evenly(client), timeout=20, what="the partitions split 4/4")
        app = create_app(load_settings(env))
        plan = {"SUCCESS": ({"message": "ok"}, 12), "FAILURE": ({"fail": True}, 4),
                "RETRY_SUCCESS": ({"fail_times": 1}, 4)}
        outcomes = {
            app.send_task(NAME, kwargs=kwargs, task_id=str(uuid.uuid4())).id: outcome
            for outcome, (kwargs, count) in plan.items() for _ in range(count)
        }

        def final() -> bool:
            return all(client.hget(KEYS.task(task_id), "state") == FINAL_STATE[o].encode()
                       for task_id, o in outcomes.items())

        wait_until(final, timeout=60, what="every task in its final state")
        expected: Counter[str] = Counter()
        for outcome in outcomes.values():
            expected.update(EXPECTED_KINDS[outcome])
        wanted = {f"{NAME}|{kind}": n for kind, n in expected.items()}
        wait_until(lambda: counters(client) == wanted, timeout=20, what="exact counters")

        def metrics_sum() -> dict[str, float]:
            texts = [http_get(e, "/metrics")[1] for e in envs]
            return {kind: sum(metric_sum(t, METRIC_FOR_KIND[kind], name=NAME) for t in texts)
                    for kind in expected}

        wait_until(lambda: metrics_sum() == dict(expected), timeout=20,
                   what="metrics summed over the collectors == ground truth")
        assert client.zcard(KEYS.workers) == 1  # the worker's own events, in {g}
    finally:
        worker.stop()
        for proc in procs:
            proc.stop()
