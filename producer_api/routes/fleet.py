"""Operating the fleet: worker pools, consumers, shutdown, and task-type limits.

Every route speaks Celery's remote control (``producer_api.control``) and answers per worker;
workers that stay silent are listed in ``no_reply``, never an error. Each action is audited.
"""

from __future__ import annotations

import time
from typing import Any, Final

import msgspec
from aiohttp import web

from event_collector.fleet import TaskLimits, limit_commands
from producer_api.audit import append_audit, audit_event
from producer_api.control import ALL_WORKERS, ControlResult, WorkerReply, destination_of, result_of
from producer_api.errors import Conflict, Unprocessable
from producer_api.fleet_schemas import (
    ConsumerChange,
    LimitsApplied,
    LimitsInForce,
    LimitsUpdate,
    PoolChange,
    TaskLimitsView,
)
from producer_api.http import endpoint, json_response, read_body
from producer_api.middleware import ACTOR
from producer_api.resources import CATALOG, CONTROL, FLEET, READER, REDIS, STREAM

routes = web.RouteTableDef()
TAG: Final = "fleet"
HOSTNAME_MAX: Final = 255
# Celery's answer to pool_restart when the worker's worker_pool_restarts is off.
_RESTARTS_OFF: Final = "Pool restarts not enabled"
_LIMIT_FIELDS: Final = ("rate_limit", "soft_time_limit", "time_limit")


def hostname_of(request: web.Request) -> str:
    hostname = request.match_info["hostname"]
    if not hostname or len(hostname) > HOSTNAME_MAX:
        raise Unprocessable(f"a worker hostname is 1-{HOSTNAME_MAX} characters, or * for all",
                            {"field": "hostname", "in": "path"})
    return hostname


async def expected_workers(request: web.Request, hostname: str) -> list[str]:
    """Who should answer: the named worker, or for ``*`` every worker the store counts alive."""
    if hostname != ALL_WORKERS:
        return [hostname]
    return [w.hostname for w in await request.app[READER].workers() if w.alive]


async def control(request: web.Request, hostname: str, command: str,
                  arguments: dict[str, Any]) -> ControlResult:
    expected = await expected_workers(request, hostname)
    return await request.app[CONTROL].command(command, arguments, destination_of(hostname),
                                              expected)


async def audit(request: web.Request, action: str, target: str, detail: Any) -> None:
    event = audit_event(request[ACTOR].name, action, "", target,
                        msgspec.json.encode(detail).decode())
    await append_audit(request.app[REDIS], request.app[STREAM], [event])


def _only_one(change: msgspec.Struct, what: str) -> str:
    given = [f for f in change.__struct_fields__ if getattr(change, f) is not None]
    if len(given) != 1:
        fields = ", ".join(change.__struct_fields__)
        raise Unprocessable(f"give exactly one of {fields} ({what}); got {len(given)}",
                            {"field": "", "in": "body", "allowed": list(change.__struct_fields__)})
    return given[0]


def _pool_command(change: PoolChange) -> tuple[str, dict[str, Any]]:
    field = _only_one(change, "how to change the pool")
    if field == "autoscale":
        assert change.autoscale is not None
        if change.autoscale.min > change.autoscale.max:
            raise Unprocessable("autoscale min is above max",
                                {"field": "autoscale.min", "in": "body"})
        return "autoscale", {"max": change.autoscale.max, "min": change.autoscale.min}
    if field == "restart":
        if change.restart is not True:
            raise Unprocessable("restart must be true", {"field": "restart", "in": "body"})
        return "pool_restart", {"reload": False}
    return f"pool_{field}", {"n": getattr(change, field)}


