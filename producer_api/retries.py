"""Re-sending a finished task with its recorded arguments: one rule for ``POST
/tasks/{id}/retry`` and ``POST /tasks/bulk/retry``. The new task's parent is the original and
its root the original's root, so the task tree shows the retry under what it retries."""

from __future__ import annotations

import ast
from typing import Any, Final

import msgspec

from event_collector.events import UNSUCCESSFUL_STATES
from event_collector.records import TaskRecord
from producer_api.enqueue import Enqueuer, Resolved
from producer_api.errors import Conflict
from producer_api.schemas import EnqueueRequest

RETRYABLE_STATES: Final = UNSUCCESSFUL_STATES


def resolve_retry(enqueuer: Enqueuer, record: TaskRecord) -> Resolved:
    """The checked re-send of ``record``: 409 when it is not in a retryable state or its
    arguments cannot be re-sent, 422 when its task left the catalog."""
    if record.state not in RETRYABLE_STATES or not record.name:
        raise Conflict(
            f"task is {record.state}; only {', '.join(sorted(RETRYABLE_STATES))} tasks retry",
            {"state": record.state},
        )
    req = EnqueueRequest(
        name=record.name, args=_decode_args(record.args, list),
        kwargs=_decode_args(record.kwargs, dict), queue=record.queue,
    )
    return enqueuer.resolve(req, parent_id=record.id, root_id=record.root_id or record.id)


def _decode_args(text: str | None, kind: type) -> Any:
    """Arguments as recorded: JSON for tasks sent through the API, Python repr for others."""
    if not text:
        return kind()
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise Conflict("the task's arguments were not recorded in a re-sendable form",
                           {"args": text}) from None
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, kind):
        raise Conflict("the task's arguments were not recorded in a re-sendable form",
                       {"args": text})
    return value
