"""Beat's schedule, read and edited at runtime through celery-redbeat's own entry API.

Beat (``worker.dynamic_schedule``) keeps the schedule in Redis in redbeat's layout; the API edits
it the same way redbeat does — ``RedBeatSchedulerEntry`` on a bare Celery app that knows only the
Redis URL, key prefix and timezone (no task code). Redbeat's client is synchronous, so calls run
in a small thread pool. A running beat picks a change up at its next tick.

Times are computed here, not taken from redbeat, whose ``due_at`` adds the time left until the
next slot to the *last run* (02:54:15 instead of 03:00, earlier at every call). Beat decides from
one instant, its ``last_run_at``: the last run, or when the entry was created or resumed (both
set it so that missed runs are skipped). So ``next_run_at`` is the first crontab slot after that
instant, or that instant plus the interval, in the configured timezone — the same at every call;
a time in the past means beat is late (not running) and sends the entry at its next tick. The
API's ``last_run_at`` is a real run only: absent until one happened, and a resume keeps the
previous run's time in a field of the entry's hash (``RESUMED_FIELD``) that redbeat ignores.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

import msgspec
from celery import Celery
from celery.schedules import ParseException, crontab, schedule
from celery.utils.time import remaining
from redbeat import RedBeatSchedulerEntry
from redbeat.decoder import RedBeatJSONEncoder
from redbeat.schedulers import ensure_conf, get_redis

from event_collector.beat import configure_redbeat
from event_collector.keys import Keys
from producer_api.catalog import ArgumentError, Catalog, check_arguments
from producer_api.errors import Conflict, NotFound, Unprocessable
from producer_api.schedule_schemas import (
    Crontab,
    Interval,
    Schedule,
    ScheduleCreate,
    SchedulePatch,
)

# Celery's crontab arguments, as the Crontab schema names them.
_CRONTAB_FIELDS: Final = tuple(f.name for f in msgspec.structs.fields(Crontab))
# A field of the entry's hash besides redbeat's ``definition`` and ``meta`` (see keys.py).
RESUMED_FIELD: Final = "taskpulse_resumed"


class Resumed(msgspec.Struct, frozen=True):
    """Written when a paused entry is resumed: beat's ``last_run_at`` then says "resumed at",
    not "ran at", until its run count moves past ``total_run_count``."""

    total_run_count: int
    last_run_at: datetime | None


def schedule_app(redis_url: str, keys: Keys, timezone: str, timeout: float) -> Celery:
    app = Celery("taskpulse-schedules", set_as_current=False)
    app.conf.update(timezone=timezone, enable_utc=True)
    configure_redbeat(app, redis_url, keys, timeout)  # as beat finds its entries
    ensure_conf(app)  # redbeat's key helpers read app.redbeat_conf, set up here
    return app


def _crontab(spec: Crontab, app: Celery) -> crontab:
    """A Celery crontab; 422 naming the first field Celery cannot parse."""
    for field in _CRONTAB_FIELDS:
        try:
            crontab(**{field: getattr(spec, field)})
        except (ValueError, TypeError, IndexError, ParseException) as exc:
            raise Unprocessable(
                f"invalid crontab {field} {getattr(spec, field)!r}: {exc}",
                {"field": f"crontab.{field}"},
            ) from None
    try:
        return crontab(**msgspec.structs.asdict(spec), app=app)
    except ValueError as exc:  # fields valid alone but never together, e.g. 31 February
        raise Unprocessable(f"invalid crontab: {exc}", {"field": "crontab.day_of_month"}) from None


def _timing(entry: RedBeatSchedulerEntry) -> dict[str, Any]:
    sched = entry.schedule
    if isinstance(sched, crontab):
        fields = {f: getattr(sched, f"_orig_{f}") for f in _CRONTAB_FIELDS}
        return {"crontab": Crontab(**{k: str(v) for k, v in fields.items()})}
    return {"interval": Interval(every=sched.run_every.total_seconds())}


def next_run(sched: Any, since: datetime) -> datetime:
    """When beat sends an entry whose ``last_run_at`` is ``since``: the first crontab slot after
    it, or ``since`` plus the interval (UTC)."""
    if isinstance(sched, crontab):
        # Celery's own arithmetic (DST included): remaining() is "slot - now", so add now back.
        start, delta, now = sched.remaining_delta(since)
        return now.astimezone(UTC) + remaining(start, delta, now)
    return since.astimezone(UTC) + sched.run_every


def last_run(entry: RedBeatSchedulerEntry, resumed: Resumed | None) -> datetime | None:
    """The time of the entry's last real run, or None if it never ran."""
    if resumed is not None and entry.total_run_count == resumed.total_run_count:
        return resumed.last_run_at  # not run since it was resumed
    return entry.last_run_at if entry.total_run_count else None


def _view(entry: RedBeatSchedulerEntry, resumed: Resumed | None) -> Schedule:
    zone: tzinfo = entry.app.timezone
    ran = last_run(entry, resumed)
    upcoming = None
    if entry.enabled:
        # No last_run_at at all (an entry written by other tools): beat sends it at once.
        upcoming = next_run(entry.schedule, entry.last_run_at or entry.app.now())
    return Schedule(
        name=entry.name,
        task=entry.task,
        enabled=bool(entry.enabled),
        queue=(entry.options or {}).get("queue"),
        args=list(entry.args or ()),
        kwargs=dict(entry.kwargs or {}),
        last_run_at=ran.astimezone(zone) if ran else None,
        next_run_at=upcoming.astimezone(zone) if upcoming else None,
        total_run_count=entry.total_run_count,
        **_timing(entry),
    )


