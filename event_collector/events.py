"""The normalized event: what the stream stores, the projections fold and the API streams out.

Celery's wire events are loose dicts; ``event_collector.normalize`` turns each one into an
``Event`` (or rejects it). Everything downstream trusts these types.
"""

from __future__ import annotations

from typing import Final

import msgspec

# Celery task event type -> the counter/state kind it represents.
TASK_EVENT_KINDS: Final[dict[str, str]] = {
    "task-sent": "SENT",
    "task-received": "RECEIVED",
    "task-started": "STARTED",
    "task-succeeded": "SUCCESS",
    "task-failed": "FAILURE",
    "task-retried": "RETRY",
    "task-revoked": "REVOKED",
    "task-rejected": "REJECTED",
}
# The failure that groups (failures.py): its exception is fingerprinted on the way in.
TASK_FAILED: Final = "task-failed"
# Progress carries no state change; it updates the task's progress fields only.
TASK_PROGRESS: Final = "task-progress"
# One-character event type codes of the timeline entries in the task hash (keys.py ``_tl``).
TIMELINE_CODES: Final[dict[str, str]] = {
    "task-sent": "s", "task-received": "r", "task-started": "b", "task-succeeded": "o",
    "task-failed": "f", "task-retried": "y", "task-revoked": "v", "task-rejected": "j",
    TASK_PROGRESS: "p",
}  # fmt: skip
TIMELINE_TYPES: Final[dict[str, str]] = {code: type_ for type_, code in TIMELINE_CODES.items()}
WORKER_EVENT_TYPES: Final = frozenset({"worker-online", "worker-heartbeat", "worker-offline"})
# Control actions taken through the API (enqueue, revoke, retry, delete), kept for audit.
AUDIT_EVENT: Final = "taskpulse-audit"

# Events about one task (they carry its uuid and fold into its record).
TASK_TYPES: Final = frozenset({*TASK_EVENT_KINDS, TASK_PROGRESS})
KNOWN_EVENT_TYPES: Final = frozenset(
    {*TASK_EVENT_KINDS, TASK_PROGRESS, *WORKER_EVENT_TYPES, AUDIT_EVENT}
)

# Task states from strongest to weakest: a weaker state never overwrites a stronger one, so the
# order in which events arrive does not matter. RETRY is Celery's special case: a retried task
# goes back through RECEIVED/STARTED, which ``store.lua`` handles (see there).
STATE_PRECEDENCE: Final[tuple[str, ...]] = (
    "SUCCESS",
    "FAILURE",
    "REVOKED",
    "STARTED",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "PENDING",
)
# Finished tasks: Celery's READY_STATES and REJECTED (a requeued message comes back as a
# later RECEIVED, which replaces REJECTED: store.lua).
READY_STATES: Final = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})
# Finished without success: a workflow with such a task failed, and the task may be re-sent.
UNSUCCESSFUL_STATES: Final = READY_STATES - {"SUCCESS"}

# Event fields by how they are carried, for the code that reads them off a Celery event
# (normalize.py) and flattens them for the store's Lua (store.py).
TASK_TEXT_FIELDS: Final = (
    "name", "args", "kwargs", "queue", "exchange", "routing_key", "eta", "expires",
    "parent_id", "root_id", "result", "exception", "traceback", "signum",
)  # fmt: skip
TASK_NUMBER_FIELDS: Final = ("priority", "runtime", "progress_current", "progress_total")
TASK_FLAG_FIELDS: Final = ("terminated", "expired", "requeue")
WORKER_TEXT_FIELDS: Final = ("sw_ident", "sw_ver", "sw_sys")
WORKER_NUMBER_FIELDS: Final = ("freq", "active", "processed")


class Event(msgspec.Struct, frozen=True, omit_defaults=True):
    """One accepted event. ``id`` identifies it across collectors (see ``normalize.event_id``)."""

    id: str
    type: str
    timestamp: float
    hostname: str = ""
    pid: int = 0
    clock: int = 0
    # Task events. The order is the stream's (stored.py): what most events carry comes first.
    uuid: str = ""
    result: str = ""
    runtime: float | None = None
    name: str = ""
    args: str = ""
    kwargs: str = ""
    queue: str = ""
    exchange: str = ""
    routing_key: str = ""
    priority: int | None = None
    retries: int = 0
    eta: str = ""
    expires: str = ""
    parent_id: str = ""
    root_id: str = ""
    exception: str = ""
    traceback: str = ""
    terminated: bool = False
    expired: bool = False
    signum: str = ""
    requeue: bool = False
    progress_current: float | None = None
    progress_total: float | None = None
    # Worker events
    freq: float | None = None
    active: int | None = None
    processed: int | None = None
    loadavg: tuple[float, ...] = ()
    sw_ident: str = ""
    sw_ver: str = ""
    sw_sys: str = ""
    # Audit events
    actor: str = ""
    action: str = ""
    detail: str = ""

    @property
    def is_task_event(self) -> bool:
        return self.type in TASK_TYPES


EVENT_ENCODER: Final = msgspec.json.Encoder()
EVENT_DECODER: Final = msgspec.json.Decoder(Event)
