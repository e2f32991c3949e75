"""The web console's tasks page vs Flower 2.2's, in the same real browser, in the same run.

taskpulse: ``--tasks`` finished tasks (default 1,000,000) are filled into a store redis-server
through the collector's real Lua (bench/fill.py), and the API serves the console from it.
Flower: ``--flower-tasks`` (default 100,000) task lifecycles are published on its broker and
folded into its in-memory state (closed loop, so it is never disconnected), then its tasks page
is opened. Both pages are driven by Debian's chromium through Playwright.

Figures (p50/p95 over ``--runs`` loads and ``--filter-runs`` filter changes):
- first render: navigation start -> the first page of rows is in the DOM, warm HTTP cache (a
  person who uses it daily); beside it the API's own time for that list (Server-Timing) and,
  for Flower, the time to first byte of its data request;
- filter change: the filter is changed -> the new rows are in the DOM (Flower: DataTables'
  ``search().draw()`` -> its draw event, skipping its 300 ms typing delay);
- transferred bytes of a first load with a cold cache (navigation + every resource);
- responsiveness under load (taskpulse only: Flower's page does not stream): the tasks page
  open while ``--live-rate`` events/s reach it over SSE for ``--live-seconds``; every long task
  (PerformanceObserver 'longtask') is recorded.

    .venv/bin/python bench/ui.py                                # the documented sizes (~8 min)
    .venv/bin/python bench/ui.py --tasks 100000 --flower-tasks 20000 --live-seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import redis
from redis.asyncio import Redis as AsyncRedis

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from bench import harness
from bench.consumers import wait_subscribed
from bench.fill import Filler
from bench.harness import Row, percentile, progress
from bench.publisher import TASK_ROUTES, EventSource, db_of, publish
from event_collector.keys import Keys
from producer_api.auth import TokenStore
from tests.services import ServiceProcess, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Bytes a first load moved: the document and every resource, except the never-ending SSE stream.
TRANSFERRED_JS = """() => performance.getEntriesByType('navigation')
    .concat(performance.getEntriesByType('resource'))
    .filter(e => !e.name.includes('/api/v1/events'))
    .reduce((sum, e) => sum + e.transferSize, 0)"""
LONGTASKS_JS = """window.__longtasks = [];
new PerformanceObserver(list => {
  for (const e of list.getEntries()) window.__longtasks.push(e.duration);
}).observe({type: 'longtask', buffered: true});"""


# ---------------------------------------------------------------- taskpulse


def start_api(store_url: str, broker_url: str, workdir: Path) -> tuple[ServiceProcess, str, str]:
    tokens = workdir / "tokens.json"
    _, token = TokenStore(tokens).create("bench", "viewer")
    port = free_port()
    env = {
        **taskpulse_env_for(store_url, broker_url),
        "TASKPULSE_API_TOKENS_FILE": str(tokens), "TASKPULSE_API_PORT": str(port),
        "TASKPULSE_API_HOST": "127.0.0.1", "TASKPULSE_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    proc = ServiceProcess([sys.executable, "-m", "producer_api"], env, workdir / "api.log")
    base = f"http://127.0.0.1:{port}"
    harness.ensure_ready(proc, lambda: wait_until(lambda: _answers(base), timeout=60,
                                                  what="the API"))
    return proc, base, token


def taskpulse_env_for(store_url: str, broker_url: str) -> dict[str, str]:
    return {**os.environ, "TASKPULSE_REDIS_URL": store_url, "TASKPULSE_BROKER_URL": broker_url,
            "TASKPULSE_RESULT_BACKEND": broker_url, "PYTHONUNBUFFERED": "1"}


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def sign_in(context: BrowserContext, token: str) -> Page:
    page = context.new_page()
    page.goto("/ui/login?next=/ui/tasks")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/tasks")
    return page


def rendered(page: Page, kind: str, after_seq: int = 0) -> dict[str, float]:
    """Wait for the tasks page to report a render of ``kind`` newer than ``after_seq``."""
    page.wait_for_function(
        "([kind, seq]) => { const d = document.querySelector('#app').dataset;"
        " return d.renderKind === kind && Number(d.renderSeq) > seq; }",
        arg=[kind, after_seq], timeout=60_000,
    )
    data = page.evaluate("({...document.querySelector('#app').dataset})")
    return {"render_ms": float(data["renderMs"]), "at_ms": float(data["renderedAt"]),
            "api_ms": float(data["apiMs"] or "nan"), "seq": int(data["renderSeq"])}


def console_first_loads(context: BrowserContext, runs: int) -> dict[str, list[float]]:
    loads: dict[str, list[float]] = {"first_render_ms": [], "api_ms": []}
    for _ in range(runs):
        page = context.new_page()
        page.goto("/ui/tasks")
        seen = rendered(page, "first")
        loads["first_render_ms"].append(seen["at_ms"])  # since navigation start
        loads["api_ms"].append(seen["api_ms"])
        page.close()
    return loads


def filter_values(page: Page) -> list[tuple[str, str]]:
    """A cycle of filter changes a person makes: by task name, by queue, by state."""
    page.wait_for_function("document.querySelectorAll('#task-names option').length > 0")
    names = page.eval_on_selector_all("#task-names option", "os => os.map(o => o.value)")
    queues = page.eval_on_selector_all("select[name=queue] option",
                                       "os => os.map(o => o.value).filter(Boolean)")
    return [("name", n) for n in names[:4]] + [("queue", q) for q in queues[:2]] + [
        ("state", "SUCCESS")]


def console_filter_changes(page: Page, runs: int) -> dict[str, list[float]]:
    """Each change starts from the unfiltered list and sets one filter (name, queue or state)."""
    changes: dict[str, list[float]] = {"filter_ms": [], "filter_api_ms": []}
    seq = rendered(page, "first")["seq"]
    cycle = filter_values(page)
    for i in range(runs):
        if "?" in page.url:  # back to every task, not measured
            page.click("a.clear")
            seq = rendered(page, "filter", seq)["seq"]
        field, value = cycle[i % len(cycle)]
        if field == "name":
            page.fill("input[name=name]", value)
            page.press("input[name=name]", "Enter")
        else:
            page.select_option(f"select[name={field}]", value)
        seen = rendered(page, "filter", seq)
        seq = seen["seq"]
        changes["filter_ms"].append(seen["render_ms"])
        changes["filter_api_ms"].append(seen["api_ms"])
    return changes


def cold_bytes(browser: Browser, base: str, cookies: list, path: str) -> int:
    context = browser.new_context(base_url=base)
    try:
        context.add_cookies(cookies)
        page = context.new_page()
        page.goto(path)
        if path.startswith("/ui/"):
            rendered(page, "first")
        else:
            page.wait_for_function(FLOWER_ROWS_JS, timeout=120_000)
        page.wait_for_timeout(300)  # late resources (fonts, source maps) count too
        return int(page.evaluate(TRANSFERRED_JS))
    finally:
        context.close()


class LiveLoad:
    """Events at ``rate``/s into the store's stream (as the collector writes them), in a thread."""

    def __init__(self, store_url: str, rate: float, seconds: float) -> None:
        self.store_url, self.rate, self.seconds = store_url, rate, seconds
        self.events = 0
        self.elapsed = 0.0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        client = AsyncRedis.from_url(self.store_url)
        tasks_per_tick, tick = max(1, int(self.rate / 4 / 10)), 0.1  # 4 events per task
        filler = Filler(client, Keys(), int(self.rate / 4 * self.seconds) + 1, self.seconds / 3600)
        started = time.perf_counter()
        try:
            while time.perf_counter() - started < self.seconds:
                report = await filler.fill(tasks_per_tick, batch_tasks=tasks_per_tick)
                self.events += report.events
                ahead = started + self.events / self.rate - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(min(ahead, tick))
            self.elapsed = time.perf_counter() - started
        finally:
            await client.aclose()