def _explain_restart(result: ControlResult) -> ControlResult:
    def explain(reply: WorkerReply) -> WorkerReply:
        if reply.error and _RESTARTS_OFF in reply.error:
            return WorkerReply(error=f"{_RESTARTS_OFF} on this worker: its Celery setting "
                               "worker_pool_restarts is off (taskpulse workers turn it on "
                               "unless TASKPULSE_POOL_RESTARTS=0)")
        return reply

    return ControlResult({h: explain(r) for h, r in result.workers.items()}, result.no_reply)


@routes.post("/workers/{hostname}/pool")
@endpoint("Grow, shrink, autoscale or restart a worker's pool (`*`: every worker)", "admin",
          body=PoolChange, response=ControlResult, errors=(400, 413, 422, 503), tag=TAG)
async def change_pool(request: web.Request) -> web.Response:
    hostname = hostname_of(request)
    change = await read_body(request, PoolChange)
    command, arguments = _pool_command(change)
    result = await control(request, hostname, command, arguments)
    if command == "pool_restart":
        result = _explain_restart(result)
    await audit(request, "worker-pool", hostname, {"change": change, "no_reply": result.no_reply})
    return json_response(result)


@routes.post("/workers/{hostname}/consumers")
@endpoint("Start (`add`) or stop (`cancel`) consuming a queue on a worker (`*`: every worker)",
          "admin", body=ConsumerChange, response=ControlResult,
          errors=(400, 409, 413, 422, 503), tag=TAG)
async def change_consumers(request: web.Request) -> web.Response:
    hostname = hostname_of(request)
    change = await read_body(request, ConsumerChange)
    field = _only_one(change, "a queue to add or cancel")
    queue = request.app[CATALOG].known_queue(getattr(change, field), field)
    if field == "add" and queue in await request.app[FLEET].paused():
        # Consuming it here would run a paused queue while it still shows paused.
        raise Conflict(f"queue {queue} is paused; resume it (POST /queues/{queue}/resume)",
                       {"queue": queue, "paused": True})
    command = "add_consumer" if field == "add" else "cancel_consumer"
    result = await control(request, hostname, command, {"queue": queue})
    await audit(request, "worker-consumers", hostname,
                {"change": change, "no_reply": result.no_reply})
    return json_response(result)


@routes.post("/workers/{hostname}/shutdown")
@endpoint("Shut a worker down warmly: it finishes its running tasks, then exits (`*`: every "
          "worker). Workers answering a ping first are listed as told", "admin",
          response=ControlResult, errors=(422, 503), tag=TAG)
async def shutdown(request: web.Request) -> web.Response:
    hostname = hostname_of(request)
    expected = await expected_workers(request, hostname)
    control_ = request.app[CONTROL]
    # A worker that shuts down cannot answer the command itself: a ping says who is there.
    answered = await control_.ask("ping", {}, destination_of(hostname), expected)
    await control_.cast("shutdown", {"msg": f"shutdown by {request[ACTOR].name} via the API"},
                        destination_of(hostname))
    result = result_of({h: WorkerReply(ok="shutdown requested") for h in answered}, expected)
    await audit(request, "worker-shutdown", hostname,
                {"told": sorted(answered), "no_reply": result.no_reply})
    return json_response(result)


# ------------------------------------------------------------------ task-type limits


def _in_force(limits: TaskLimits) -> LimitsInForce:
    return LimitsInForce(limits.rate_limit, limits.soft_time_limit, limits.time_limit)


def parse_registered(entries: Any, name: str) -> LimitsInForce | None:
    """One task's line of Celery's ``registered`` inspect reply with task info items:
    ``"demo.test_task [rate_limit=6/m time_limit=60.0]"`` (items that are None left out)."""
    for entry in entries if isinstance(entries, list) else ():
        task, _, info = str(entry).partition(" [")
        if task != name:
            continue
        items = dict(item.partition("=")[::2] for item in info.rstrip("]").split() if "=" in item)
        soft, hard = items.get("soft_time_limit"), items.get("time_limit")
        return LimitsInForce(
            rate_limit=items.get("rate_limit"),
            soft_time_limit=float(soft) if soft else None,
            time_limit=float(hard) if hard else None,
        )
    return None


