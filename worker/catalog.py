"""The task catalog as data: what the producer API may enqueue, and how.

``python -m worker catalog > producer_api/catalog.json`` writes it; the API reads that file and
never imports worker code. Format (JSON object)::

    {
      "version": 1,
      "queues": ["default", "finance", "reports", "email"],
      "priorities": {
        "levels": ["low", "normal", "high", "critical"],   # API levels 1..4, in this order
        "default": "normal",                                # used when a request gives none
        "redis": {"low": 9, "normal": 6, "high": 3, "critical": 0},
        "amqp":  {"low": 1, "normal": 2, "high": 3, "critical": 4}
      },
      "tasks": [
        {
          "name": "exports.export_data",
          "queue": "reports",
          "description": "Write every row of one table to a new CSV or JSON file; ...",
          "parameters": [
            {"name": "kind", "type": "Literal['users', ...]", "required": false,
             "default": "bills", "schema": {"enum": [...]}},
            ...
          ],
          "returns": {"type": "object"}
        },
        ...
      ]
    }

``priorities.redis`` / ``priorities.amqp`` are the numbers to pass as ``priority=`` to
``send_task`` for the broker kind in use (``redis://`` vs ``amqp://``); the two brokers order
priorities in opposite directions (see ``worker.routing``). A parameter's ``schema`` is the JSON
Schema of its annotation, constraints included (validate kwargs with it; the worker checks
every call against the same annotation); ``default`` is present only when the parameter is
optional. ``returns`` is the JSON Schema of the task's return annotation. Parameters are given
in positional order, so ``args`` map onto them too.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import msgspec
from celery import Celery

from event_collector.broker import PRIORITY_LEVELS
from worker.config import WorkerSettings
from worker.routing import PRIORITIES, QUEUES, queue_for
from worker.tasks import task_names
from worker.tasks.base import parameters

CATALOG_VERSION = 1


def build_catalog(app: Celery) -> dict[str, Any]:
    """The catalog of ``app``'s taskpulse tasks (Celery's own ``celery.*`` tasks excluded)."""
    return {
        "version": CATALOG_VERSION,
        "queues": list(QUEUES),
        "priorities": {
            "levels": list(PRIORITY_LEVELS),
            "default": WorkerSettings().default_priority,
            **PRIORITIES,
        },
        "tasks": [describe_task(name, app.tasks[name]) for name in sorted(task_names())],
    }


def describe_task(name: str, task: Any) -> dict[str, Any]:
    fn = type(task).__wrapped__  # the plain function Celery built the task class from
    return {
        "name": name,
        "queue": queue_for(name),
        "description": _summary(fn.__doc__ or ""),
        "parameters": [_describe_parameter(p, hint) for p, hint in parameters(fn)],
        # What the task returns: a workflow step that takes the previous step's result as its
        # first argument is checked against it.
        "returns": msgspec.json.schema(typing.get_type_hints(fn).get("return", Any)),
    }


def _describe_parameter(param: inspect.Parameter, hint: Any) -> dict[str, Any]:
    # The schema carries the annotation's constraints (bounds, patterns, enums): the worker
    # checks calls against the very same annotation (``TaskpulseTask.__call__``).
    described: dict[str, Any] = {
        "name": param.name,
        "type": _type_name(hint),
        "required": param.default is inspect.Parameter.empty,
        "schema": msgspec.json.schema(hint),
    }
    if not described["required"]:
        described["default"] = param.default
    return described


def _type_name(hint: Any) -> str:
    """The Python type without its constraints (they are in the schema): ``int | None``."""
    if typing.get_origin(hint) is typing.Annotated:
        return _type_name(typing.get_args(hint)[0])
    if hint is type(None):
        return "None"
    if isinstance(hint, type):
        return hint.__name__
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " | ".join(_type_name(arg) for arg in typing.get_args(hint))
    return str(hint).replace("typing.", "")


def _summary(doc: str) -> str:
    """The docstring's first paragraph as one line."""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def catalog_json(app: Celery) -> str:
    return msgspec.json.format(msgspec.json.encode(build_catalog(app)), indent=2).decode() + "\n"
