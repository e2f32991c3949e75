"""Tasks: enqueue, list, count, show, timeline, revoke, retry."""

from __future__ import annotations

import msgspec
from aiohttp import web

from event_collector.read import InvalidCursor, TaskQuery
from event_collector.records import TaskCount, TaskPage
from producer_api.audit import append_audit, audit_event
from producer_api.enqueued import enqueued_record
from producer_api.errors import NotFound, Unprocessable
from producer_api.http import endpoint, json_response, parse_query, read_body
from producer_api.middleware import ACTOR
from producer_api.resources import (
    ENQUEUER,
    KEYS,
    METRICS,
    PUBLISHER,
    READER,
    REDIS,
    SETTINGS,
    STREAM,
)
from producer_api.retries import resolve_retry
from producer_api.schemas import (
    IDEMPOTENCY_KEY_MAX,
    BatchRequest,
    BatchResponse,
    EnqueueRequest,
    EnqueueResponse,
    RevokeRequest,
    RevokeResponse,
    TaskCountQuery,
    TaskDetail,
    TaskEvents,
    TaskListQuery,
)

routes = web.RouteTableDef()


def actor(request: web.Request) -> str:
    return request[ACTOR].name


def count_enqueued(request: web.Request, responses: list[EnqueueResponse]) -> None:
    counter = request.app[METRICS].enqueued
    for r in responses:
        if not r.duplicate:
            counter.labels(r.name, r.queue).inc()


def _with_header_key(request: web.Request, req: EnqueueRequest) -> EnqueueRequest:
    """The ``Idempotency-Key`` header, checked like the body field (never cut short: two long
    keys cut to one prefix would collide and a task would silently not be sent)."""
    header = request.headers.get("Idempotency-Key")
    if header is None:
        return req
    where = {"field": "Idempotency-Key", "in": "header"}
    if not 1 <= len(header) <= IDEMPOTENCY_KEY_MAX:
        raise Unprocessable(
            f"the Idempotency-Key header must be 1-{IDEMPOTENCY_KEY_MAX} characters, "
            f"got {len(header)}", where,
        )
    if req.idempotency_key not in (None, header):
        raise Unprocessable("the Idempotency-Key header and idempotency_key differ", where)
    return msgspec.structs.replace(req, idempotency_key=header)


@routes.post("/tasks")
@endpoint("Enqueue one task by name", "operator", body=EnqueueRequest,
          response=EnqueueResponse, status=202, errors=(400, 409, 413, 422, 503),
          links={"task_id": "id"})
async def enqueue_task(request: web.Request) -> web.Response:
    req = _with_header_key(request, await read_body(request, EnqueueRequest))
    enqueuer = request.app[ENQUEUER]
    [response] = await enqueuer.enqueue([enqueuer.resolve(req)], actor(request))
    count_enqueued(request, [response])
    return json_response(response, status=202, headers={"Location": response.url})


@routes.post("/tasks/batch")
@endpoint("Enqueue many tasks in one request (all checked before any is sent)", "operator",
          body=BatchRequest, response=BatchResponse, status=202,
          errors=(400, 409, 413, 422, 503))
async def enqueue_batch(request: web.Request) -> web.Response:
    batch = await read_body(request, BatchRequest)
    enqueuer = request.app[ENQUEUER]
    resolved = [enqueuer.resolve(req, f"tasks[{i}].") for i, req in enumerate(batch.tasks)]
    responses = await enqueuer.enqueue(resolved, actor(request))
    count_enqueued(request, responses)
    return json_response(BatchResponse(tasks=responses), status=202)


def task_query(
    request: web.Request, q: TaskListQuery | TaskCountQuery, **changes: object
) -> TaskQuery:
    """The reader's query for these filters, bounded by the API's search setting."""
    fields = {**msgspec.structs.asdict(q), **changes}
    scan_max = request.app[SETTINGS].search_scan_max
    return msgspec.convert({**fields, "scan_max": scan_max}, TaskQuery)


@routes.get("/tasks")
@endpoint("List tasks, newest first, with filters and cursor paging", "viewer",
          query=TaskListQuery, response=TaskPage, errors=(422, 503))
