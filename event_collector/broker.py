"""The broker as every role must see it: which kind a URL names, the priority levels a message
may be sent with, and how kombu lays a priority queue out on Redis.

The worker declares queues and numbers priorities by broker kind (``worker.routing``), the API
publishes the same way (``producer_api.publisher``), and the collector reads events and queue
lengths by kind (``consume.py``, ``queues.py``): a URL one of them took for Redis and another
for RabbitMQ would split the system, so there is one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from kombu import Queue

BrokerKind = Literal["redis", "amqp"]

# kombu.transport.TRANSPORT_ALIASES, by the transport each scheme loads (kombu.transport.redis;
# kombu.transport.pyamqp or librabbitmq). tests/collector/test_broker.py holds it to kombu's.
BROKER_KINDS: Final[dict[str, BrokerKind]] = {
    "redis": "redis", "rediss": "redis", "sentinel": "redis",
    "amqp": "amqp", "amqps": "amqp", "pyamqp": "amqp", "librabbitmq": "amqp",
}  # fmt: skip
# redis.connection.parse_url: the URLs the collector can open itself with redis-py (a Redis
# broker's fanout and queue lists, a Redis result backend).
REDIS_PY_SCHEMES: Final = ("redis", "rediss", "unix")

# The priority levels, lowest first (the API's numbers 1-4): the API accepts these names, the
# worker maps each to a broker priority (worker.routing) and publishes them in the catalog.
PRIORITY_LEVELS: Final[tuple[str, ...]] = ("low", "normal", "high", "critical")

# celery.app.backends.BACKEND_ALIASES: the result-backend schemes that load Celery's RedisBackend
# class itself (``sentinel://`` loads a subclass of its own). tests/collector/test_broker.py holds
# it to Celery's.
REDIS_BACKEND_SCHEMES: Final = ("redis", "rediss")

# kombu.transport.redis: a queue with priorities is one list per step, the queue's own name for
# step 0 and ``<queue>\x06\x16<step>`` for the others (``Channel._q_for_pri``). The worker sets
# exactly these, the collector sums exactly these lists.
REDIS_PRIORITY_STEPS: Final = (0, 3, 6, 9)
REDIS_PRIORITY_SEPARATOR: Final = "\x06\x16"


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def broker_kind(url: str) -> BrokerKind:
    """``redis`` or ``amqp``; ValueError for a transport taskpulse does not support.

    ``<transport>+<url>`` (``redis+socket:///run/redis.sock``) is kombu's way to give a
    transport a URL of another scheme: the part before ``+`` names the transport."""
    transport = _scheme(url).partition("+")[0]
    kind = BROKER_KINDS.get(transport)
    if kind is None:
        given = f"{transport}://" if "://" in url else "a URL without a scheme"
        raise ValueError(
            f"TASKPULSE_BROKER_URL: {given} is not a broker taskpulse supports"
            f" ({', '.join(f'{s}://' for s in BROKER_KINDS)})"
        )
    return kind


def result_backend_url(result_backend: str, broker_url: str) -> str:
    """Where results are: ``TASKPULSE_RESULT_BACKEND``, else the broker's URL (every role)."""
    return result_backend or broker_url


def redis_py_opens(url: str) -> bool:
    """True for a Redis URL redis-py connects to by itself (``redis://``, ``rediss://``,
    ``unix://``); kombu's and Celery's own forms (``sentinel://``, ``redis+socket://``) are not."""
    return _scheme(url) in REDIS_PY_SCHEMES


def redis_backend_url(result_backend: str) -> str | None:
    """The URL Celery hands its RedisBackend class for the ``result_backend`` setting, or None
    when the setting loads another backend class. Celery reads ``<backend>+<url>``
    (``redis+socket:///run/redis.sock``) as the backend named before ``+`` given the rest."""
    backend, plus, _ = _scheme(result_backend).partition("+")
    if backend not in REDIS_BACKEND_SCHEMES:
        return None
    return result_backend.partition("+")[2] if plus else result_backend


def declare_queue(name: str, kind: BrokerKind, amqp_max_priority: int) -> Queue:
    """A queue on its own direct exchange; on RabbitMQ a priority queue. The worker and the API
    declare queues with this alone: RabbitMQ refuses a queue re-declared with other arguments."""
    # Imported here: the API's schemas and the CLI read this module's tables, and kombu alone
    # would double the CLI's start-up time.
    from kombu import Exchange, Queue

    arguments = {"x-max-priority": amqp_max_priority} if kind == "amqp" else None
    return Queue(name, Exchange(name, type="direct"), routing_key=name, queue_arguments=arguments)


def priority_lists(queue: str, steps: Sequence[int] = REDIS_PRIORITY_STEPS) -> list[str]:
    """The Redis lists kombu uses for ``queue``: the queue itself for step 0, suffixed otherwise."""
    return [f"{queue}{REDIS_PRIORITY_SEPARATOR}{step}" if step else queue for step in steps]
