"""The token store: SQLite (``producer_api.auth``) vs the JSON file it replaced, same run.

The old store is the JSON ``TokenStore`` as last committed (``--baseline-ref``), loaded from git
into a temporary module. Both stores are filled to each size the same way — a JSON tokens file of
N entries, which the old store reads and the new one imports — then timed:

- ``authenticate()``: the call every API request makes on the event loop. A valid token (the last
  one created) and an unknown one alternate; per-call cost, median of ``--rounds`` rounds;
- ``create()``: ``--create-calls`` tokens per round (N grows by at most a few hundred), per call,
  median of the rounds: the old store rewrites
  the whole file per change, the new one inserts a row in a transaction and fsyncs it
  (``synchronous=FULL``; the old store never fsynced, so at 10 tokens it is the faster one).

    .venv/bin/python bench/tokens.py                 # sizes 10 and 5000
    .venv/bin/python bench/tokens.py --sizes 10,50000
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.harness import Row, progress
from producer_api.auth import TokenStore, hash_token

# The last commit whose producer_api/auth.py is the JSON-file store.
BASELINE_REF = "5c18794"


def baseline_module(ref: str, workdir: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{ref}:producer_api/auth.py"], cwd=harness.REPO_ROOT,
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = workdir / "json_token_store.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("json_token_store", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # msgspec resolves the Structs' annotations through it
    spec.loader.exec_module(module)
    return module


def json_tokens_file(path: Path, count: int) -> str:
    """A JSON tokens file of ``count`` entries; returns the secret of the last one."""
    entries = [
        {"id": f"{i:08x}", "name": f"bench-{i}", "role": "viewer",
         "sha256": hash_token(f"tp_bench-{i}"), "created": 1_700_000_000.0 + i}
        for i in range(count)
    ]  # fmt: skip
    path.write_text(json.dumps({"tokens": entries}))
    return f"tp_bench-{count - 1}"


def per_call(fn: Callable[[], Any], calls: int, rounds: int) -> float:
    """Median seconds per call over ``rounds`` rounds of ``calls`` calls, after one round of
    warm-up (statement cache, page cache)."""
    samples = []
    for _ in range(rounds + 1):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - started) / calls)
    return statistics.median(samples[1:])


def measure(store: Any, secret: str, args: argparse.Namespace) -> dict[str, float]:
    assert store.authenticate(secret) is not None, "the bench token does not authenticate"
    tokens = itertools.cycle((secret, "tp_unknown-token"))
    auth = per_call(lambda: store.authenticate(next(tokens)), args.auth_calls, args.rounds)
    made: list[Any] = []
    create = per_call(lambda: made.append(store.create("bench-extra", "viewer")[0]),
                      args.create_calls, args.rounds)  # fmt: skip
    for entry in made:  # back to N tokens
        store.revoke(entry.id)
    return {"authenticate_us": auth * 1e6, "create_ms": create * 1e3}


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"args": vars(args), "load_start": harness.load_note(),
                               "json": {}, "sqlite": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tp-bench-tokens-", dir=harness.BENCH_DIR) as tmp:
        workdir = Path(tmp)
        old = baseline_module(args.baseline_ref, workdir)
        for size in args.sizes:
            progress(f"{size:,} tokens ({harness.load_note()})")
            old_path, new_path = workdir / f"old-{size}.json", workdir / f"new-{size}.json"
            secret = json_tokens_file(old_path, size)
            json_tokens_file(new_path, size)
            results["json"][size] = measure(old.TokenStore(old_path), secret, args)
            results["sqlite"][size] = measure(TokenStore(new_path), secret, args)
    results["load_end"] = harness.load_note()
    return results


def rows_for(results: dict[str, Any], sizes: list[int]) -> list[Row]:
    """Targets at the largest size: cheaper than the JSON file there, and ``authenticate()``
    flat (a create's cost is mostly its fsync, which swings with the disk's other load)."""
    new, old = results["sqlite"], results["json"]
    small, large = min(sizes), max(sizes)
    rows = []
    for metric, unit in (("authenticate_us", " us"), ("create_ms", " ms")):
        label = metric.split("_")[0] + "()"
        for size in sizes:
            ours, peer = new[size][metric], old[size][metric]
            target, passed = "", None
            if size == large and size != small:
                target, passed = "< JSON file", ours < peer
                if metric == "authenticate_us":
                    target += f", <= 2x @ {small:,}"
                    passed = passed and ours <= 2 * new[small][metric]
            rows.append(Row(f"{label} @ {size:,} tokens", ours, peer, unit=unit, better="lower",
                            target=target, passed=passed))  # fmt: skip
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="10,5000", help="token counts, comma-separated")
    parser.add_argument("--auth-calls", type=int, default=2000, help="authenticate() per round")
    parser.add_argument("--create-calls", type=int, default=20, help="create+revoke per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-ref", default=BASELINE_REF,
                        help="git ref whose producer_api/auth.py is the JSON store")
    args = parser.parse_args(argv)
    args.sizes = sorted({int(s) for s in args.sizes.split(",")})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    rows = rows_for(results, args.sizes)
    results["rows"] = harness.rows_json(rows)
    harness.print_table("token store: SQLite (taskpulse) vs the JSON file", rows,
                        peer="JSON file")  # fmt: skip
    print(f"\n{results['load_start']} at start, {results['load_end']} at end")
    print(f"results: {harness.write_results('tokens', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