@routes.get("/catalog/{name}/limits")
@endpoint("A task type's rate and time limits: as set through the API, and as in force on each "
          "worker now", "viewer", response=TaskLimitsView, errors=(422, 503), tag="catalog")
async def show_limits(request: web.Request) -> web.Response:
    name = request.app[CATALOG].known_task(request.match_info["name"], "name").name
    desired = await request.app[FLEET].limits(name)
    expected = await expected_workers(request, ALL_WORKERS)
    replies = await request.app[CONTROL].ask(
        "registered", {"taskinfoitems": list(_LIMIT_FIELDS)}, None, expected)
    workers = {host: found for host, entries in sorted(replies.items())
               if (found := parse_registered(entries, name)) is not None}
    return json_response(TaskLimitsView(
        name=name, desired=_in_force(desired) if desired else None,
        set_by=desired.set_by if desired else None, set_at=desired.set_at if desired else None,
        workers=workers,
        no_reply=sorted(set(expected) - set(replies)),
    ))


def _checked(update: LimitsUpdate) -> TaskLimits:
    soft, hard = update.soft_time_limit, update.time_limit
    if (soft is None) != (hard is None):
        missing = "time_limit" if hard is None else "soft_time_limit"
        raise Unprocessable("soft_time_limit and time_limit go together (Celery sets both at "
                            "once)", {"field": missing, "in": "body"})
    if soft is not None and hard is not None and soft > hard:
        raise Unprocessable("soft_time_limit is above time_limit: the hard limit would never "
                            "arm", {"field": "soft_time_limit", "in": "body"})
    rate = update.rate_limit if update.rate_limit and float(
        update.rate_limit.partition("/")[0]) > 0 else None
    return TaskLimits(rate_limit=rate, soft_time_limit=soft, time_limit=hard)


def _merge(first: ControlResult, second: ControlResult) -> ControlResult:
    """Two commands' replies as one per worker: its errors if any, else its oks."""
    merged: dict[str, WorkerReply] = {}
    for host in first.workers.keys() | second.workers.keys():
        replies = [r for r in (first.workers.get(host), second.workers.get(host)) if r]
        errors = [r.error for r in replies if r.error]
        merged[host] = (WorkerReply(error="; ".join(errors)) if errors
                        else WorkerReply(ok="; ".join(r.ok or "" for r in replies)))
    return result_of(merged, sorted(set(first.no_reply) | set(second.no_reply)))


async def apply_limits(request: web.Request, name: str, limits: TaskLimits) -> ControlResult:
    (command, arguments), *more = limit_commands(name, limits)  # a rate limit (maybe none) first
    result = await control(request, ALL_WORKERS, command, arguments)
    for command, arguments in more:
        result = _merge(result, await control(request, ALL_WORKERS, command, arguments))
    return result


@routes.put("/catalog/{name}/limits")
@endpoint("Put rate and time limits in force for a task type on every worker, and keep them for "
          "workers that come online later", "operator", body=LimitsUpdate,
          response=LimitsApplied, errors=(400, 413, 422, 503), tag="catalog")
async def set_limits(request: web.Request) -> web.Response:
    name = request.app[CATALOG].known_task(request.match_info["name"], "name").name
    update = await read_body(request, LimitsUpdate)
    limits = msgspec.structs.replace(_checked(update), set_by=request[ACTOR].name,
                                     set_at=time.time())
    # Stored first: a worker coming online during the broadcast gets them from the collector.
    await request.app[FLEET].set_limits(name, limits)
    result = await apply_limits(request, name, limits)
    desired = _in_force(limits)
    await audit(request, "task-limits", name, {"limits": desired, "no_reply": result.no_reply})
    return json_response(LimitsApplied(name=name, desired=desired, workers=result.workers,
                                       no_reply=result.no_reply))
