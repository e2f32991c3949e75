"""Beat's schedule, read and edited at runtime through celery-redbeat's own entry API.

Beat (``worker.dynamic_schedule``) keeps the schedule in Redis in redbeat's layout; the API edits
it the same way redbeat does — ``RedBeatSchedulerEntry`` on a bare Celery app that knows only the
Redis URL, key prefix and timezone (no task code). Redbeat's client is synchronous, so calls run
in a small thread pool. A running beat picks a change up at its next tick.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec
from celery import Celery
from celery.schedules import ParseException, crontab, schedule
from redbeat import RedBeatSchedulerEntry
from redbeat.decoder import RedBeatJSONEncoder
from redbeat.schedulers import ensure_conf, get_redis

from event_collector.keys import Keys
from producer_api.catalog import ArgumentError, Catalog, check_arguments
from producer_api.errors import Conflict, NotFound, Unprocessable
from producer_api.workflow_schemas import (
    Crontab,
    Interval,
    Schedule,
    ScheduleCreate,
    SchedulePatch,
)

_CRONTAB_FIELDS: Final = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def schedule_app(redis_url: str, key_prefix: str, timezone: str, timeout: float) -> Celery:
    app = Celery("taskpulse-schedules", set_as_current=False)
    app.conf.update(
        timezone=timezone,
        enable_utc=True,
        # Same settings as beat's (worker.dynamic_schedule.redbeat_config), so both sides agree.
        redbeat_redis_url=redis_url,
        redbeat_key_prefix=Keys(prefix=key_prefix).beat_prefix,
        redbeat_redis_options={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
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


def _whole_second(when: datetime | None) -> datetime | None:
    # Redbeat's estimate lands a few microseconds off the crontab slot (01:59:59.99 for 02:00).
    return datetime.fromtimestamp(round(when.timestamp()), when.tzinfo) if when else None


def _view(entry: RedBeatSchedulerEntry) -> Schedule:
    return Schedule(
        name=entry.name,
        task=entry.task,
        enabled=bool(entry.enabled),
        queue=(entry.options or {}).get("queue"),
        args=list(entry.args or ()),
        kwargs=dict(entry.kwargs or {}),
        last_run_at=entry.last_run_at,
        next_run_at=_whole_second(entry.due_at) if entry.enabled else None,
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

    def _load(self, name: str) -> RedBeatSchedulerEntry:
        try:
            return RedBeatSchedulerEntry.from_key(self._key(name), app=self.app)
        except KeyError:
            raise NotFound(f"no schedule named {name!r}") from None

    def _check(self, task: str, args: list[Any], kwargs: dict[str, Any], queue: str | None) -> str:
        spec = self.catalog.task(task)
        if spec is None:
            raise Unprocessable(f"unknown task {task!r}", {"field": "task"})
        queue = queue or spec.queue
        if queue not in self.catalog.queues:
            raise Unprocessable(f"unknown queue {queue!r}", {"field": "queue"})
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
        entries = []
        for key in keys:
            try:
                entries.append(RedBeatSchedulerEntry.from_key(key, app=self.app))
            except KeyError:
                continue  # removed between the two reads
        return sorted((_view(e) for e in entries), key=lambda s: s.name)

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
        return _view(entry.save())

    def _patch(self, name: str, patch: SchedulePatch) -> Schedule:
        entry = self._load(name)
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
        resumed = changes.get("enabled") is True and not entry.enabled
        entry.task, entry.args, entry.kwargs = task, args, kwargs
        entry.options = {**(entry.options or {}), "queue": queue}
        entry.enabled = changes.get("enabled", entry.enabled)
        if resumed:
            # Runs it missed while paused are skipped: the next run is one period from now.
            entry.last_run_at = self.app.now()
            meta = {"last_run_at": entry.last_run_at, "total_run_count": entry.total_run_count}
            get_redis(self.app).hset(entry.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
        return _view(entry.save())

    def _delete(self, name: str) -> None:
        self._load(name).delete()

    # ------------------------------------------------------------------ async API

    async def list(self) -> list[Schedule]:
        return await self._run(self._list)

    async def get(self, name: str) -> Schedule:
        return await self._run(lambda: _view(self._load(name)))

    async def create(self, req: ScheduleCreate) -> Schedule:
        return await self._run(self._create, req)

    async def patch(self, name: str, patch: SchedulePatch) -> Schedule:
        return await self._run(self._patch, name, patch)

    async def delete(self, name: str) -> None:
        await self._run(self._delete, name)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
