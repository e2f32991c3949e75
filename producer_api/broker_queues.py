"""A queue's waiting messages, straight from the broker: peek at them, or purge them.

- Redis: kombu keeps a queue as one list per priority step (``broker.priority_lists``), LPUSHes
  new messages and BRPOPs the right end, trying the steps in order (step 0 first). A peek is an
  LRANGE of each list's right end, so it lists messages in the order one consumer would take
  them, and changes nothing. A purge is one Lua script (``purge.lua``) that counts and deletes
  the lists atomically, refusing when more are waiting than the caller agreed to lose.
- RabbitMQ: ``basic_get`` without acknowledging, then ``basic_reject(requeue=True)``: RabbitMQ
  puts a requeued message back at its original position when it can (closer to the head when
  consumers took messages meanwhile), so the order holds on a quiet queue only; peeked messages
  come back flagged ``redelivered`` and are invisible to consumers for the moment of the peek.
  A priority queue hands out its highest priority first, which is the order shown. A purge
  compares a passive declare's count, then ``queue_purge``: not atomic (a message published in
  between is purged too), which the response's ``purged`` count then shows.

kombu and py-amqp block, so the API calls these from a thread (``WorkerControl``'s pool).
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from typing import Any, Final

import msgspec
from celery import Celery

from event_collector.broker import BrokerKind, priority_lists

PURGE_SCRIPT: Final = resources.files("producer_api").joinpath("purge.lua").read_text()


class WaitingMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    """A task message as the broker holds it (Celery protocol 2 headers, JSON body)."""

    id: str
    name: str
    args: Any = None
    kwargs: Any = None
    priority: int | None = None  # the broker's number (``GET /catalog`` maps levels to it)
    level: str | None = None  # that number's level (low..critical), when it is one of them
    eta: str | None = None
    expires: str | None = None


class PurgeOutcome(msgspec.Struct, frozen=True):
    purged: int
    length: int  # waiting when the purge looked; above ``expected``: nothing was purged


def decode_message(envelope: dict[str, Any]) -> WaitingMessage:
    """kombu's envelope (``body``, ``headers``, ``properties``) -> the task it carries."""
    headers = envelope.get("headers") or {}
    properties = envelope.get("properties") or {}
    return _message(_body(envelope.get("body"), properties.get("body_encoding")), headers,
                    properties.get("priority"))


def _body(raw: Any, encoding: str | None) -> Any:
    if isinstance(raw, str) and encoding == "base64":
        raw = base64.b64decode(raw)
    try:
        return json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError:
        return None  # not JSON (another serializer): the headers still say what it is


def _message(body: Any, headers: dict[str, Any], priority: Any) -> WaitingMessage:
    if isinstance(body, dict) and "task" in body:  # protocol 1: everything in the body
        headers, body = body, [body.get("args"), body.get("kwargs")]
    args, kwargs = (body[0], body[1]) if isinstance(body, list) and len(body) >= 2 else (None, None)
    return WaitingMessage(
        id=str(headers.get("id", "")), name=str(headers.get("task", "")), args=args,
        kwargs=kwargs, priority=priority if isinstance(priority, int) else None,
        eta=headers.get("eta") or None, expires=headers.get("expires") or None,
    )


class BrokerQueues:
    """Peek and purge on the API's broker (through its Celery app's connection pool)."""

    def __init__(self, app: Celery, kind: BrokerKind) -> None:
        self.app = app
        self.kind = kind

    def peek(self, queue: str, limit: int) -> tuple[int, list[WaitingMessage]]:
        """(messages waiting, the first ``limit`` of them in the order they would be taken)."""
        with self.app.connection_for_write() as conn:
            if self.kind == "redis":
                return _redis_peek(conn.default_channel.client, queue, limit)
            return _amqp_peek(conn, queue, limit)

    def purge(self, queue: str, expected: int) -> PurgeOutcome:
        with self.app.connection_for_write() as conn:
            if self.kind == "redis":
                client = conn.default_channel.client
                purged, length = client.eval(PURGE_SCRIPT, len(lists := priority_lists(queue)),
                                             *lists, expected)
                return PurgeOutcome(purged=int(purged), length=int(length))
            return _amqp_purge(conn, queue, expected)


def _redis_peek(client: Any, queue: str, limit: int) -> tuple[int, list[WaitingMessage]]:
    lists = priority_lists(queue)
    with client.pipeline(transaction=True) as pipe:  # one moment: counts match the messages
        for key in lists:
            pipe.llen(key)
            pipe.lrange(key, -limit, -1)
        replies = pipe.execute()
    length = sum(replies[0::2])
    # Each list's right end is its oldest message: reversed, in the order BRPOP takes them.
    raw = [item for chunk in replies[1::2] for item in reversed(chunk)][:limit]
    return length, [decode_message(json.loads(item)) for item in raw]


def _declared_length(conn: Any, queue: str) -> int:
    channel = conn.channel()  # a passive declare of a missing queue closes its channel
    try:
        return int(channel.queue_declare(queue=queue, passive=True)[1])
    except conn.channel_errors:
        return 0
    finally:
        channel.close()


def _amqp_peek(conn: Any, queue: str, limit: int) -> tuple[int, list[WaitingMessage]]:
    length = _declared_length(conn, queue)
    if not length:
        return 0, []
    channel = conn.channel()
    taken = []
    try:
        while len(taken) < limit and (message := channel.basic_get(queue, no_ack=False)):
            taken.append(message)
    finally:
        for message in taken:
            channel.basic_reject(message.delivery_tag, requeue=True)
        channel.close()
    return length, [_amqp_message(m) for m in taken]


def _amqp_message(message: Any) -> WaitingMessage:
    properties = message.properties or {}
    headers = properties.get("application_headers") or {}
    return _message(_body(message.body, None), headers, properties.get("priority"))


def _amqp_purge(conn: Any, queue: str, expected: int) -> PurgeOutcome:
    length = _declared_length(conn, queue)
    if length > expected or not length:
        return PurgeOutcome(purged=0, length=length)
    channel = conn.channel()
    try:
        return PurgeOutcome(purged=int(channel.queue_purge(queue) or 0), length=length)
    finally:
        channel.close()
