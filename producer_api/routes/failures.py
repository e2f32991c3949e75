"""Failures by group, and actions on every task a filter matches (retry, revoke).

A bulk action walks the same listing as ``GET /tasks`` (its filters, newest first, a cursor), so
what a dry run counts is what a real run acts on; a real run does one bounded chunk per request
and hands back the cursor, so no request holds the API for long and an operator can stop.
Every real run is audited twice: once as the bulk action (its filter, by whom) and once per task
(as the single-task routes do).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from event_collector.events import READY_STATES
from event_collector.read import InvalidCursor, TaskQuery
from event_collector.records import FailurePage, TaskRecord
from producer_api.audit import append_audit, audit_event
from producer_api.bulk_schemas import BulkItem, BulkRequest, BulkResponse, FailuresQuery
from producer_api.errors import ApiError, Unprocessable
from producer_api.http import endpoint, json_response, parse_query, read_body
from producer_api.resources import ENQUEUER, PUBLISHER, READER, REDIS, STREAM
from producer_api.retries import RETRYABLE_STATES, resolve_retry
from producer_api.routes.tasks import actor, count_enqueued, task_query

routes = web.RouteTableDef()
# The first ids a dry run shows: enough to recognise the tasks, not a listing.
DRY_RUN_IDS = 20
_BAD_CURSOR = {"field": "cursor", "in": "body"}


@routes.get("/failures")
@endpoint("Failure groups (same exception type and masked message), last seen first",
          "viewer", query=FailuresQuery, response=FailurePage, errors=(422, 503))
async def list_failures(request: web.Request) -> web.Response:
    query = parse_query(request, FailuresQuery)
    try:
        page = await request.app[READER].failure_groups(query.limit, query.cursor)
    except InvalidCursor:
        raise Unprocessable("invalid cursor", {"field": "cursor", "in": "query"}) from None
    return json_response(page)


@routes.post("/tasks/bulk/retry")
@endpoint("Re-send every failed task a filter matches (dry run by default; resumable)",
          "operator", body=BulkRequest, response=BulkResponse, errors=(400, 413, 422, 503))
async def bulk_retry(request: web.Request) -> web.Response:
    req = await read_body(request, BulkRequest, optional=True)
    state = req.filter.state or _default_retry_state(req)
    if state is not None and state not in RETRYABLE_STATES:
        raise Unprocessable(
            f"only {', '.join(sorted(RETRYABLE_STATES))} tasks retry",
            {"field": "filter.state", "in": "body"},
        )
    query = task_query(request, req.filter, state=state, limit=req.limit, cursor=req.cursor)
    if req.dry_run:
        return json_response(await _dry_run(request, "retry", query))
    page, records = await _chunk(request, query)
    enqueuer = request.app[ENQUEUER]
    resolved, items, skipped = [], [], 0
    for record in records:
        if record.state not in RETRYABLE_STATES:
            skipped += 1  # its state changed since it was listed
            continue
        try:
            resolved.append(resolve_retry(enqueuer, record))
        except ApiError as exc:
            items.append(BulkItem(id=record.id, error=exc.message))
    responses = await enqueuer.enqueue(resolved, actor(request), action="retry")
    count_enqueued(request, responses)
    items += [BulkItem(id=r.parent_id or "", new_id=r.id) for r in responses]
    await _audit_bulk(request, "retry", req, len(responses))
    return json_response(BulkResponse(
        action="retry", dry_run=False, ids=[r.parent_id or "" for r in responses], items=items,
        skipped=skipped, next_cursor=page,
    ))


@routes.post("/tasks/bulk/revoke")
@endpoint("Revoke every unfinished task a filter matches (dry run by default; resumable)",
          "admin", body=BulkRequest, response=BulkResponse, errors=(400, 413, 422, 503))
async def bulk_revoke(request: web.Request) -> web.Response:
    req = await read_body(request, BulkRequest, optional=True)
    query = task_query(request, req.filter, limit=req.limit, cursor=req.cursor)
    if req.dry_run:
        return json_response(await _dry_run(request, "revoke", query))
    page, records = await _chunk(request, query)
    chosen = [r for r in records if r.state not in READY_STATES]
    ids = [r.id for r in chosen]
    if ids:
        await request.app[PUBLISHER].revoke_many(ids, terminate=False, signal="SIGTERM")
        who = actor(request)
        await append_audit(request.app[REDIS], request.app[STREAM], [
            audit_event(who, "revoke", r.id, r.name or "", '{"bulk":true}') for r in chosen
        ])
    await _audit_bulk(request, "revoke", req, len(ids))
    return json_response(BulkResponse(
        action="revoke", dry_run=False, ids=ids, items=[BulkItem(id=i) for i in ids],
        skipped=len(records) - len(chosen), next_cursor=page,
    ))


def _default_retry_state(req: BulkRequest) -> str | None:
    """FAILURE, unless an exception or fingerprint filter already picks failed tasks: then
    the walk stays on the failure index alone, and a dry run counts exactly at any size."""
    f = req.filter
    return None if f.exception is not None or f.fingerprint is not None else "FAILURE"


async def _dry_run(request: web.Request, action: str, query: TaskQuery) -> BulkResponse:
    reader = request.app[READER]
    try:
        count = await reader.count_tasks(query)
        shown = min(query.limit, DRY_RUN_IDS)
        page = await reader.list_tasks(msgspec.structs.replace(query, limit=shown))
    except InvalidCursor:
        raise Unprocessable("invalid cursor", _BAD_CURSOR) from None
    return BulkResponse(
        action=action,  # type: ignore[arg-type]
        dry_run=True, ids=[t.id for t in page.items], matched=count.count, exact=count.exact,
    )


async def _chunk(request: web.Request, query: TaskQuery) -> tuple[str | None, list[TaskRecord]]:
    """The next matching tasks (each once, even if the walk met one twice) and the cursor
    after them; None when the walk reached the end."""
    reader = request.app[READER]
    try:
        page = await reader.list_tasks(query)
    except InvalidCursor:
        raise Unprocessable("invalid cursor", _BAD_CURSOR) from None
    ids = list(dict.fromkeys(t.id for t in page.items))
    records = [r for r in await reader.get_tasks(ids) if r is not None]
    return page.next_cursor, records


async def _audit_bulk(request: web.Request, action: str, req: BulkRequest, done: int) -> None:
    detail = msgspec.json.encode(
        {"filter": req.filter, "limit": req.limit, "cursor": req.cursor, "acted_on": done}
    ).decode()
    event = audit_event(actor(request), f"bulk-{action}", "", "", detail)
    await append_audit(request.app[REDIS], request.app[STREAM], [event])
