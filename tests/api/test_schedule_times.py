"""A schedule's next and last run, computed from the schedule itself (pure code, no Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from celery.schedules import crontab, schedule
from redbeat import RedBeatSchedulerEntry

from event_collector.keys import Keys
from producer_api.schedule_store import Resumed, _view, next_run, schedule_app

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Never connected to: building entries and computing times touch no Redis.
APP = schedule_app("redis://127.0.0.1:1/1", Keys(), "Asia/Shanghai", 1.0)


def at(*fields: int, tz: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(*fields, tzinfo=tz)


def entry(sched: object, last_run_at: datetime, runs: int = 0,
          enabled: bool = True) -> RedBeatSchedulerEntry:  # fmt: skip
    made = RedBeatSchedulerEntry(name="e", task="demo.test_task", schedule=sched, app=APP,
                                 enabled=enabled, total_run_count=runs)  # fmt: skip
    made.last_run_at = last_run_at
    return made


def test_an_hourly_crontab_runs_next_at_the_full_hour() -> None:
    hourly = crontab(minute="0", app=APP)
    assert next_run(hourly, at(2026, 3, 1, 2, 54, 15)) == at(2026, 3, 1, 3, 0)


def test_an_hourly_crontab_that_just_ran_runs_again_an_hour_later() -> None:
    hourly = crontab(minute="0", app=APP)
    assert next_run(hourly, at(2026, 3, 1, 3, 0, 0, 4000)) == at(2026, 3, 1, 4, 0)


def test_a_daily_crontab_runs_at_its_hour_in_the_configured_timezone() -> None:
    daily = crontab(minute="0", hour="2", app=APP)
    # 18:30 UTC is 02:30 the next day in Shanghai: today's 02:00 there has passed.
    since = at(2026, 3, 1, 18, 30, tz=ZoneInfo("UTC"))
    assert next_run(daily, since) == at(2026, 3, 3, 2, 0)
    assert next_run(daily, at(2026, 3, 2, 1, 59)) == at(2026, 3, 2, 2, 0)


def test_a_crontab_keeps_its_wall_clock_hour_across_a_dst_change() -> None:
    berlin = schedule_app("redis://127.0.0.1:1/1", Keys(), "Europe/Berlin", 1.0)
    daily = crontab(minute="0", hour="2", app=berlin)
    # Clocks go forward on 2026-03-29 at 02:00 in Berlin; the day after, 02:00 is UTC+2.
    since = datetime(2026, 3, 29, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert next_run(daily, since) == datetime(2026, 3, 30, 0, 0, tzinfo=UTC)


def test_an_interval_runs_one_period_after_its_last_run() -> None:
    every_90s = schedule(timedelta(seconds=90), app=APP)
    last = at(2026, 3, 1, 10, 0, 0, 250000)
    assert next_run(every_90s, last) == at(2026, 3, 1, 10, 1, 30, 250000)


def test_the_next_run_is_the_same_at_every_call() -> None:
    hourly = entry(crontab(minute="0", app=APP), at(2026, 3, 1, 2, 54, 15))
    assert len({_view(hourly, None).next_run_at for _ in range(5)}) == 1


def test_times_are_shown_in_the_configured_timezone() -> None:
    shown = _view(entry(crontab(minute="0", app=APP), at(2026, 3, 1, 2, 0, tz=UTC), runs=1), None)
    assert shown.next_run_at.utcoffset() == timedelta(hours=8)
    assert shown.last_run_at.utcoffset() == timedelta(hours=8)
    assert shown.next_run_at == at(2026, 3, 1, 11, 0)


def test_a_schedule_that_never_ran_has_no_last_run() -> None:
    created = _view(entry(crontab(minute="0", app=APP), at(2026, 3, 1, 2, 54, 15)), None)
    assert created.total_run_count == 0
    assert created.last_run_at is None
    assert created.next_run_at == at(2026, 3, 1, 3, 0)


def test_a_paused_schedule_has_no_next_run() -> None:
    paused = _view(entry(crontab(minute="0", app=APP), at(2026, 3, 1, 2, 0), runs=3,
                         enabled=False), None)  # fmt: skip
    assert paused.next_run_at is None
    assert paused.last_run_at == at(2026, 3, 1, 2, 0)


def test_a_resumed_schedule_shows_its_last_real_run_until_it_runs_again() -> None:
    resumed = Resumed(total_run_count=3, last_run_at=at(2026, 3, 1, 2, 0))
    every_min = schedule(timedelta(minutes=1), app=APP)
    # Beat's last_run_at is the resume time: the next run is one period after it.
    shown = _view(entry(every_min, at(2026, 3, 1, 9, 30), runs=3), resumed)
    assert (shown.last_run_at, shown.next_run_at) == (at(2026, 3, 1, 2, 0), at(2026, 3, 1, 9, 31))
    ran_again = _view(entry(every_min, at(2026, 3, 1, 9, 31), runs=4), resumed)
    assert ran_again.last_run_at == at(2026, 3, 1, 9, 31)