def console_under_live_load(context: BrowserContext, store_url: str, rate: float,
                            seconds: float) -> dict[str, float]:
    page = context.new_page()
    page.add_init_script(LONGTASKS_JS)
    page.goto("/ui/tasks")
    rendered(page, "first")
    page.wait_for_selector(".live-status[data-status=live]")
    page.evaluate("window.__longtasks = []")
    load = LiveLoad(store_url, rate, seconds)
    load.thread.start()
    load.thread.join(seconds + 60)
    page.wait_for_timeout(1000)  # the last flushes
    longtasks = page.evaluate("window.__longtasks")
    received = int(page.get_attribute(".live-status", "data-received") or 0)
    rows = page.locator("table.tasks tbody tr[data-task-id]").count()
    page.close()
    return {
        "events_sent": load.events, "events_per_s": load.events / max(load.elapsed, 1e-9),
        "events_received_by_page": received, "rows_shown": rows,
        "longtasks": len(longtasks), "longtasks_over_100ms": sum(d > 100 for d in longtasks),
        "longest_task_ms": max(longtasks, default=0.0),
    }


def measure_taskpulse(browser: Browser, workdir: Path, args: argparse.Namespace) -> dict:
    store = harness.start_redis(workdir, "store")
    broker = harness.start_redis(workdir, "api-broker")
    api = None
    try:
        progress(f"filling {args.tasks:,} tasks into the store")
        report = outside_playwright_loop(lambda: _fill(store.url(0), args.tasks))
        progress(f"filled in {report.seconds:.0f}s; starting the API")
        api, base, token = start_api(store.url(0), broker.url(0), workdir)
        context = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900})
        page = sign_in(context, token)
        cookies = context.cookies()
        progress("console: first loads")
        result: dict = {"tasks": args.tasks, **console_first_loads(context, args.runs)}
        progress("console: filter changes")
        result.update(console_filter_changes(page, args.filter_runs))
        result["first_load_bytes"] = cold_bytes(browser, base, cookies, "/ui/tasks")
        progress(f"console: {args.live_rate:.0f} events/s for {args.live_seconds:.0f}s")
        result["live"] = console_under_live_load(context, store.url(0), args.live_rate,
                                                 args.live_seconds)
        context.close()
        return result
    finally:
        if api is not None:
            api.stop()
        broker.stop()
        store.stop()


