"""Beat with its schedule in Redis, editable at runtime: celery-redbeat, seeded once.

    celery -A worker beat      (the app's ``beat_scheduler`` names this module's scheduler;
                                ``-S worker.dynamic_schedule:SeededRedBeatScheduler`` is the same)

Why redbeat: it keeps each entry (definition + last run) in Redis and a sorted set of due times,
so the API can add, change, pause and remove entries while beat runs, and its lock lets any
number of beats run with one active and the others on standby (each waits on the lock and takes
over when the active one stops renewing it — killed beats included, after the lock timeout).
An entry's last run is written *before* its task is sent, so a takeover never re-sends a run.

Redbeat's own start-up re-installs the static ``beat_schedule`` over whatever is in Redis, which
would undo runtime edits (a paused entry resumed, a removed one back) at every restart. Here the
static schedule (``worker.schedule``) only *seeds*: each static entry is written once, the first
time a beat sees it, and from then on Redis is the schedule.

Settings (read once when beat creates the scheduler, the beat process's composition root):
``TASKPULSE_REDIS_URL`` (the monitoring store; the API edits the schedule there),
``TASKPULSE_KEY_PREFIX`` (entries live under ``redbeat:<prefix>``, see ``Keys.beat_prefix``),
``TASKPULSE_BEAT_MAX_INTERVAL`` (seconds between ticks at most, default 5) and
``TASKPULSE_BEAT_LOCK_TIMEOUT`` (seconds a killed beat's lock outlives it, default 30).
"""

from __future__ import annotations

from typing import Any

import msgspec
from celery import Celery
from celery.utils.log import get_logger
from redbeat import RedBeatScheduler
from redbeat.schedulers import get_redis

from event_collector.beat import configure_redbeat
from event_collector.connection import STORE_UNAVAILABLE, store_keys
from event_collector.environment import DEFAULT_REDIS_URL, settings_from_env
from event_collector.keys import Keys

logger = get_logger("celery.beat")


class BeatSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Built by ``settings_from_env``: each field reads ``TASKPULSE_<FIELD>``."""

    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = ""  # "" = the store's default (connection.store_key_prefix)
    beat_max_interval: float = 5.0
    # Must outlast the longest gap between ticks (max_interval) plus sending the due tasks.
    beat_lock_timeout: int = 30

    def __post_init__(self) -> None:
        self.keys  # noqa: B018 - a bad store URL or key prefix fails here, named
        if self.beat_lock_timeout <= self.beat_max_interval:
            raise ValueError(
                f"TASKPULSE_BEAT_LOCK_TIMEOUT ({self.beat_lock_timeout}) must exceed"
                f" TASKPULSE_BEAT_MAX_INTERVAL ({self.beat_max_interval}): the lock would lapse"
            )

    @property
    def keys(self) -> Keys:
        return store_keys(self.redis_url, self.key_prefix)


class SeededRedBeatScheduler(RedBeatScheduler):
    """Redbeat whose static schedule seeds Redis once instead of overwriting it each start."""

    def __init__(self, app: Celery, **kwargs: Any) -> None:
        settings = settings_from_env(BeatSettings)
        configure_redbeat(app, settings.redis_url, settings.keys)
        app.conf.update(redbeat_lock_timeout=settings.beat_lock_timeout)
        # Set of static entry names already written once (so a removed one stays removed).
        self._seeded_key = settings.keys.beat_seeded
        kwargs["max_interval"] = kwargs.get("max_interval") or settings.beat_max_interval
        self._store_lost = False
        super().__init__(app, **kwargs)

    def setup_schedule(self) -> None:
        client = get_redis(self.app)
        static: dict[str, Any] = dict(self.app.redbeat_conf.schedule or {})
        self.install_default_entries(static)
        done = self._seeded_key
        for name, definition in static.items():
            if client.sismember(done, name):
                continue  # seeded by an earlier start; the API may have changed it since
            entry = self._maybe_entry(name, definition)
            if not client.exists(entry.key):
                entry.save()
                logger.info("beat: seeded schedule entry %r (%s) from the static schedule",
                            name, entry.task)  # fmt: skip
            client.sadd(done, name)
        lock_key = self.app.redbeat_conf.lock_key  # self.lock_key is not set yet
        if client.exists(lock_key):
            logger.info("beat: another beat holds %s; standing by until it is released or "
                        "lapses", lock_key)  # fmt: skip

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Redbeat's tick, except that a store outage (a failover, a restart) skips the tick
        instead of ending beat: the lock's extension is a Lua call redbeat does not retry.
        A tick missed this way is sent at the next one (redbeat works from due times)."""
        try:
            interval = float(super().tick(*args, **kwargs))
        except STORE_UNAVAILABLE as exc:
            if not self._store_lost:
                logger.warning("beat: store unreachable (%s: %s); retrying every %.0fs",
                               type(exc).__name__, exc, self.max_interval)
            self._store_lost = True
            return float(self.max_interval)
        if self._store_lost:
            logger.info("beat: store reachable again")
            self._store_lost = False
        return interval
