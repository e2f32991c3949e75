"""A task record's lifecycle: operators annotate it (note, labels), admins forget it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from event_collector.lifecycle import FORGET_ACTION, Annotation, ForgetOutcome, TaskLifecycle
from event_collector.replies import text
from producer_api.audit import audit_event
from producer_api.enqueued import enqueued_record
from producer_api.errors import Conflict, NotFound
from producer_api.http import endpoint, json_response, read_body
from producer_api.middleware import ACTOR
from producer_api.record_schemas import TaskAnnotations, TaskForgotten, TaskPatch
from producer_api.resources import KEYS, REDIS, STREAM

routes = web.RouteTableDef()
LIFECYCLE = web.AppKey("lifecycle", TaskLifecycle)


async def ctx(app: web.Application) -> AsyncIterator[None]:
    app[LIFECYCLE] = TaskLifecycle(app[REDIS], app[KEYS], app[STREAM])
    yield


@routes.patch("/tasks/{task_id}")
@endpoint(
    "Annotate a task (note, labels); its state is never editable",
    "operator",
    body=TaskPatch,
    response=TaskAnnotations,
    errors=(400, 404, 409, 422, 503),
)
async def annotate_task(request: web.Request) -> web.Response:
    task_id = request.match_info["task_id"]
    patch = await read_body(request, TaskPatch)
    detail = {k: v for k, v in (("note", patch.note), ("labels", patch.labels)) if v is not None}
    audit = audit_event(request[ACTOR].name, "annotate", task_id, "", _json(detail))
    change = Annotation(note=patch.note, labels=patch.labels)
    if not await request.app[LIFECYCLE].annotate(task_id, change, audit):
        await _refuse_if_just_enqueued(request, task_id, "annotate it once it has")
        raise NotFound(f"no task {task_id!r}")
    return json_response(await _annotations(request, task_id))


@routes.delete("/tasks/{task_id}")
@endpoint(
    "Forget a finished task's record and index entries (an audit event stays)",
    "admin",
    response=TaskForgotten,
    errors=(404, 409, 503),
)
async def forget_task(request: web.Request) -> web.Response:
    task_id = request.match_info["task_id"]
    # What was forgotten stays readable in the audit trail.
    name, state = await request.app[REDIS].hmget(request.app[KEYS].task(task_id), "name", "state")
    detail = {"state": text(state) or None}
    audit = audit_event(
        request[ACTOR].name, FORGET_ACTION, task_id, text(name), _json(detail)
    )
    result = await request.app[LIFECYCLE].forget(task_id, audit)
    if result.outcome is ForgetOutcome.MISSING:
        await _refuse_if_just_enqueued(request, task_id, "revoke it first (POST .../revoke)")
        raise NotFound(f"no task {task_id!r}")
    if result.outcome is ForgetOutcome.UNFINISHED:
        raise Conflict(
            f"task {task_id} is {result.state}; revoke it first (POST .../revoke)",
            {"state": result.state},
        )
    # The API's own "just enqueued" marker must not bring a forgotten task back as PENDING.
    await request.app[REDIS].delete(request.app[KEYS].enqueued(task_id))
    return json_response(TaskForgotten(id=task_id))


async def _refuse_if_just_enqueued(request: web.Request, task_id: str, advice: str) -> None:
    """A task the API just enqueued exists (GET shows it PENDING) but has no record to change
    yet: that is a conflict of timing, not a 404."""
    if await enqueued_record(request.app[REDIS], request.app[KEYS], task_id) is not None:
        raise Conflict(f"task {task_id} is PENDING and not recorded by the collector yet; "
                       f"{advice}", {"state": "PENDING"})


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


async def _annotations(request: web.Request, task_id: str) -> TaskAnnotations:
    note, labels = await request.app[REDIS].hmget(request.app[KEYS].task(task_id), "note", "labels")
    return TaskAnnotations(
        id=task_id,
        note=text(note) or None,
        labels=msgspec.json.decode(labels) if labels else None,
    )
