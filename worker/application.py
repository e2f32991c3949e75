"""The Celery app factory: every Celery setting, derived from one ``WorkerSettings``."""

from __future__ import annotations

from typing import Any

from celery import Celery

from event_collector.broker import REDIS_PRIORITY_SEPARATOR, REDIS_PRIORITY_STEPS
from worker.broker import transport_for
from worker.config import WorkerSettings
from worker.routing import AMQP_MAX_PRIORITY, TaskRouter, declare_queues, priority_value
from worker.schedule import beat_schedule
from worker.tasks import register_tasks


class TaskpulseCelery(Celery):
    """A Celery app that carries its settings, so tasks read them instead of the environment."""

    def __init__(self, settings: WorkerSettings) -> None:
        super().__init__("taskpulse")
        self.settings = settings


def create_app(settings: WorkerSettings) -> TaskpulseCelery:
    app = TaskpulseCelery(settings)
    app.conf.update(celery_config(settings))
    register_tasks(app, settings)
    return app


def celery_config(settings: WorkerSettings) -> dict[str, Any]:
    kind = settings.broker_kind
    default_priority = priority_value(kind, settings.default_priority)
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.backend_url,
        **_broker_connection(settings.broker_url),
        "broker_transport_options": _transport_options(kind),
        "timezone": settings.timezone,
        "enable_utc": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Events for the collector: sent (producer side), received/started/… (worker side).
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        # A task is acknowledged when it finished, and a worker killed mid-task hands it back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # With acks_late a process holds one message at a time: long tasks do not hoard work
        # and priorities decide what runs next.
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        "result_expires": settings.result_expires,
        # POST /workers/{hostname}/pool {"restart": true}: Celery refuses pool_restart without it.
        "worker_pool_restarts": settings.pool_restarts,
        # Name, args and queue in the result too: failed tasks can be re-sent from it.
        "result_extended": True,
        "task_soft_time_limit": settings.soft_time_limit,
        "task_time_limit": settings.time_limit,
        "task_queues": declare_queues(kind),
        "task_default_queue": "default",
        "task_default_exchange": "default",
        "task_default_routing_key": "default",
        "task_routes": (TaskRouter(default_priority),),
        "task_default_priority": default_priority,
        "task_queue_max_priority": AMQP_MAX_PRIORITY if kind == "amqp" else None,
        "beat_schedule": beat_schedule(),
        # Beat keeps the schedule in Redis (seeded once from beat_schedule), editable at runtime
        # through the API, with one active beat at a time: see worker.dynamic_schedule.
        "beat_scheduler": "worker.dynamic_schedule:SeededRedBeatScheduler",
    }


def _broker_connection(broker_url: str) -> dict[str, Any]:
    """A worker outlives a broker restart: it reconnects, however long the broker is away."""
    settings: dict[str, Any] = {
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        # Celery gives up after 100 attempts (~50 min at its 30 s cap) and the worker exits; a
        # supervisor would only start it again into the same outage, so keep retrying instead.
        "broker_connection_max_retries": None,
    }
    if transport := transport_for(broker_url):
        # kombu 5.7's Redis transport ends the worker on a connection lost while a message is
        # unacknowledged (AttributeError 'hostname', see worker.broker); ours reconnects.
        settings["broker_transport"] = transport
    return settings


def _transport_options(kind: str) -> dict[str, Any]:
    if kind != "redis":
        return {}
    # Spelled out (they are kombu's defaults) because routing.PRIORITIES and the collector's
    # queue-length sum depend on exactly these lists.
    return {"priority_steps": list(REDIS_PRIORITY_STEPS), "sep": REDIS_PRIORITY_SEPARATOR}