async def list_tasks(request: web.Request) -> web.Response:
    query = parse_query(request, TaskListQuery)
    try:
        page = await request.app[READER].list_tasks(task_query(request, query))
    except InvalidCursor:
        raise Unprocessable("invalid cursor", {"field": "cursor", "in": "query"}) from None
    return json_response(page)


@routes.get("/tasks/count")
@endpoint("Count tasks matching the filters", "viewer", query=TaskCountQuery,
          response=TaskCount, errors=(422, 503))
async def count_tasks(request: web.Request) -> web.Response:
    query = parse_query(request, TaskCountQuery)
    return json_response(await request.app[READER].count_tasks(task_query(request, query)))


@routes.get("/tasks/{task_id}")
@endpoint("One task: record, progress, timeline, children", "viewer", response=TaskDetail,
          errors=(404, 503))
async def show_task(request: web.Request) -> web.Response:
    task_id = request.match_info["task_id"]
    found = await request.app[READER].task_detail(task_id)
    if found is None:
        # Just enqueued and not recorded by the collector yet: PENDING (producer_api/enqueued.py)
        pending = await enqueued_record(request.app[REDIS], request.app[KEYS], task_id)
        if pending is None:
            raise NotFound(f"no task {task_id!r}", {"id": task_id})
        return json_response(TaskDetail(**msgspec.structs.asdict(pending)))
    record, timeline, children = found
    detail = TaskDetail(**msgspec.structs.asdict(record), timeline=timeline, children=children)
    return json_response(detail)


@routes.get("/tasks/{task_id}/events")
@endpoint("A task's events, oldest first", "viewer", response=TaskEvents, errors=(404, 503))
async def task_events(request: web.Request) -> web.Response:
    task_id = request.match_info["task_id"]
    reader = request.app[READER]
    events = await reader.timeline(task_id)
    if (not events and await reader.get_task(task_id) is None
            and await enqueued_record(request.app[REDIS], request.app[KEYS], task_id) is None):
        raise NotFound(f"no task {task_id!r}", {"id": task_id})
    return json_response(TaskEvents(task_id=task_id, events=events))


@routes.post("/tasks/{task_id}/revoke")
@endpoint("Revoke a task (terminate: also kill it if running)", "admin", body=RevokeRequest,
          response=RevokeResponse, status=202, errors=(400, 404, 413, 422, 503))
async def revoke_task(request: web.Request) -> web.Response:
    task_id = request.match_info["task_id"]
    req = await read_body(request, RevokeRequest, optional=True)
    record = await request.app[READER].get_task(task_id) or await enqueued_record(
        request.app[REDIS], request.app[KEYS], task_id)
    if record is None:
        raise NotFound(f"no task {task_id!r}", {"id": task_id})
    await request.app[PUBLISHER].revoke(task_id, req.terminate, req.signal)
    detail = msgspec.json.encode(req).decode()
    event = audit_event(actor(request), "revoke", task_id, record.name or "", detail)
    await append_audit(request.app[REDIS], request.app[STREAM], [event])
    return json_response(RevokeResponse(id=task_id, terminate=req.terminate), status=202)


@routes.post("/tasks/{task_id}/retry")
@endpoint("Re-send a failed task with its arguments; the new task's parent is the old one",
          "operator", response=EnqueueResponse, status=202, errors=(404, 409, 413, 422, 503),
          links={"task_id": "id"})
async def retry_task(request: web.Request) -> web.Response:
    task_id = request.match_info["task_id"]
    record = await request.app[READER].get_task(task_id) or await enqueued_record(
        request.app[REDIS], request.app[KEYS], task_id)
    if record is None:
        raise NotFound(f"no task {task_id!r}", {"id": task_id})
    enqueuer = request.app[ENQUEUER]
    resolved = resolve_retry(enqueuer, record)
    [response] = await enqueuer.enqueue([resolved], actor(request), action="retry")
    count_enqueued(request, [response])
    return json_response(response, status=202, headers={"Location": response.url})
