"""A worker as the store keeps it (keys.py ``P worker:<host>``), and when it counts as alive.

The read side (``GET /workers``, ``/stats``) and the metrics (``celery_worker_up``) both build
their view of a worker here, so they cannot disagree about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import orjson

from event_collector.records import WorkerInfo
from event_collector.replies import integer, number

# celery.worker.heartbeat.Heart sends a heartbeat every ``interval or 2.0`` seconds: a worker
# whose freq is missing or not positive beats at the default, it does not expire at once.
DEFAULT_HEARTBEAT_SECONDS: Final = 2.0
# celery.events.state.Worker: alive while the last heartbeat is within freq x 2
# (``expire_window`` 200 %).
HEARTBEAT_EXPIRE_FACTOR: Final = 2.0


def is_alive(last_heartbeat: float | None, freq: float | None, online: bool, now: float) -> bool:
    """Celery's rule: online, and the last heartbeat no older than freq x 2."""
    if not online or last_heartbeat is None:
        return False
    interval = freq if freq is not None and freq > 0 else DEFAULT_HEARTBEAT_SECONDS
    return now - last_heartbeat <= interval * HEARTBEAT_EXPIRE_FACTOR


def worker_info(hostname: str, fields: Mapping[str, str], now: float) -> WorkerInfo:
    """The worker hash (``replies.hash_text`` of its HGETALL) as seen at ``now``."""
    heartbeat, freq = number(fields.get("last_heartbeat")), number(fields.get("freq"))
    loadavg = orjson.loads(fields["loadavg"]) if fields.get("loadavg") else None
    return WorkerInfo(
        hostname=hostname,
        alive=is_alive(heartbeat, freq, fields.get("online") != "0", now),
        last_heartbeat=heartbeat,
        freq=freq,
        active=integer(fields.get("active")),
        processed=integer(fields.get("processed")),
        loadavg=list(loadavg) if loadavg is not None else None,
        sw_ident=fields.get("sw_ident") or None,
        sw_ver=fields.get("sw_ver") or None,
        sw_sys=fields.get("sw_sys") or None,
        pid=integer(fields.get("pid")),
        online_at=number(fields.get("online_at")),
        offline_at=number(fields.get("offline_at")),
    )
