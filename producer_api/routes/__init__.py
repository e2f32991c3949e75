"""One RouteTableDef per resource. ``API_TABLES`` are served under ``/api/v1``; ``ROOT_TABLES``
(health, readiness, metrics, the spec and its docs page) at the root, where probes and
Prometheus look for them."""

from __future__ import annotations

from producer_api.console import routes as console
from producer_api.routes import (
    catalog,
    events,
    failures,
    fleet,
    health,
    lifecycle,
    queue_ops,
    schedules,
    stats,
    tasks,
    tokens,
    workflows,
)

API_PREFIX = "/api/v1"
# failures first: its /tasks/bulk/... must match before tasks' /tasks/{task_id}/...
API_TABLES = (failures.routes, tasks.routes, stats.routes, events.routes, catalog.routes,
              tokens.routes, workflows.routes, schedules.routes, lifecycle.routes, fleet.routes,
              queue_ops.routes, console.api)
# Contexts of the event/workflow/schedule/lifecycle/console routes: they run after the API's own.
EXTRA_CTX = (events.ctx, workflows.ctx, schedules.ctx, lifecycle.ctx, console.ctx)
ON_SHUTDOWN = (events.end_streams,)
# The web console (/ui) is served at the root too; its pages are not API routes.
ROOT_TABLES = (health.routes, console.ui)
