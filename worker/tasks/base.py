"""What every taskpulse task shares: settings, the store, retry policy, argument checks."""

from __future__ import annotations

import inspect
import sqlite3
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import msgspec
from celery import Task

from worker.domain.store import open_store
from worker.errors import InvalidArguments, TransientError

if TYPE_CHECKING:
    from worker.config import WorkerSettings


class TaskpulseTask(Task):
    """Base class: gives a task its settings and a store connection, and checks its arguments
    against its signature's annotations before the body runs."""

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The worker never trusts the sender (the API checks the same annotations, but anyone
        # with broker access can ``send_task``): a call that does not fit the signature fails
        # here, permanently, with the offending parameter named.
        return super().__call__(**self._checked_arguments(args, kwargs))

    @cached_property
    def _arguments_type(self) -> tuple[inspect.Signature, type[msgspec.Struct], dict[str, Any]]:
        fn = type(self).__wrapped__  # the plain function Celery built this task class from
        params = parameters(fn)
        fields = [
            (p.name, hint) if p.default is inspect.Parameter.empty else (p.name, hint, p.default)
            for p, hint in params
        ]
        struct = msgspec.defstruct(f"{fn.__name__}_arguments", fields, forbid_unknown_fields=True)
        hints = {p.name: hint for p, hint in params}
        return inspect.Signature([p for p, _ in params]), struct, hints

    def _checked_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        signature, struct, hints = self._arguments_type
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"{self.name}: {exc}") from None
        try:
            checked = msgspec.convert(bound.arguments, struct)
        except msgspec.ValidationError as exc:
            raise InvalidArguments(f"{self.name}: {_readable(exc, hints)}") from None
        return msgspec.structs.asdict(checked)

    @property
    def settings(self) -> WorkerSettings:
        return self.app.settings  # set by worker.application.TaskpulseCelery

    @contextmanager
    def store(self) -> Iterator[sqlite3.Connection]:
        try:
            with open_store(self.settings.db_path) as conn:
                yield conn
        except sqlite3.OperationalError as exc:
            # Another process held the write lock past the busy timeout: worth a retry.
            if "locked" in str(exc) or "busy" in str(exc):
                raise TransientError(f"SQLite store busy: {exc}") from exc
            raise


def retry_options(settings: WorkerSettings) -> dict[str, Any]:
    """Transient errors retry with exponential backoff and full jitter; nothing else retries."""
    return {
        "autoretry_for": (TransientError,),
        "retry_backoff": settings.retry_backoff,
        "retry_backoff_max": settings.retry_backoff_max,
        "retry_jitter": True,
        "max_retries": settings.max_retries,
    }


def parameters(fn: Callable[..., Any]) -> list[tuple[inspect.Parameter, Any]]:
    """A task function's parameters (``self`` dropped) with their full annotations, constraints
    included: the one description of a task's arguments, read by the worker and the catalog."""
    hints = typing.get_type_hints(fn, include_extras=True)
    return [(p, hints[p.name]) for p in list(inspect.signature(fn).parameters.values())[1:]]


def _readable(exc: msgspec.ValidationError, hints: dict[str, Any]) -> str:
    """``Expected `int` >= 1, got `0` - at `$.keep` `` -> ``keep: Expected `int` >= 1, got `0```;
    a bad enum value also lists the valid ones (msgspec's message does not)."""
    message, _, path = str(exc).rpartition(" - at `$.")
    if not message:
        return str(exc)
    name = path.rstrip("`")
    if message.startswith("Invalid enum value") and name in hints:
        schema = msgspec.json.schema(hints[name])
        for branch in (schema, *schema.get("anyOf", ())):
            if "enum" in branch:
                message += f"; one of {', '.join(map(str, branch['enum']))}"
    return f"{name}: {message}"

