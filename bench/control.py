"""Worker remote control through the API vs raw Celery remote control, same run, same workers.

Two real workers (``celery -A worker worker``) and a collector on a private redis-server; the
API answers ``POST /api/v1/workers/{hostname}/pool`` (grow by 1, then shrink by 1: the pool
ends as it began). Peer: the same command sent with Celery's own client from Python,
``app.control.pool_grow(n, destination=..., reply=True)``, the way ``celery control`` and
Flower's ``/api/worker/pool/grow`` send it. Timed sequentially, wall clock per command:

- one worker by name: the API's cost on top of the broadcast (HTTP, a thread hop, the audit
  event);
- every worker (``*``): Celery waits out its reply timeout (it cannot know how many will
  answer); the API stops once every worker the store counts alive has answered.

    .venv/bin/python bench/control.py --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
from celery import Celery

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.harness import Row, percentile, progress
from producer_api.auth import TokenStore
from tests.services import (
    RedisServer,
    ServiceProcess,
    celery_worker,
    collector_env,
    start_api,
    start_collector,
    taskpulse_env,
    wait_until,
)

WORKERS = ("bench-a@control", "bench-b@control")
TIMEOUT_SECONDS = 1.0  # both sides: Celery's default reply timeout, the API's default too


def timed(call: Callable[[], object], rounds: int) -> list[float]:
    """Milliseconds per call; each round grows and then shrinks, so one call is half a round."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="grow+shrink pairs per case")
    args = parser.parse_args()
    print(harness.load_note())
    with tempfile.TemporaryDirectory(prefix="tp-bench-control-") as tmp:
        workdir = Path(tmp)
        server = RedisServer(workdir)
        server.start()
        data = workdir / "data"
        data.mkdir()
        tokens = workdir / "tokens.json"
        _, token = TokenStore(tokens).create("bench", "admin")
        env = taskpulse_env(server, data, TASKPULSE_API_TOKENS_FILE=str(tokens),
                            TASKPULSE_API_CONTROL_TIMEOUT=str(TIMEOUT_SECONDS))
        procs: list[ServiceProcess] = []
        celery = Celery(broker=server.url(0), set_as_current=False)
        try:
            procs.append(start_collector(collector_env(env), workdir / "collector.log"))
            for name in WORKERS:
                procs.append(celery_worker(env, workdir / f"{name}.log", concurrency=1,
                                           hostname=name))
            api_proc, base = start_api(env, workdir / "api.log")
            procs.append(api_proc)
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"

            def alive() -> bool:
                found = session.get(f"{base}/api/v1/workers", timeout=10).json()
                return {w["hostname"] for w in found if w["alive"]} >= set(WORKERS)

            wait_until(alive, timeout=30, what="both workers alive in the store")
            rows = []
            for label, host, destination in (("one worker", WORKERS[0], [WORKERS[0]]),
                                             ("every worker (*)", "*", None)):
                def api_round(host: str = host) -> None:
                    for change in ({"grow": 1}, {"shrink": 1}):
                        r = session.post(f"{base}/api/v1/workers/{host}/pool", json=change,
                                         timeout=10)
                        if r.status_code != 200 or r.json()["no_reply"]:
                            raise RuntimeError(f"pool change failed: {r.text}")

                def celery_round(destination: list[str] | None = destination) -> None:
                    for command in (celery.control.pool_grow, celery.control.pool_shrink):
                        replies = command(1, destination=destination, reply=True,
                                          timeout=TIMEOUT_SECONDS)
                        if len(replies) != len(destination or WORKERS):
                            raise RuntimeError(f"missing replies: {replies}")

                progress(f"{label}: {args.rounds} rounds each")
                ours = [ms / 2 for ms in timed(api_round, args.rounds)]
                peer = [ms / 2 for ms in timed(celery_round, args.rounds)]
                for stat, pick in (("p50", statistics.median),
                                   ("p99", lambda v: percentile(v, 99))):
                    rows.append(Row(f"pool change, {label}: ms {stat}", pick(ours), pick(peer),
                                    unit=" ms", better="lower"))
            harness.print_table("control: taskpulse API vs raw Celery remote control", rows,
                                peer="celery control")
            print(harness.load_note())
            path = harness.write_results("control", {"rounds": args.rounds,
                                                     "rows": harness.rows_json(rows)})
            print(f"results: {path}")
        finally:
            celery.close()
            for proc in reversed(procs):
                proc.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
