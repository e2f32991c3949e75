"""kombu's Redis transport, with the one failure that ended a worker on a broker restart fixed.

With kombu 5.7.0 / Celery 5.7.0 a worker exits (``Unrecoverable error: AttributeError("'NoneType'
object has no attribute 'hostname'")``) when the broker connection drops while a message is
unacknowledged (an ``acks_late`` task running, or one reserved). Celery's consumer first
``collect()``s the dead connection: the channel's close fails on its pending BRPOP read (a
connection error, ignored) so the channel stays open, but the transport is closed anyway and its
``client`` set to None. Then the consumer closes the connection again; now the channel's close
restores the unacknowledged message through a new connection pool, whose parameters are read from
``transport.client``. That AttributeError is not a connection error, so nothing ignores it and the
worker stops instead of reconnecting. No Celery or kombu setting avoids that path.

Here a channel whose transport is closed raises the connection error it is. kombu's cleanup
ignores it and Celery reconnects as after any broker loss; the unacknowledged message stays in
the broker's unacked set and is delivered again after the visibility timeout (``acks_late`` means
at least once), as when a worker is killed.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("this channel's broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """``broker_transport`` for this URL: ours for ``redis://``, else None (kombu's choice).

    Not for ``rediss://``: kombu gives a transport *named* ``rediss`` its TLS defaults, so a
    class of ours would connect without TLS. ``sentinel://`` has its own transport, and
    ``redis+socket://`` names its transport itself, which kombu lets win over the setting."""
    return f"{__name__}:Transport" if broker_url.partition("://")[0].lower() == "redis" else None
