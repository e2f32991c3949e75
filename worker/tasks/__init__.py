"""The task catalog. Each domain module lists its task functions in ``TASKS``.

A task is named ``<domain>.<function>`` after its module, so the name contract
(``finance.check_pending_bills`` …) is visible in the file layout.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from worker.tasks import demo, exports, finance, maintenance, notifications, reports
from worker.tasks.base import TaskpulseTask, retry_options

if TYPE_CHECKING:
    from celery import Celery

    from worker.config import WorkerSettings

DOMAINS: tuple[ModuleType, ...] = (finance, reports, notifications, exports, maintenance, demo)


def task_names() -> list[str]:
    return [f"{domain_of(module)}.{fn.__name__}" for module in DOMAINS for fn in module.TASKS]


def domain_of(module: ModuleType) -> str:
    return module.__name__.rpartition(".")[2]


def register_tasks(app: Celery, settings: WorkerSettings) -> None:
    """Register every catalog task on ``app`` with the shared retry policy and time limits."""
    for module in DOMAINS:
        for fn in module.TASKS:
            name = f"{domain_of(module)}.{fn.__name__}"
            options = retry_options(settings)
            limit = settings.task_time_limits.get(name)
            if limit is not None:
                options.update(soft_time_limit=limit.soft, time_limit=limit.hard)
            app.task(bind=True, name=name, base=TaskpulseTask, shared=False, **options)(fn)
