"""The API's own request metrics, on a registry passed in (one per app, so tests stay isolated)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Enqueue and reads are expected in the low milliseconds; the tail buckets catch broker stalls.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # ``route`` is the route template (``/api/v1/tasks/{task_id}``), never a raw path, so
        # label cardinality stays bounded.
        self.requests = Counter(
            "taskpulse_api_requests",
            "HTTP requests handled by the producer API.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "taskpulse_api_request_duration_seconds",
            "Time to handle a request (until the response starts, for streams).",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.enqueued = Counter(
            "taskpulse_api_tasks_enqueued",
            "Tasks handed to the broker through the API.",
            ["name", "queue"],
            registry=registry,
        )
