"""The bench scripts still run end to end in their tiniest mode, so they cannot rot.

No timing is asserted here: on a shared 2-core machine timings are noise. Each script must exit 0
and print its verdict table; Flower is measured only when its bench venv already exists (creating
it needs the package index).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.harness import flower_available
from tests.services import REPO_ROOT

pytestmark = pytest.mark.slow


def run_script(*argv: str, timeout: float = 240) -> str:
    done = subprocess.run(
        [sys.executable, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_collector_bench_prints_its_verdict_table() -> None:
    flower = [] if flower_available() else ["--skip-flower"]
    out = run_script("bench/collector_vs_flower.py", "--sizes", "100,200", "--burst-tasks", "200",
                     "--lag-tasks", "50", "--lag-rate", "100", *flower)
    assert "== collector: taskpulse vs Flower" in out
    assert "sustained events/s" in out
    assert "burst 200 tasks: events lost" in out
    for row in ("lag task visible p99 ms", "lag final state visible p99 ms"):
        ours = next(line for line in out.splitlines() if line.startswith(row)).split("|")[1]
        assert ours.strip() != "nan", f"the lag probe saw no task: {row}"


def test_overload_bench_prints_its_verdict_table() -> None:
    flower = [] if flower_available() else ["--skip-flower"]
    for publisher in ("celery", "wire"):
        out = run_script("bench/overload.py", "--tasks", "200", "--rate", "2000", "--publisher",
                         publisher, "--idle", "3", *flower)
        assert "== overload: 200 tasks at 2,000 events/s" in out
        assert "events lost of 800" in out
        ours = next(line for line in out.splitlines() if line.startswith("events lost of"))
        assert ours.split("|")[1].strip() == "0.00"


def test_api_bench_prints_its_verdict_table() -> None:
    out = run_script("bench/api_vs_celery.py", "--enqueue", "200", "--batch-size", "20",
                     "--tasks", "200", "--queries", "20")
    assert "== API: taskpulse vs raw Celery" in out
    assert "enqueue one/request: tasks per CPU-s" in out
    assert "GET /tasks/{id} p99 ms @ 200" in out


def test_sse_fanout_bench_prints_its_verdict_table() -> None:
    out = run_script("bench/sse_fanout.py", "--streams", "5", "--requests", "20")
    assert "== SSE fan-out, taskpulse: 5 open streams vs none ==" in out
    assert "GET /stats p99 ms" in out
    delivered = next(line for line in out.splitlines() if line.startswith("events delivered"))
    assert delivered.split("|")[1].strip() == "100"


def test_publisher_reports_what_it_published(tmp_path) -> None:
    from tests.services import RedisServer

    server = RedisServer(tmp_path)
    server.start()
    try:
        out = run_script("bench/publisher.py", "--url", server.url(0), "--tasks", "10",
                         "--rate", "0", "--multi-size", "4")
    finally:
        server.stop()
    # 10 tasks: 10 task-sent messages + 3 task.multi per group of 4 (groups 4, 4, 2) = 19
    assert '"events": 40' in out
    assert '"messages": 19' in out


def test_tokens_bench_prints_its_verdict_table() -> None:
    out = run_script("bench/tokens.py", "--sizes", "3,50", "--auth-calls", "20",
                     "--create-calls", "2", "--rounds", "1")
    assert "== token store: SQLite (taskpulse) vs the JSON file" in out
    assert "authenticate() @ 50 tokens" in out
    assert "create() @ 50 tokens" in out


def test_ui_bench_prints_its_verdict_table() -> None:
    flower = [] if flower_available() else ["--skip-flower"]
    out = run_script("bench/ui.py", "--tasks", "500", "--flower-tasks", "200", "--runs", "2",
                     "--filter-runs", "2", "--live-seconds", "2", "--live-rate", "100", *flower)
    assert "== web console: taskpulse vs Flower 2.2 tasks page" in out
    assert "tasks page first render p95 ms" in out
    received = next(line for line in out.splitlines() if line.startswith("live: events received"))
    assert received.split("|")[1].strip() not in ("0", "0.00", "n/a"), "the live page saw nothing"


def test_partitions_bench_prints_its_verdict_table() -> None:
    out = run_script("bench/partitions.py", "--fold-tasks", "200", "--read-tasks", "300",
                     "--queries", "10", "--warmup", "2", "--repartition")
    assert ("== 8 partitions, 2 collectors, 3-primary cluster (ours) vs 1 partition, 1 collector,"
            " one Redis (peer)") in out
    folded = next(line for line in out.splitlines() if line.startswith("events folded (of"))
    assert folded.rstrip().endswith("PASS")  # every published event folded, in both stores
    assert "repartition 1 -> 8 in place" in out



def test_failures_bench_prints_its_verdict_table() -> None:
    out = run_script("bench/failures.py", "--tasks", "400", "--groups", "10", "--rounds", "2",
                     "--queries", "10")
    assert "== failures: grouping, search and bulk dry runs" in out
    assert "bytes per failed task: MEMORY USAGE" in out
    assert "bulk dry run p99 ms (400 match)" in out

def test_memory_bench_prints_bytes_per_task_beside_the_peers() -> None:
    out = run_script("bench/memory.py", "--tasks", "200", "--peer-root", str(REPO_ROOT))
    assert "this checkout:" in out
    assert "B per task: this checkout" in out
    for kind in ("task", "idx", "events", "cnt"):
        assert any(line.split()[:1] == [kind] for line in out.splitlines()), kind


def test_control_bench_prints_its_verdict_table() -> None:
    out = run_script("bench/control.py", "--rounds", "2")
    assert "== control: taskpulse API vs raw Celery remote control" in out
    assert "pool change, every worker (*): ms p50" in out
