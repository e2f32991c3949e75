"""Worker settings: one typed object, built from the environment by ``load_settings``
(``event_collector.environment``: the loader every taskpulse process uses).

Every knob the worker has is here, read once at the edge and passed down; nothing deeper reads
the environment. Variables (all optional):

==================================  ==========================================================
``TASKPULSE_BROKER_URL``            broker, default ``redis://127.0.0.1:6379/0``
``TASKPULSE_RESULT_BACKEND``        result backend, default: the broker URL
``TASKPULSE_TIMEZONE``              beat schedule and report periods, default ``Asia/Shanghai``
``TASKPULSE_DATA_DIR``              SQLite store, exports, backups, reports; ``./.run/data``
``TASKPULSE_SMTP_HOST`` / ``_PORT``  mail relay for notification emails, ``localhost:1025``
``TASKPULSE_SMTP_SENDER``           From: address, ``taskpulse@localhost``
``TASKPULSE_SMTP_TIMEOUT``          seconds before an SMTP connection counts as failed, ``10``
``TASKPULSE_SOFT_TIME_LIMIT``       seconds, default 1500 (25 min)
``TASKPULSE_TIME_LIMIT``            seconds, default 1800 (30 min)
``TASKPULSE_TASK_TIME_LIMITS``      per task: ``name=soft/hard,name=soft/hard``
``TASKPULSE_DEFAULT_PRIORITY``      ``low|normal|high|critical`` for unprioritised tasks, normal
``TASKPULSE_PREFETCH_MULTIPLIER``   messages reserved per process, default 1
``TASKPULSE_RESULT_EXPIRES``        seconds results are kept, default 86400
``TASKPULSE_MAX_RETRIES``           retries of transient errors, default 3
``TASKPULSE_RETRY_BACKOFF``         backoff base in seconds (doubles per retry), default 2
``TASKPULSE_RETRY_BACKOFF_MAX``     cap of one backoff in seconds, default 600
``TASKPULSE_CACHE_REDIS_URL``       Redis cleaned by ``cleanup_cache``; default: the result
                                    backend if it is Redis, else the broker
``TASKPULSE_POOL_RESTARTS``         ``1``: the API may restart the pool (``pool_restart``), 1
``TASKPULSE_CACHE_KEY_PREFIX``      the only keys ``cleanup_cache`` may delete start with it;
                                    default ``taskpulse:cache:`` (no glob characters)
==================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from event_collector.broker import (
    PRIORITY_LEVELS,
    BrokerKind,
    broker_kind,
    redis_py_opens,
    result_backend_url,
)
from event_collector.environment import DEFAULT_BROKER_URL, DEFAULT_TIMEZONE, settings_from_env


class TimeLimit(msgspec.Struct, frozen=True):
    """Soft limit raises ``SoftTimeLimitExceeded`` in the task; hard limit kills the process."""

    soft: float
    hard: float

    def __post_init__(self) -> None:
        # Celery's prefork pool arms the hard timer only when the soft one fires, so a soft
        # limit above the hard one would silently postpone the hard one.
        if not 0 < self.soft <= self.hard:
            raise ValueError(f"need 0 < soft ({self.soft}) <= hard ({self.hard}) time limit")


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    broker_url: str = DEFAULT_BROKER_URL
    result_backend: str = ""
    timezone: str = DEFAULT_TIMEZONE
    data_dir: Path = Path(".run/data")
    smtp_host: str = "localhost"
    smtp_port: int = 1025
    smtp_sender: str = "taskpulse@localhost"
    smtp_timeout: float = 10.0
    soft_time_limit: float = 1500.0
    time_limit: float = 1800.0
    task_time_limits: dict[str, TimeLimit] = msgspec.field(default_factory=dict)
    default_priority: str = "normal"
    prefetch_multiplier: int = 1
    result_expires: int = 86400
    max_retries: int = 3
    retry_backoff: int = 2
    retry_backoff_max: int = 600
    cache_redis_url: str = ""
    cache_key_prefix: str = "taskpulse:cache:"
    pool_restarts: bool = True

    def __post_init__(self) -> None:
        broker_kind(self.broker_url)  # an unsupported broker fails at start-up
        try:
            TimeLimit(soft=self.soft_time_limit, hard=self.time_limit)
        except ValueError as exc:
            raise ValueError(f"TASKPULSE_SOFT_TIME_LIMIT / TASKPULSE_TIME_LIMIT: {exc}") from None
        if not self.cache_key_prefix or any(c in self.cache_key_prefix for c in "*?[]\\"):
            raise ValueError(
                "TASKPULSE_CACHE_KEY_PREFIX must be a non-empty literal key prefix (no glob "
                f"characters), not {self.cache_key_prefix!r}"
            )
        if self.default_priority not in PRIORITY_LEVELS:
            raise ValueError(
                f"TASKPULSE_DEFAULT_PRIORITY must be one of {', '.join(PRIORITY_LEVELS)}, "
                f"not {self.default_priority!r}"
            )
        try:  # fail at start-up, not at the first scheduled run
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"TASKPULSE_TIMEZONE {self.timezone!r} is not a known timezone"
            raise ValueError(message) from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def backend_url(self) -> str:
        return result_backend_url(self.result_backend, self.broker_url)

    @property
    def broker_kind(self) -> BrokerKind:
        """The two priority schemes differ (see ``worker.routing``)."""
        return broker_kind(self.broker_url)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "taskpulse.db"

    @property
    def cache_url(self) -> str:
        if self.cache_redis_url:
            return self.cache_redis_url
        if redis_py_opens(self.backend_url):
            return self.backend_url
        return self.broker_url


def parse_time_limits(spec: str) -> dict[str, TimeLimit]:
    """``"demo.long_running_task=60/90,reports.generate_monthly_report=600/660"`` → limits."""
    limits: dict[str, TimeLimit] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, values = item.partition("=")
        soft, slash, hard = values.partition("/")
        if not (sep and slash and name):
            raise ValueError(f"item {item!r} is not name=soft/hard")
        try:
            limits[name.strip()] = TimeLimit(soft=float(soft), hard=float(hard))
        except ValueError as exc:
            raise ValueError(f"item {item!r}: {exc}") from None
    return limits


def load_settings(env: Mapping[str, str] | None = None) -> WorkerSettings:
    """Build the settings from ``env`` (default ``os.environ``); unset variables keep defaults.
    A bad value raises ``SettingsError`` naming its variable."""
    return settings_from_env(
        WorkerSettings, env, parse={"data_dir": Path, "task_time_limits": parse_time_limits}
    )
