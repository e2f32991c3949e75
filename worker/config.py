"""Worker settings: one typed object, built from the environment by ``load_settings``.

Every knob the worker has is here, read once at the edge and passed down; nothing deeper reads
the environment. Variables (all optional):

==================================  ==========================================================
``TASKPULSE_BROKER_URL``            broker, default ``redis://localhost:6379/0``
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
``TASKPULSE_CACHE_KEY_PREFIX``      the only keys ``cleanup_cache`` may delete start with it;
                                    default ``taskpulse:cache:`` (no glob characters)
==================================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from worker.routing import PRIORITY_LEVELS


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
    broker_url: str = "redis://localhost:6379/0"
    result_backend: str = ""
    timezone: str = "Asia/Shanghai"
    data_dir: Path = Path(".run/data")
    smtp_host: str = "localhost"
    smtp_port: int = 1025
    smtp_sender: str = "taskpulse@localhost"
    smtp_timeout: float = 10.0
    time_limit: TimeLimit = TimeLimit(soft=1500.0, hard=1800.0)
    task_time_limits: dict[str, TimeLimit] = msgspec.field(default_factory=dict)
    default_priority: str = "normal"
    prefetch_multiplier: int = 1
    result_expires: int = 86400
    max_retries: int = 3
    retry_backoff: int = 2
    retry_backoff_max: int = 600
    cache_redis_url: str = ""
    cache_key_prefix: str = "taskpulse:cache:"

    def __post_init__(self) -> None:
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
        return self.result_backend or self.broker_url

    @property
    def broker_kind(self) -> str:
        """``redis`` or ``amqp``: the two priority schemes differ (see ``worker.routing``)."""
        return "redis" if self.broker_url.startswith(("redis", "rediss", "sentinel")) else "amqp"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "taskpulse.db"

    @property
    def cache_url(self) -> str:
        if self.cache_redis_url:
            return self.cache_redis_url
        if self.backend_url.startswith(("redis://", "rediss://")):
            return self.backend_url
        return self.broker_url


def parse_time_limits(spec: str) -> dict[str, TimeLimit]:
    """``"demo.long_running_task=60/90,reports.generate_monthly_report=600/660"`` → limits."""
    limits: dict[str, TimeLimit] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, values = item.partition("=")
        soft, slash, hard = values.partition("/")
        if not (sep and slash and name):
            raise ValueError(f"TASKPULSE_TASK_TIME_LIMITS item {item!r} is not name=soft/hard")
        try:
            limits[name.strip()] = TimeLimit(soft=float(soft), hard=float(hard))
        except ValueError as exc:
            raise ValueError(f"TASKPULSE_TASK_TIME_LIMITS item {item!r}: {exc}") from None
    return limits


def load_settings(env: Mapping[str, str] | None = None) -> WorkerSettings:
    """Build the settings from ``env`` (default ``os.environ``); unset variables keep defaults."""
    read = _Env(os.environ if env is None else env)
    defaults = WorkerSettings()
    broker = read.text("BROKER_URL", defaults.broker_url)
    return WorkerSettings(
        broker_url=broker,
        result_backend=read.text("RESULT_BACKEND", broker),
        timezone=read.text("TIMEZONE", defaults.timezone),
        data_dir=Path(read.text("DATA_DIR", str(defaults.data_dir))),
        smtp_host=read.text("SMTP_HOST", defaults.smtp_host),
        smtp_port=read.number("SMTP_PORT", int, defaults.smtp_port),
        smtp_sender=read.text("SMTP_SENDER", defaults.smtp_sender),
        smtp_timeout=read.number("SMTP_TIMEOUT", float, defaults.smtp_timeout),
        time_limit=_global_time_limit(read, defaults.time_limit),
        task_time_limits=parse_time_limits(read.text("TASK_TIME_LIMITS", "")),
        default_priority=read.text("DEFAULT_PRIORITY", defaults.default_priority),
        prefetch_multiplier=read.number("PREFETCH_MULTIPLIER", int, defaults.prefetch_multiplier),
        result_expires=read.number("RESULT_EXPIRES", int, defaults.result_expires),
        max_retries=read.number("MAX_RETRIES", int, defaults.max_retries),
        retry_backoff=read.number("RETRY_BACKOFF", int, defaults.retry_backoff),
        retry_backoff_max=read.number("RETRY_BACKOFF_MAX", int, defaults.retry_backoff_max),
        cache_redis_url=read.text("CACHE_REDIS_URL", ""),
        cache_key_prefix=read.text("CACHE_KEY_PREFIX", defaults.cache_key_prefix),
    )


def _global_time_limit(read: _Env, default: TimeLimit) -> TimeLimit:
    soft = read.number("SOFT_TIME_LIMIT", float, default.soft)
    hard = read.number("TIME_LIMIT", float, default.hard)
    try:
        return TimeLimit(soft=soft, hard=hard)
    except ValueError as exc:
        raise ValueError(f"TASKPULSE_SOFT_TIME_LIMIT / TASKPULSE_TIME_LIMIT: {exc}") from None


_N = TypeVar("_N", int, float)


class _Env:
    """Typed reads of ``TASKPULSE_*`` variables; a bad value names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str) -> str:
        return self.env.get(f"TASKPULSE_{name}", default)

    def number(self, name: str, kind: type[_N], default: _N) -> _N:
        raw = self.env.get(f"TASKPULSE_{name}")
        if raw is None or raw == "":
            return default
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"TASKPULSE_{name} must be a number, got {raw!r}") from None