def outside_playwright_loop(make):  # type: ignore[no-untyped-def]
    """Run a coroutine to completion in a thread: Playwright's sync API owns this one's loop."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(asyncio.run(make())))
    worker.start()
    worker.join()
    if not result:
        raise RuntimeError("the coroutine failed (see its traceback above)")
    return result[0]


async def _fill(url: str, tasks: int):  # type: ignore[no-untyped-def]
    client = AsyncRedis.from_url(url)
    try:
        return await Filler(client, Keys(), tasks, span_hours=24).fill(tasks)
    finally:
        await client.aclose()


# ---------------------------------------------------------------- Flower


def feed_flower(broker_client: redis.Redis, db: int, flower: harness.Flower, tasks: int,
                window: int = 20_000, chunk: int = 2_000) -> int:
    """Publish ``tasks`` lifecycles, never more than ``window`` events ahead of Flower."""
    source, published = EventSource(db), 0
    while source.tasks < tasks:
        messages = source.encode(min(chunk, tasks - source.tasks))
        while published - flower.task_events() > window:
            time.sleep(0.1)
        published += publish(broker_client, messages).events
    harness.wait_for_count(flower.task_events, published, time.perf_counter(), idle_seconds=10)
    return published


FLOWER_ROWS_JS = """() => { const rows = document.querySelectorAll('#tasks-table tbody tr');
  return rows.length > 1 || (rows.length === 1 && !rows[0].querySelector('.dataTables_empty'))
    ? performance.now() : false; }"""
FLOWER_TTFB_JS = """() => { const e = performance.getEntriesByType('resource')
    .filter(r => r.name.includes('/tasks/datatable')).pop();
  return e ? e.responseStart - e.requestStart : null; }"""
FLOWER_FILTER_JS = """(text) => new Promise(resolve => {
  const table = $('#tasks-table').DataTable();
  const started = performance.now();
  $('#tasks-table').one('draw.dt', () => resolve(performance.now() - started));
  table.search(text).draw();
})"""


def measure_flower(browser: Browser, workdir: Path, args: argparse.Namespace) -> dict:
    broker = harness.start_redis(workdir, "flower-broker")
    flower = None
    try:
        flower = harness.Flower(broker.url(0), workdir / "flower.log", args.flower_tasks + 1000)
        harness.ensure_ready(flower.proc, lambda: wait_subscribed(broker))
        progress(f"feeding {args.flower_tasks:,} tasks to Flower")
        feed_flower(broker.client(), db_of(broker.url(0)), flower, args.flower_tasks)
        base = f"http://127.0.0.1:{flower.port}"
        context = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900})
        # DataTables saves the last search in localStorage (stateSave): every load starts clean.
        context.add_init_script("localStorage.clear()")
        loads: dict[str, list[float]] = {"first_render_ms": [], "api_ms": [], "filter_ms": []}
        progress("Flower: first loads and filter changes")
        names = [f"name:{name}" for name, _ in TASK_ROUTES[:4]]
        filters = [*names, "state:SUCCESS"]
        for i in range(max(args.runs, args.filter_runs)):
            page = context.new_page()
            page.goto("/tasks")
            at = page.wait_for_function(FLOWER_ROWS_JS, timeout=120_000).json_value()
            if i < args.runs:
                loads["first_render_ms"].append(at)
                loads["api_ms"].append(page.evaluate(FLOWER_TTFB_JS) or float("nan"))
            if i < args.filter_runs:
                loads["filter_ms"].append(page.evaluate(FLOWER_FILTER_JS,
                                                        filters[i % len(filters)]))
            page.close()
        loads["first_load_bytes"] = cold_bytes(browser, base, [], "/tasks")
        context.close()
        return {"tasks": args.flower_tasks, **loads}
    finally:
        if flower is not None:
            flower.stop()
        broker.stop()


# ---------------------------------------------------------------- report


def rows_for(ours: dict, peer: dict | None, args: argparse.Namespace) -> list[Row]:
    def pct(side: dict | None, key: str, p: float) -> float | None:
        return percentile(side[key], p) if side and side.get(key) else None

    first95, filter95 = pct(ours, "first_render_ms", 95), pct(ours, "filter_ms", 95)
    live = ours["live"]
    size = f"{args.tasks:,} vs {args.flower_tasks:,} tasks" if peer else f"{args.tasks:,} tasks"
    return [
        Row(f"tasks page first render p50 ms ({size})", pct(ours, "first_render_ms", 50),
            pct(peer, "first_render_ms", 50), better="lower"),
        Row("tasks page first render p95 ms", first95, pct(peer, "first_render_ms", 95),
            "<300", first95 < 300, better="lower"),
        Row("  of which the API's own time p95 ms", pct(ours, "api_ms", 95),
            pct(peer, "api_ms", 95), "(Flower: data request TTFB)", None, better="lower"),
        Row("filter change p50 ms", pct(ours, "filter_ms", 50), pct(peer, "filter_ms", 50),
            better="lower"),
        Row("filter change p95 ms", filter95, pct(peer, "filter_ms", 95), "<150",
            filter95 < 150, better="lower"),
        Row("  of which the API's own time p95 ms", pct(ours, "filter_api_ms", 95), None,
            better="lower"),
        Row("first load transferred KB (cold cache)", ours["first_load_bytes"] / 1024,
            peer["first_load_bytes"] / 1024 if peer else None, "<300",
            ours["first_load_bytes"] < 300 * 1024, better="lower"),
        Row(f"live: events/s delivered for {args.live_seconds:.0f}s", live["events_per_s"], None,
            f">={args.live_rate:.0f}", None),
        Row("live: events received by the page", live["events_received_by_page"], None),
        Row("live: longest task ms", live["longest_task_ms"], None, "<=100",
            live["longest_task_ms"] <= 100, better="lower"),
        Row("live: long tasks over 100 ms", live["longtasks_over_100ms"], None, "0",
            live["longtasks_over_100ms"] == 0, better="lower"),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks in our store")
    parser.add_argument("--flower-tasks", type=int, default=100_000, help="tasks fed to Flower")
    parser.add_argument("--runs", type=int, default=20, help="page loads per side")
    parser.add_argument("--filter-runs", type=int, default=20, help="filter changes per side")
    parser.add_argument("--live-rate", type=float, default=500, help="events/s to the open page")
    parser.add_argument("--live-seconds", type=float, default=30)
    parser.add_argument("--skip-flower", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress(f"start: {harness.load_note()}")
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ours = measure_taskpulse(browser, Path(tmp), args)
            harness.write_results("ui-taskpulse", {"args": vars(args), "taskpulse": ours})
            peer = None
            if args.skip_flower:
                progress("Flower skipped (--skip-flower)")
            elif not harness.flower_available() and not _make_flower_venv():
                progress("Flower skipped: its bench venv could not be created")
            else:
                peer = measure_flower(browser, Path(tmp), args)
        finally:
            browser.close()
    rows = rows_for(ours, peer, args)
    harness.print_table("web console: taskpulse vs Flower 2.2 tasks page", rows, peer="flower")
    print(f"end: {harness.load_note()}")
    path = harness.write_results("ui", {"args": vars(args), "taskpulse": ours, "flower": peer,
                                        "rows": harness.rows_json(rows)})
    print(f"results: {path}")
    return 0


def _make_flower_venv() -> bool:
    try:
        harness.ensure_flower_venv()
    except Exception as exc:  # no package index: say so and measure ours alone
        progress(f"could not create the Flower venv: {exc}")
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
