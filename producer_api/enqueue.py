"""Enqueue by task name: check against the catalog, honour idempotency keys, publish, audit."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import redis.asyncio as aioredis
from kombu.exceptions import OperationalError

from event_collector.keys import Keys
from producer_api.audit import audit_event
from producer_api.catalog import ArgumentError, Catalog, check_arguments, result_problem
from producer_api.enqueued import MARKER_TTL_SECONDS, Enqueued, encode_marker
from producer_api.errors import Conflict, PayloadTooLarge, Unavailable, Unprocessable
from producer_api.publisher import DeliveryUncertain, Marker, Message, Publisher
from producer_api.schemas import EnqueueRequest, EnqueueResponse

TASK_URL = "/api/v1/tasks/{}"
_ENCODER = msgspec.json.Encoder()


class Claim(msgspec.Struct, frozen=True):
    """What an idempotency key holds: the first request's fingerprint and the answer it got."""

    fingerprint: str
    response: EnqueueResponse


_CLAIM_DECODER = msgspec.json.Decoder(Claim)
# Keys written before fingerprints were stored hold the bare response; they expire within one
# TASKPULSE_API_IDEMPOTENCY_TTL of an upgrade and are taken as the same request until then.
_BARE_RESPONSE_DECODER = msgspec.json.Decoder(EnqueueResponse)


def _decode_claim(raw: bytes, fingerprint: str) -> Claim:
    try:
        return _CLAIM_DECODER.decode(raw)
    except msgspec.ValidationError:
        return Claim(fingerprint=fingerprint, response=_BARE_RESPONSE_DECODER.decode(raw))


class Limits(msgspec.Struct, frozen=True):
    """Caps from the settings (``ApiSettings``): how far ahead, in seconds, and how big, in
    bytes of encoded args + kwargs, one task may be."""

    max_delay_seconds: float
    max_args_bytes: int


class Resolved(msgspec.Struct, frozen=True):
    message: Message
    response: EnqueueResponse
    idempotency_key: str | None
    fingerprint: str = ""
    field: str = ""  # the request's place in the body ("tasks[3]." in a batch)


