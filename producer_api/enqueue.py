"""Enqueue by task name: check against the catalog, honour idempotency keys, publish, audit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec
import redis.asyncio as aioredis
from kombu.exceptions import OperationalError

from event_collector.keys import Keys
from producer_api.audit import audit_event
from producer_api.catalog import ArgumentError, Catalog, check_arguments
from producer_api.errors import Unavailable, Unprocessable
from producer_api.publisher import DeliveryUncertain, Message, Publisher
from producer_api.schemas import EnqueueRequest, EnqueueResponse

TASK_URL = "/api/v1/tasks/{}"
_RESPONSE_DECODER = msgspec.json.Decoder(EnqueueResponse)


class Resolved(msgspec.Struct, frozen=True):
    message: Message
    response: EnqueueResponse
    idempotency_key: str | None


class Enqueuer:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        catalog: Catalog,
        publisher: Publisher,
        broker_kind: str,
        idempotency_ttl: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.catalog = catalog
        self.publisher = publisher
        self.broker_kind = broker_kind
        self.idempotency_ttl = idempotency_ttl

    def resolve(
        self, req: EnqueueRequest, field: str = "", parent_id: str | None = None,
        root_id: str | None = None,
    ) -> Resolved:
        """Check ``req`` against the catalog; 422 naming the offending field otherwise."""
        spec = self.catalog.task(req.name)
        if spec is None:
            raise Unprocessable(f"unknown task {req.name!r}", {"field": f"{field}name"})
        queue = req.queue or spec.queue
        if queue not in self.catalog.queues:
            raise Unprocessable(
                f"unknown queue {queue!r}; one of {', '.join(self.catalog.queues)}",
                {"field": f"{field}queue"},
            )
        if req.countdown is not None and req.eta is not None:
            raise Unprocessable("give countdown or eta, not both", {"field": f"{field}eta"})
        try:
            check_arguments(spec, req.args, req.kwargs)
        except ArgumentError as exc:
            raise Unprocessable(str(exc), {"field": f"{field}{exc.field}"}) from None
        levels = self.catalog.priorities
        if req.priority is None:
            level = levels.default
        elif isinstance(req.priority, int):
            level = levels.levels[req.priority - 1]
        else:
            level = req.priority
        task_id = str(uuid.uuid4())
        message = Message(
            id=task_id, name=spec.name, args=req.args, kwargs=req.kwargs, queue=queue,
            priority=levels.number(self.broker_kind, level),
            countdown=req.countdown, eta=req.eta, expires=req.expires,
            parent_id=parent_id, root_id=root_id,
        )
        response = EnqueueResponse(
            id=task_id, url=TASK_URL.format(task_id), name=spec.name, queue=queue,
            priority=level, parent_id=parent_id,
        )
        return Resolved(message, response, req.idempotency_key)

    async def enqueue(
        self, items: Sequence[Resolved], actor: str, action: str = "enqueue"
    ) -> list[EnqueueResponse]:
        """Publish ``items`` (skipping repeated idempotency keys), in order; audit each."""
        claimed = await self._claim_keys(items)
        fresh = [item for item, prior in zip(items, claimed, strict=True) if prior is None]
        audits = [
            audit_event(actor, action, i.message.id, i.message.name,
                        msgspec.json.encode(i.response).decode())
            for i in fresh
        ]
        try:
            if fresh:
                await self.publisher.send([item.message for item in fresh], audits)
        except OperationalError as exc:
            # Released even when delivery is uncertain (at least once): a client retrying with
            # the same idempotency key enqueues again rather than being told of a task that may
            # never have reached the broker.
            await self._release_keys(fresh)
            raise Unavailable(
                "the broker failed while the task(s) were being sent; some may have been "
                "enqueued" if isinstance(exc, DeliveryUncertain) else
                "the broker is unreachable; the task was not enqueued (in a batch: from the "
                "first task that failed on)", str(exc),
            ) from exc
        return [
            item.response if prior is None else msgspec.structs.replace(prior, duplicate=True)
            for item, prior in zip(items, claimed, strict=True)
        ]

    async def _claim_keys(self, items: Sequence[Resolved]) -> list[EnqueueResponse | None]:
        """SET NX every idempotency key; for keys already taken, the first response."""
        keyed = [i for i, item in enumerate(items) if item.idempotency_key]
        claimed: list[EnqueueResponse | None] = [None] * len(items)
        if not keyed:
            return claimed
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in keyed:
                item = items[i]
                pipe.set(
                    self.keys.idempotency(item.idempotency_key),  # type: ignore[arg-type]
                    msgspec.json.encode(item.response), nx=True, ex=self.idempotency_ttl,
                )
            won = await pipe.execute()
        lost = [i for i, ok in zip(keyed, won, strict=True) if not ok]
        if lost:
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in lost:
                    pipe.get(self.keys.idempotency(items[i].idempotency_key))  # type: ignore[arg-type]
                stored = await pipe.execute()
            for i, raw in zip(lost, stored, strict=True):
                # Expired between SET and GET: vanishingly rare; treat the key as ours.
                claimed[i] = _RESPONSE_DECODER.decode(raw) if raw is not None else None
        return claimed

    async def _release_keys(self, items: Sequence[Resolved]) -> None:
        keys = [self.keys.idempotency(i.idempotency_key) for i in items if i.idempotency_key]
        if keys:
            await self.redis.delete(*keys)
