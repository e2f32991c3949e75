"""Schedules: beat's periodic tasks, read by viewers and changed by admins at runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from producer_api.audit import append_audit, audit_event
from producer_api.http import endpoint, json_response, read_body
from producer_api.middleware import ACTOR
from producer_api.resources import CATALOG, KEYS, REDIS, SETTINGS, STREAM
from producer_api.schedule_schemas import Schedule, ScheduleCreate, ScheduleList, SchedulePatch
from producer_api.schedule_store import ScheduleStore, schedule_app

routes = web.RouteTableDef()
SCHEDULES = web.AppKey("schedules", ScheduleStore)


async def ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    celery_app = schedule_app(
        settings.redis_url, app[KEYS], settings.timezone,
        settings.redis_timeout_seconds,
    )  # fmt: skip
    app[SCHEDULES] = ScheduleStore(celery_app, app[CATALOG])
    yield
    app[SCHEDULES].close()


async def _audit(request: web.Request, action: str, name: str, change: object) -> None:
    detail = msgspec.json.encode({"schedule": name, "change": change}).decode()
    event = audit_event(request[ACTOR].name, action, detail=detail)
    await append_audit(request.app[REDIS], request.app[STREAM], [event])


@routes.get("/schedules")
@endpoint(
    "List beat's periodic tasks with their last and next run",
    "viewer",
    response=ScheduleList,
    errors=(503,),
    tag="schedules",
)
async def list_schedules(request: web.Request) -> web.Response:
    return json_response(ScheduleList(items=await request.app[SCHEDULES].list()))


@routes.post("/schedules")
@endpoint(
    "Add a periodic task (interval or crontab)",
    "admin",
    body=ScheduleCreate,
    response=Schedule,
    status=201,
    errors=(400, 409, 422, 503),
    tag="schedules",
)
async def create_schedule(request: web.Request) -> web.Response:
    req = await read_body(request, ScheduleCreate)
    created = await request.app[SCHEDULES].create(req)
    await _audit(request, "schedule-create", req.name, req)
    return json_response(created, status=201, headers={"Location": f"schedules/{req.name}"})


@routes.get("/schedules/{name}")
@endpoint("One periodic task", "viewer", response=Schedule, errors=(404, 503), tag="schedules")
async def get_schedule(request: web.Request) -> web.Response:
    return json_response(await request.app[SCHEDULES].get(request.match_info["name"]))


@routes.patch("/schedules/{name}")
@endpoint(
    "Change a periodic task; enabled=false pauses it, true resumes it",
    "admin",
    body=SchedulePatch,
    response=Schedule,
    errors=(400, 404, 422, 503),
    tag="schedules",
)
async def patch_schedule(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    patch = await read_body(request, SchedulePatch)
    changed = await request.app[SCHEDULES].patch(name, patch)
    await _audit(request, "schedule-change", name, patch)
    return json_response(changed)


@routes.delete("/schedules/{name}")
@endpoint("Remove a periodic task", "admin", status=204, errors=(404, 503), tag="schedules")
async def delete_schedule(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await request.app[SCHEDULES].delete(name)
    await _audit(request, "schedule-delete", name, None)
    return web.Response(status=204)
