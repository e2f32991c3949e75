"""Workflows: send a chain/group/chord of catalog tasks; show any workflow as a tree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import redis
from aiohttp import web
from kombu.exceptions import OperationalError

from event_collector.workflows import WorkflowReader, WorkflowTree, record_chord_bodies
from producer_api.audit import append_audit, audit_event
from producer_api.enqueued import enqueued_record, pending_tree
from producer_api.errors import NotFound, Unavailable
from producer_api.http import endpoint, json_response, read_body
from producer_api.middleware import ACTOR
from producer_api.resources import CATALOG, ENQUEUER, KEYS, REDIS, SETTINGS, STREAM
from producer_api.workflow_canvas import WorkflowPublisher, workflow_app
from producer_api.workflow_schemas import WorkflowRequest, WorkflowResponse
from producer_api.workflow_shape import chord_bodies

routes = web.RouteTableDef()
WORKFLOWS = web.AppKey("workflows", WorkflowPublisher)
TREES = web.AppKey("trees", WorkflowReader)


async def ctx(app: web.Application) -> AsyncIterator[None]:
    """Runs after the API's own contexts: it needs their Redis pool and enqueuer."""
    settings = app[SETTINGS]
    celery_app = workflow_app(
        settings.broker_url, settings.backend_url, app[CATALOG],
        settings.broker_timeout_seconds, settings.publish_threads,
    )  # fmt: skip
    app[WORKFLOWS] = WorkflowPublisher(celery_app, app[ENQUEUER])
    app[TREES] = WorkflowReader(app[REDIS], app[KEYS])
    yield
    app[WORKFLOWS].close()


@routes.post("/workflows")
@endpoint(
    "Send a chain, group or chord of catalog tasks",
    "operator",
    body=WorkflowRequest,
    response=WorkflowResponse,
    status=202,
    errors=(400, 413, 422, 503),
    tag="workflows",
    links={"task_id": "root_id"},
)
async def send_workflow(request: web.Request) -> web.Response:
    req = await read_body(request, WorkflowRequest)  # absurd nesting: 422 from read_body
    publisher = request.app[WORKFLOWS]
    planned = publisher.plan(req)
    try:
        await record_chord_bodies(request.app[REDIS], request.app[KEYS],
                                  planned.response.root_id, chord_bodies(planned.canvas))
        await publisher.send(planned)
    except (OperationalError, redis.RedisError, OSError) as exc:
        raise Unavailable("the broker or result backend is unreachable", str(exc)) from exc
    response = planned.response
    await append_audit(
        request.app[REDIS], request.app[STREAM],
        [audit_event(request[ACTOR].name, "workflow", response.root_id, "",
                     msgspec.json.encode(response).decode())],
    )  # fmt: skip
    return json_response(response, status=202, headers={"Location": response.url})


@routes.get("/tasks/{task_id}/tree")
@endpoint(
    "A task's whole workflow as a tree, with a roll-up state",
    "viewer",
    response=WorkflowTree,
    errors=(404, 503),
    tag="workflows",
)
async def task_tree(request: web.Request) -> web.Response:
    task_id = request.match_info["task_id"]
    tree = await request.app[TREES].tree(task_id)
    if tree is None:
        # Just enqueued and not recorded by the collector yet: PENDING (producer_api/enqueued.py)
        pending = await enqueued_record(request.app[REDIS], request.app[KEYS], task_id)
        if pending is None:
            raise NotFound(f"no task or workflow {task_id!r} is known")
        tree = pending_tree(pending)
    return json_response(tree)