class ScheduleStore:
    """CRUD over redbeat entries; every public method is async and safe on the event loop."""

    def __init__(self, app: Celery, catalog: Catalog, threads: int = 2) -> None:
        self.app = app
        self.catalog = catalog
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="schedules")

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _key(self, name: str) -> str:
        return RedBeatSchedulerEntry.generate_key(self.app, name)

    def _read(self, key: str) -> tuple[RedBeatSchedulerEntry, Resumed | None]:
        """An entry (KeyError if gone) and its resume record."""
        entry = RedBeatSchedulerEntry.from_key(key, app=self.app)
        raw = get_redis(self.app).hget(key, RESUMED_FIELD)
        return entry, msgspec.json.decode(raw, type=Resumed) if raw else None

    def _load(self, name: str) -> tuple[RedBeatSchedulerEntry, Resumed | None]:
        try:
            return self._read(self._key(name))
        except KeyError:
            raise NotFound(f"no schedule named {name!r}") from None

    def _check(self, task: str, args: list[Any], kwargs: dict[str, Any], queue: str | None) -> str:
        spec = self.catalog.known_task(task, "task")
        queue = self.catalog.known_queue(queue or spec.queue, "queue")
        try:
            check_arguments(spec, args, kwargs)
        except ArgumentError as exc:
            raise Unprocessable(str(exc), {"field": exc.field}) from None
        return queue

    def _schedule(self, interval: Interval | None, cron: Crontab | None) -> Any:
        if (interval is None) == (cron is None):
            raise Unprocessable("give interval or crontab (one of them)", {"field": "interval"})
        if cron is not None:
            return _crontab(cron, self.app)
        return schedule(timedelta(seconds=interval.every), app=self.app)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ sync, in the pool

    def _list(self) -> list[Schedule]:
        conf = self.app.redbeat_conf
        keys = get_redis(self.app).zrange(conf.schedule_key, 0, -1)
        views = []
        for key in keys:
            try:
                views.append(_view(*self._read(key)))
            except KeyError:
                continue  # removed between the two reads
        return sorted(views, key=lambda s: s.name)

    def _create(self, req: ScheduleCreate) -> Schedule:
        queue = self._check(req.task, req.args, req.kwargs, req.queue)
        sched = self._schedule(req.interval, req.crontab)
        if get_redis(self.app).exists(self._key(req.name)):
            raise Conflict(f"a schedule named {req.name!r} exists; PATCH it instead")
        entry = RedBeatSchedulerEntry(
            name=req.name, task=req.task, schedule=sched, args=req.args, kwargs=req.kwargs,
            enabled=req.enabled, options={"queue": queue}, app=self.app,
        )  # fmt: skip
        # last_run_at = now: the first run comes one interval (or crontab slot) from now.
        return _view(entry.save(), None)

    def _patch(self, name: str, patch: SchedulePatch) -> Schedule:
        entry, resumed = self._load(name)
        changes = {
            f: v for f in patch.__struct_fields__ if (v := getattr(patch, f)) is not msgspec.UNSET
        }
        task = changes.get("task", entry.task)
        args = changes.get("args", list(entry.args or ()))
        kwargs = changes.get("kwargs", dict(entry.kwargs or {}))
        # A new task without a queue goes to its own default queue, not the old task's.
        kept_queue = None if "task" in changes else (entry.options or {}).get("queue")
        queue = self._check(task, args, kwargs, changes.get("queue", kept_queue))
        if "interval" in changes or "crontab" in changes:
            entry.schedule = self._schedule(changes.get("interval"), changes.get("crontab"))
        resuming = changes.get("enabled") is True and not entry.enabled
        entry.task, entry.args, entry.kwargs = task, args, kwargs
        entry.options = {**(entry.options or {}), "queue": queue}
        entry.enabled = changes.get("enabled", entry.enabled)
        if resuming:
            # Runs it missed while paused are skipped: the next run is one period from now.
            resumed = Resumed(entry.total_run_count, last_run(entry, resumed))
            entry.last_run_at = self.app.now()
            meta = {"last_run_at": entry.last_run_at, "total_run_count": entry.total_run_count}
            get_redis(self.app).hset(entry.key, mapping={
                "meta": json.dumps(meta, cls=RedBeatJSONEncoder),
                RESUMED_FIELD: msgspec.json.encode(resumed),
            })  # fmt: skip
        return _view(entry.save(), resumed)

    def _delete(self, name: str) -> None:
        self._load(name)[0].delete()

    # ------------------------------------------------------------------ async API

    async def list(self) -> list[Schedule]:
        return await self._run(self._list)

    async def get(self, name: str) -> Schedule:
        return await self._run(lambda: _view(*self._load(name)))

    async def create(self, req: ScheduleCreate) -> Schedule:
        return await self._run(self._create, req)

    async def patch(self, name: str, patch: SchedulePatch) -> Schedule:
        return await self._run(self._patch, name, patch)

    async def delete(self, name: str) -> None:
        await self._run(self._delete, name)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        get_redis(self.app).close()
