"""One RouteTableDef per resource. ``API_TABLES`` are served under ``/api/v1``; ``ROOT_TABLES``
(health, readiness, metrics, the spec and its docs page) at the root, where probes and
Prometheus look for them."""

from __future__ import annotations

from producer_api.routes import catalog, events, health, stats, tasks, tokens

API_PREFIX = "/api/v1"
API_TABLES = (tasks.routes, stats.routes, events.routes, catalog.routes, tokens.routes)
ROOT_TABLES = (health.routes,)
