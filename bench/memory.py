"""Redis bytes per finished task: ``used_memory`` growth of a fresh store over N tasks (stream,
task records, indexes, counters: everything the write path keeps), with where the bytes go, and
the CPU the fill cost (the store redis-server's and the filling process's).

Each checkout measured fills its own fresh ``redis-server`` through its own write path
(``bench.fill.Filler``: real Celery wire events -> normalize -> ``EventStore.apply``), so
``--peer-root /work/main`` prints the layout before a change beside this checkout's, in the
same run on the same machine:

    .venv/bin/python bench/memory.py --tasks 100000 --peer-root /work/main
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import load_note
from tests.services import REPO_ROOT, RedisServer

# Run inside the measured checkout (its own event_collector and bench.fill): fill, then report
# used_memory growth and MEMORY USAGE summed by key kind (the prefix's first word: task, idx,
# cnt, events, ...). Only names both layouts have are used.
_CHILD = r"""
import asyncio, json, sys, time
from redis.asyncio import Redis
from bench.fill import Filler
from event_collector.keys import Keys

async def redis_cpu(redis):
    info = await redis.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]

async def main(url, tasks, prefix):
    redis = Redis.from_url(url)
    before = int((await redis.info("memory"))["used_memory"])
    cpu_before, client_before = await redis_cpu(redis), time.process_time()
    await Filler(redis, Keys(prefix), tasks, 24.0).fill(tasks, label="memory")
    cpu = {"redis": await redis_cpu(redis) - cpu_before,
           "client": time.process_time() - client_before}
    after = int((await redis.info("memory"))["used_memory"])
    kinds = {}
    async for key in redis.scan_iter(match=prefix + "*", count=1000):
        kind = key.decode()[len(prefix):].split(":", 1)[0]
        size = await redis.memory_usage(key, samples=0) or 0
        count, total = kinds.get(kind, (0, 0))
        kinds[kind] = (count + 1, total + size)
    await redis.aclose()
    print(json.dumps({"growth": after - before, "kinds": kinds, "cpu": cpu}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def measure(root: Path, tasks: int, prefix: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="tp-memory-") as workdir:
        server = RedisServer(Path(workdir))
        server.start()
        try:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, server.url(0), str(tasks), prefix],
                cwd=root, env={"PYTHONPATH": str(root)}, check=True, capture_output=True,
                text=True,
            )
        finally:
            server.stop()
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(label: str, tasks: int, result: dict) -> None:
    cpu = result["cpu"]
    print(f"\n{label}: {result['growth'] / tasks:,.0f} B per task (used_memory growth over"
          f" {tasks:,} tasks); write path CPU: redis {cpu['redis']:.2f} s, client"
          f" {cpu['client']:.2f} s")
    print(f"  {'key kind':<10} {'keys':>9} {'B/task':>8}   (MEMORY USAGE, allocator overhead"
          " aside)")
    for kind, (count, total) in sorted(result["kinds"].items(), key=lambda kv: -kv[1][1]):
        print(f"  {kind:<10} {count:>9,} {total / tasks:>8,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--prefix", default="tp:")
    parser.add_argument("--peer-root", type=Path,
                        help="another checkout (e.g. /work/main) measured the same way")
    args = parser.parse_args(argv)
    print(f"# {load_note()}")
    roots = [("this checkout", REPO_ROOT)]
    if args.peer_root:
        roots.append((f"peer ({args.peer_root})", args.peer_root.resolve()))
    results = {}
    for label, root in roots:
        results[label] = measure(root, args.tasks, args.prefix)
        report(label, args.tasks, results[label])
    if args.peer_root:
        ours, peer = (r["growth"] / args.tasks for r in results.values())
        print(f"\nB per task: this checkout {ours:,.0f}, peer {peer:,.0f}: {ours / peer:.2f}x")
        ours, peer = (r["cpu"]["redis"] + r["cpu"]["client"] for r in results.values())
        print(f"write path CPU (redis + client): this checkout {ours:.2f} s, peer {peer:.2f} s:"
              f" {ours / peer:.2f}x (load-sensitive: rerun on a quiet box)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