class Enqueuer:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        catalog: Catalog,
        publisher: Publisher,
        broker_kind: str,
        idempotency_ttl: int,
        limits: Limits,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.catalog = catalog
        self.publisher = publisher
        self.broker_kind = broker_kind
        self.idempotency_ttl = idempotency_ttl
        self.limits = limits

    def resolve(
        self, req: EnqueueRequest, field: str = "", parent_id: str | None = None,
        root_id: str | None = None, takes_result: dict[str, Any] | None = None,
    ) -> Resolved:
        """Check ``req`` against the catalog and the caps; 422 (413 when too big) naming the
        offending field otherwise. ``takes_result``: the JSON Schema of a result that will be
        put before ``req.args`` (a mutable workflow step), so the task must take it first."""
        spec = self.catalog.known_task(req.name, f"{field}name")
        queue = self.catalog.known_queue(req.queue or spec.queue, f"{field}queue")
        if req.countdown is not None and req.eta is not None:
            raise Unprocessable("give countdown or eta, not both", {"field": f"{field}eta"})
        self._check_horizon(req, field)
        self._check_size(req, field)
        bound = spec
        if takes_result is not None:
            if problem := result_problem(spec, takes_result, req.kwargs):
                raise Unprocessable(f"{problem}; set immutable to true to ignore that result",
                                    {"field": f"{field}immutable"})
            bound = msgspec.structs.replace(spec, parameters=spec.parameters[1:])
        try:
            check_arguments(bound, req.args, req.kwargs)
        except ArgumentError as exc:
            raise Unprocessable(str(exc), {"field": f"{field}{exc.field}"}) from None
        levels = self.catalog.priorities
        if req.priority is None:
            level = levels.default
        elif isinstance(req.priority, str):
            level = req.priority
        else:
            level = levels.levels[int(req.priority) - 1]
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
        fingerprint = _fingerprint(req, queue, level) if req.idempotency_key else ""
        return Resolved(message, response, req.idempotency_key, fingerprint, field)

    def _check_horizon(self, req: EnqueueRequest, field: str) -> None:
        horizon = self.limits.max_delay_seconds
        where = f"at most {horizon:.0f} seconds ahead (TASKPULSE_API_MAX_DELAY_SECONDS)"
        for name, seconds in (("countdown", req.countdown), ("expires", req.expires)):
            if seconds is not None and seconds > horizon:
                raise Unprocessable(f"{name} must be {where}",
                                    {"field": f"{field}{name}", "limit": horizon})
        if req.eta is not None and req.eta > datetime.now(UTC) + timedelta(seconds=horizon):
            raise Unprocessable(f"eta must be {where}", {"field": f"{field}eta", "limit": horizon})

    def _check_size(self, req: EnqueueRequest, field: str) -> None:
        cap = self.limits.max_args_bytes
        if not req.args and not req.kwargs:
            return
        size = len(_ENCODER.encode(req.args)) + len(_ENCODER.encode(req.kwargs))
        if size > cap:
            raise PayloadTooLarge(
                f"args and kwargs encode to {size} bytes; the cap is {cap} bytes per task "
                "(TASKPULSE_API_MAX_ARGS_BYTES)",
                {"field": f"{field}kwargs" if req.kwargs else f"{field}args", "size": size,
                 "limit": cap},
            )

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
        now = time.time()
        markers = [
            Marker(self.keys.enqueued(m.id), encode_marker(Enqueued(
                name=m.name, queue=m.queue, sent=now, parent_id=m.parent_id, root_id=m.root_id,
            )), MARKER_TTL_SECONDS)
            for m in (i.message for i in fresh)
        ]  # fmt: skip
        try:
            if fresh:
                await self.publisher.send([item.message for item in fresh], audits, markers)
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
        """SET NX every idempotency key; for keys already taken by the same request, the first
        response. A key taken by a different request is a 409, and nothing is claimed."""
        keyed = [i for i, item in enumerate(items) if item.idempotency_key]
        claimed: list[EnqueueResponse | None] = [None] * len(items)
        if not keyed:
            return claimed
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in keyed:
                item = items[i]
                claim = Claim(fingerprint=item.fingerprint, response=item.response)
                pipe.set(
                    self.keys.idempotency(item.idempotency_key),  # type: ignore[arg-type]
                    _ENCODER.encode(claim), nx=True, ex=self.idempotency_ttl,
                )
            won = await pipe.execute()
        lost = [i for i, ok in zip(keyed, won, strict=True) if not ok]
        if not lost:
            return claimed
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in lost:
                pipe.get(self.keys.idempotency(items[i].idempotency_key))  # type: ignore[arg-type]
            stored = await pipe.execute()
        for i, raw in zip(lost, stored, strict=True):
            if raw is None:
                continue  # expired between SET and GET: vanishingly rare; treat the key as ours
            prior = _decode_claim(raw, items[i].fingerprint)
            if prior.fingerprint != items[i].fingerprint:
                await self._release_keys([items[j] for j, ok in zip(keyed, won, strict=True) if ok])
                raise Conflict(
                    f"idempotency key {items[i].idempotency_key!r} was already used for a "
                    f"different request (task {prior.response.id}); send the same request to "
                    "get that task again, or use a new key for a new task",
                    {"field": f"{items[i].field}idempotency_key", "task_id": prior.response.id},
                )
            claimed[i] = prior.response
        return claimed

    async def _release_keys(self, items: Sequence[Resolved]) -> None:
        keys = [self.keys.idempotency(i.idempotency_key) for i in items if i.idempotency_key]
        if keys:
            await self.redis.delete(*keys)


def _fingerprint(req: EnqueueRequest, queue: str, level: str) -> str:
    """What makes two requests "the same" for an idempotency key: the task and everything that
    shapes its message, normalised (resolved queue and priority level; keys in sorted order)."""
    what = [req.name, req.args, req.kwargs, queue, level, req.countdown, req.eta, req.expires]
    return hashlib.sha256(msgspec.json.encode(what, order="sorted")).hexdigest()
