"""Queues, task routes and message priorities.

Routing is by task name, fixed for everyone: ``finance.*`` → ``finance``; ``reports.*`` and
``exports.*`` → ``reports``; ``notifications.send_notification_email`` → ``email``; anything else
→ ``default``.

Priorities are four levels, ``low|normal|high|critical`` (1-4 in the API). The brokers read the
number on a message in opposite directions, so each broker kind has its own mapping:

- **Redis** (kombu's emulation): a queue is several lists, one per *priority step*
  (``q``, ``q\\x06\\x163``, ``q\\x06\\x166``, ``q\\x06\\x169``), and the worker's BRPOP names
  them in step order, so a **lower** number is consumed first; 0 is the most urgent. A message
  without a priority counts as 0 — which is why every route below carries the default
  ("normal") priority: otherwise an unprioritised task would jump ahead of everything. The
  four levels map to the four steps, so no two levels share a list.
- **RabbitMQ**: native priority queues (``x-max-priority``), a **higher** number is delivered
  first and a message without a priority counts as 0, i.e. lowest. ``x-max-priority`` is 4, the
  highest level we use: RabbitMQ keeps one internal sub-queue per possible priority, so a
  smaller maximum is cheaper.
"""

from __future__ import annotations

from typing import Any, Final

from kombu import Queue

from event_collector.broker import (
    PRIORITY_LEVELS,
    REDIS_PRIORITY_STEPS,
    BrokerKind,
    declare_queue,
)

QUEUES: Final[tuple[str, ...]] = ("default", "finance", "reports", "email")
AMQP_MAX_PRIORITY: Final = len(PRIORITY_LEVELS)

PRIORITIES: Final[dict[str, dict[str, int]]] = {
    # one level per priority step (event_collector.broker): low 9, normal 6, high 3, critical 0
    "redis": dict(zip(PRIORITY_LEVELS, reversed(REDIS_PRIORITY_STEPS), strict=True)),
    # low 1, normal 2, high 3, critical 4
    "amqp": {level: number for number, level in enumerate(PRIORITY_LEVELS, start=1)},
}

_QUEUE_BY_DOMAIN: Final[dict[str, str]] = {
    "finance": "finance",
    "reports": "reports",
    "exports": "reports",
}
_QUEUE_BY_NAME: Final[dict[str, str]] = {"notifications.send_notification_email": "email"}


def queue_for(task_name: str) -> str:
    """The queue a task is routed to by name."""
    if task_name in _QUEUE_BY_NAME:
        return _QUEUE_BY_NAME[task_name]
    return _QUEUE_BY_DOMAIN.get(task_name.partition(".")[0], "default")


def priority_value(broker_kind: str, level: str) -> int:
    """The number to put on a message for ``level`` on ``broker_kind`` (``redis``/``amqp``)."""
    return PRIORITIES[broker_kind][level]


def declare_queues(kind: BrokerKind) -> tuple[Queue, ...]:
    return tuple(declare_queue(name, kind, AMQP_MAX_PRIORITY) for name in QUEUES)


class TaskRouter:
    """Celery router: queue by name, plus the default priority unless the sender chose one.

    Celery merges a route under the sender's options (a priority given to ``apply_async`` or
    ``send_task`` wins), so this is how ``send_task`` — which ignores ``task_default_priority`` —
    still gets the default priority.
    """

    def __init__(self, default_priority: int) -> None:
        self.default_priority = default_priority

    def __call__(self, name: str, args: Any, kwargs: Any, options: Any, **_: Any) -> dict[str, Any]:
        return {"queue": queue_for(name), "priority": self.default_priority}
