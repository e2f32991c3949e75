"""Workflows (Celery canvas) from task *names*: validate, build chain/group/chord, publish.

No task code is imported: every step becomes ``celery.signature(name, ...)``, which Celery sends
with ``send_task`` when the name is not registered. Chords need a result backend (the header's
results are counted there), so the publishing app has one; a stock Redis backend would also
subscribe to every sent task's result channel, which this process never reads, so a subclass
turns that off.

Root ids: a chain's root is its first task. A group or chord has no task of its own, so its
members share a made-up root id (passed as ``root_id``, and Celery carries it to every task the
workflow sends later, chord body included); the tree shows it as a virtual root.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from celery import Celery, chain, chord, group, signature
from celery.backends.redis import RedisBackend
from celery.canvas import Signature

from event_collector.broker import redis_backend_url
from producer_api.catalog import Catalog
from producer_api.enqueue import Enqueuer
from producer_api.errors import Unprocessable
from producer_api.publisher import producer_app
from producer_api.schemas import EnqueueRequest
from producer_api.workflow_schemas import (
    MAX_WORKFLOW_DEPTH,
    MAX_WORKFLOW_TASKS,
    Step,
    WorkflowRequest,
    WorkflowResponse,
    WorkflowTask,
)

TREE_URL = "/api/v1/tasks/{}/tree"
# What a group hands on (and a chord body gets): the list of its members' results.
LIST_OF_RESULTS: dict[str, Any] = {"type": "array"}


class PublishOnlyRedisBackend(RedisBackend):
    """Stores chord state like the stock backend, but never listens for results here."""

    def on_task_call(self, producer: Any, task_id: str) -> dict[str, Any]:
        return {}

    def on_result_fulfilled(self, result: Any) -> None:
        pass  # nothing was subscribed, so nothing to unsubscribe (it would open a connection)


def workflow_app(
    broker_url: str, result_backend: str, catalog: Catalog, timeout: float, threads: int
) -> Celery:
    app = producer_app(broker_url, catalog, timeout, threads)
    redis_url = redis_backend_url(result_backend)
    if redis_url is not None:
        # "<backend class>+<url>": Celery's own syntax for a backend class with a URL.
        result_backend = f"{__name__}:PublishOnlyRedisBackend+{redis_url}"
    app.conf.result_backend = result_backend
    return app


class _Builder:
    """Turns one validated request into signatures, collecting the tasks it will send.

    Each step is built with the JSON Schema of the result it would receive (``incoming``: the
    step before's result in a chain, the header's list for a chord body, None at the start)
    and returns the schema of its own result, so a mutable task step that cannot take what it
    will be given is refused here rather than failing on the worker.
    """

    def __init__(self, enqueuer: Enqueuer, app: Celery) -> None:
        self.enqueuer = enqueuer
        self.app = app
        self.tasks: list[WorkflowTask] = []

    def step(
        self, step: Step, field: str, depth: int, incoming: dict[str, Any] | None = None
    ) -> tuple[Signature, dict[str, Any]]:
        if depth > MAX_WORKFLOW_DEPTH:
            raise Unprocessable(f"workflows nest at most {MAX_WORKFLOW_DEPTH} levels",
                                {"field": field.rstrip(".")})  # fmt: skip
        forms = [f for f in ("name", "chain", "group", "chord") if getattr(step, f) is not None]
        if len(forms) != 1:
            raise Unprocessable("a step is exactly one of: name (a task), chain, group, chord",
                                {"field": field.rstrip(".") or "$"})  # fmt: skip
        if step.chain is not None:
            links, result = [], incoming
            for i, s in enumerate(self._nonempty(step.chain, f"{field}chain")):
                link, result = self.step(s, f"{field}chain[{i}].", depth + 1, result)
                links.append(link)
            return chain(links, app=self.app), result or {}
        if step.group is not None:
            members = self.steps(step.group, f"{field}group", depth, incoming)
            return group(members, app=self.app), LIST_OF_RESULTS
        if step.chord is not None:
            header = self.steps(step.chord.header, f"{field}chord.header", depth, incoming)
            body, result = self.step(step.chord.body, f"{field}chord.body.", depth + 1,
                                     LIST_OF_RESULTS)  # fmt: skip
            return chord(header, body, app=self.app), result
        return self.task(step, field, incoming)

    def steps(
        self, steps: list[Step], field: str, depth: int, incoming: dict[str, Any] | None
    ) -> list[Signature]:
        """Parallel steps (group members, chord header): each receives ``incoming``."""
        return [self.step(s, f"{field}[{i}].", depth + 1, incoming)[0]
                for i, s in enumerate(self._nonempty(steps, field))]  # fmt: skip

    @staticmethod
    def _nonempty(steps: list[Step], field: str) -> list[Step]:
        if not steps:
            raise Unprocessable("needs at least one step", {"field": field})
        return steps

    def task(
        self, step: Step, field: str, incoming: dict[str, Any] | None
    ) -> tuple[Signature, dict[str, Any]]:
        req = EnqueueRequest(
            name=step.name or "",
            args=step.args,
            kwargs=step.kwargs,
            queue=step.queue,
            priority=step.priority,
        )
        # Celery puts the result before the step's own args only for a mutable step that has a
        # step before it.
        takes_result = None if step.immutable else incoming
        m = self.enqueuer.resolve(req, field, takes_result=takes_result).message
        self.tasks.append(WorkflowTask(id=m.id, name=m.name, queue=m.queue))
        if len(self.tasks) > MAX_WORKFLOW_TASKS:
            raise Unprocessable(f"a workflow has at most {MAX_WORKFLOW_TASKS} tasks",
                                {"field": field.rstrip(".")})  # fmt: skip
        sig = signature(
            m.name, args=m.args, kwargs=m.kwargs, immutable=step.immutable, app=self.app,
            task_id=m.id, queue=m.queue, priority=m.priority,
            # JSON (not Python repr) in the events, like single tasks: a retry can re-send them.
            argsrepr=msgspec.json.encode(m.args).decode(),
            kwargsrepr=msgspec.json.encode(m.kwargs).decode(),
        )  # fmt: skip
        spec = self.enqueuer.catalog.task(m.name)
        return sig, spec.returns if spec is not None else {}


class Planned(msgspec.Struct, frozen=True):
    canvas: Any
    response: WorkflowResponse


class WorkflowPublisher:
    """Validates workflow requests and sends them from a thread pool (kombu blocks)."""

    def __init__(self, app: Celery, enqueuer: Enqueuer, threads: int = 2) -> None:
        self.app = app
        self.enqueuer = enqueuer
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="workflow")

    def plan(self, req: WorkflowRequest) -> Planned:
        """Check every step (422 naming the field) and build the canvas; nothing is sent."""
        kinds = [k for k in ("chain", "group", "chord") if getattr(req, k) is not None]
        if len(kinds) != 1:
            raise Unprocessable("give exactly one of chain, group, chord", {"field": "$"})
        builder = _Builder(self.enqueuer, self.app)
        step = Step(chain=req.chain, group=req.group, chord=req.chord)
        canvas, _ = builder.step(step, "", 0)
        kind = kinds[0]
        root_id = builder.tasks[0].id if kind == "chain" else str(uuid.uuid4())
        response = WorkflowResponse(
            root_id=root_id, kind=kind, url=TREE_URL.format(root_id), tasks=builder.tasks
        )  # type: ignore[arg-type]
        return Planned(canvas=canvas, response=response)

    async def send(self, planned: Planned) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._send, planned)

    def _send(self, planned: Planned) -> None:
        root_id = planned.response.root_id
        canvas = planned.canvas
        if isinstance(canvas, chord):
            canvas.body.options["root_id"] = root_id  # chord.run reads the root from the body
        canvas.apply_async(root_id=root_id)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.app.close()
