"""How every taskpulse process reaches the monitoring store (``TASKPULSE_REDIS_URL``).

One Redis, a Redis Cluster or a Sentinel-watched primary, chosen by the URL's scheme:

    redis://[user:password@]host:port[/db][?options]       one Redis (rediss:// = TLS, unix://)
    redis+cluster://[user:password@]host:port[,host:port...][?options]
    redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db][?options]
    (rediss+cluster://, rediss+sentinel://: the same over TLS)

``parse_store_url`` turns the text into a ``StoreAddress`` once (pure; its errors name what is
wrong), and ``open_async`` / ``open_sync`` build the matching redis-py client from it: ``Redis``,
``RedisCluster`` with the listed startup nodes, or ``Sentinel(...).master_for(service)``. Every
client gets a retry policy, so a reconnect, a cluster redirection (MOVED/ASK, handled by
redis-py) or a failover is absorbed by a short retry or surfaces as one of
``STORE_UNAVAILABLE``, which callers turn into a 503 or a retried batch, never a crash.

On a cluster a Lua call may only touch keys of one hash slot. Until the store is partitioned,
every key of one prefix must share a slot, so a cluster's key prefix carries a hash tag
(``{tp}:``, the default there; see ``store_key_prefix``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, unquote

import msgspec
import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.asyncio.sentinel as aiosentinel
import redis.cluster
import redis.crc
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterError,
    RedisClusterException,
    TryAgainError,
)
from redis.retry import Retry

from event_collector.keys import DEFAULT_KEY_PREFIX, Keys, has_hash_tag

Mode = Literal["single", "cluster", "sentinel"]

# Any of these means "the store cannot answer right now": the caller retries later or answers
# 503. ClusterError covers a cluster that lost a primary (CLUSTERDOWN) until its replica takes
# over; RedisClusterException is what redis-py raises when no startup node answers (and when no
# node covers a slot); TRYAGAIN comes during a slot migration. (A sentinel-managed client turns
# a demoted primary's READONLY into a ConnectionError itself.)
STORE_UNAVAILABLE: Final[tuple[type[Exception], ...]] = (
    redis.ConnectionError, redis.TimeoutError, ClusterError, RedisClusterException,
    TryAgainError,
)
# Every error a store client raises (RedisClusterException is not a RedisError).
STORE_ERRORS: Final[tuple[type[Exception], ...]] = (redis.RedisError, RedisClusterException)

# A cluster's default prefix: one hash tag, so all keys share a slot (multi-key Lua works).
CLUSTER_KEY_PREFIX: Final = "{tp}:"
DEFAULT_CLUSTER_PORT: Final = 6379
DEFAULT_SENTINEL_PORT: Final = 26379

_SINGLE_SCHEMES: Final = ("redis", "rediss", "unix")
_CLUSTER_SCHEMES: Final = ("redis+cluster", "rediss+cluster")
_SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")
_TLS_OPTIONS: Final = ("ssl_ca_certs", "ssl_cert_reqs")
_OPTIONS: Final[dict[Mode, tuple[str, ...]]] = {
    "single": (),  # redis-py reads a plain URL's own options
    "cluster": _TLS_OPTIONS,
    "sentinel": (*_TLS_OPTIONS, "sentinel_username", "sentinel_password"),
}
_CERT_REQS: Final = ("none", "optional", "required")

AsyncStore = aioredis.Redis | aiocluster.RedisCluster
SyncStore = redis.Redis | redis.cluster.RedisCluster


class StoreUrlError(ValueError):
    """``TASKPULSE_REDIS_URL`` cannot be read; the message says which part and why."""


class Node(msgspec.Struct, frozen=True):
    host: str
    port: int


class StoreAddress(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed store URL. ``url`` is the text as given (a single Redis is opened from it by
    redis-py itself); ``nodes`` are a cluster's startup nodes or the sentinels."""

    mode: Mode
    url: str
    nodes: tuple[Node, ...] = ()
    service_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: dict[str, str] = {}

    @property
    def safe_url(self) -> str:
        """The URL for logs and spool headers: the password replaced."""
        if self.password is None:
            return self.url
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://{self.username or ''}:***@{rest.rsplit('@', 1)[1]}"


class ClientOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a client behaves when the store is slow or gone. ``retries`` quick retries with
    exponential backoff (``backoff_base`` doubling up to ``backoff_cap`` seconds) absorb a
    reconnect or a redirection; a longer outage (a failover) reaches the caller."""

    socket_timeout: float | None = None
    connect_timeout: float | None = None
    retries: int = 3
    backoff_base: float = 0.05
    backoff_cap: float = 0.5
    health_check_interval: float = 0
    decode_responses: bool = False


def parse_store_url(url: str) -> StoreAddress:
    """Read a store URL (forms in the module docstring); StoreUrlError says what is wrong."""
    if "://" not in url:
        raise StoreUrlError(f"{url!r} is not a URL: expected redis://host:port/db,"
                            " redis+cluster://host:port,... or redis+sentinel://host:port/service")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme in _SINGLE_SCHEMES:
        return StoreAddress(mode="single", url=url, tls=scheme == "rediss")
    if scheme in _CLUSTER_SCHEMES:
        mode: Mode = "cluster"
    elif scheme in _SENTINEL_SCHEMES:
        mode = "sentinel"
    else:
        known = ", ".join(f"{s}://" for s in (*_SINGLE_SCHEMES, *_CLUSTER_SCHEMES,
                                                *_SENTINEL_SCHEMES))
        raise StoreUrlError(f"unknown scheme {scheme + '://'!r} (known: {known})")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username, password, hosts = _split_userinfo(netloc)
    port = DEFAULT_CLUSTER_PORT if mode == "cluster" else DEFAULT_SENTINEL_PORT
    nodes = tuple(_node(text, port, scheme) for text in hosts.split(","))
    service_name, db = _path(mode, path, scheme)
    return StoreAddress(
        mode=mode, url=url, nodes=nodes, service_name=service_name, db=db, username=username,
        password=password, tls=scheme.startswith("rediss"), options=_options(mode, query, scheme),
    )


def _split_userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    if "@" not in netloc:
        return None, None, netloc
    userinfo, hosts = netloc.rsplit("@", 1)
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None), hosts


def _node(text: str, default_port: int, scheme: str) -> Node:
    if not text:
        raise StoreUrlError(f"a {scheme}:// URL needs host:port[,host:port...]; an entry is empty")
    if text.startswith("["):  # [::1]:6379
        host, _, port_text = text[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise StoreUrlError(f"node {text!r} of the {scheme}:// URL has no host")
    if not port_text:
        return Node(host, default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise StoreUrlError(f"node {text!r} of the {scheme}:// URL: port {port_text!r}"
                            " is not a number from 1 to 65535")
    return Node(host, int(port_text))


def _path(mode: Mode, path: str, scheme: str) -> tuple[str, int]:
    parts = [unquote(p) for p in path.split("/")] if path else []
    while parts and parts[-1] == "":
        parts.pop()
    if mode == "cluster":
        if parts and parts != ["0"]:
            raise StoreUrlError(f"a {scheme}:// URL has no database path (a Redis Cluster has"
                                f" only db 0), got /{path}")
        return "", 0
    if not parts or not parts[0]:
        raise StoreUrlError(f"a {scheme}:// URL needs the service name:"
                            f" {scheme}://host:port[,host:port...]/service_name[/db]")
    if len(parts) > 2:
        raise StoreUrlError(f"a {scheme}:// URL's path is /service_name[/db], got /{path}")
    db_text = parts[1] if len(parts) == 2 else "0"
    if not db_text.isdigit():
        raise StoreUrlError(f"database {db_text!r} of the {scheme}:// URL is not a number")
    return parts[0], int(db_text)


def _options(mode: Mode, query: str, scheme: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    known = _OPTIONS[mode]
    for name, value in options.items():
        if name not in known:
            raise StoreUrlError(f"unknown option {name!r} in a {scheme}:// URL"
                                f" (known: {', '.join(known) or 'none'})")
        if name == "ssl_cert_reqs" and value not in _CERT_REQS:
            raise StoreUrlError(f"ssl_cert_reqs={value!r}: expected one of {', '.join(_CERT_REQS)}")
    return options


def store_key_prefix(address: StoreAddress, configured: str, partitions: int = 1) -> str:
    """The key prefix to use: ``configured`` (``TASKPULSE_KEY_PREFIX``) or, when it is empty,
    the default for the store: ``tp:``, or ``{tp}:`` on a cluster with one partition. There
    the store's Lua calls touch many keys at once, which a cluster allows only within one slot:
    one partition needs the prefix's hash tag; several bring their own (keys.py), and a tag in
    the prefix would put them all in one slot."""
    cluster = address.mode == "cluster"
    prefix = configured or (CLUSTER_KEY_PREFIX if cluster and partitions == 1
                            else DEFAULT_KEY_PREFIX)
    if cluster and partitions == 1 and not has_hash_tag(prefix):
        raise StoreUrlError(
            f"key prefix {prefix!r} has no hash tag: on a Redis Cluster every key of a"
            f" one-partition store must share a slot, so use a prefix like {CLUSTER_KEY_PREFIX!r}"
            " (the default there)"
        )
    if partitions > 1 and has_hash_tag(prefix):
        raise StoreUrlError(
            f"key prefix {prefix!r} has a hash tag: with TASKPULSE_PARTITIONS={partitions} every"
            f" partition would share its slot; use a prefix without braces like"
            f" {DEFAULT_KEY_PREFIX!r} (partitions tag their keys themselves)"
        )
    return prefix


def _retry(options: ClientOptions, asynchronous: bool) -> Retry | AsyncRetry:
    """redis-py's asyncio clients need its asyncio Retry (the other one would not await)."""
    backoff = ExponentialBackoff(cap=options.backoff_cap, base=options.backoff_base)
    return (AsyncRetry if asynchronous else Retry)(backoff, options.retries)


def _connection_kwargs(
    address: StoreAddress, options: ClientOptions, asynchronous: bool
) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.connect_timeout,
        "retry": _retry(options, asynchronous),
        "decode_responses": options.decode_responses,
        "health_check_interval": options.health_check_interval,
        "username": address.username,
        "password": address.password,
    }
    if address.tls:
        kwargs["ssl"] = True
        for name in _TLS_OPTIONS:
            if name in address.options:
                kwargs[name] = address.options[name]
    return kwargs


def _sentinel_kwargs(address: StoreAddress, options: ClientOptions) -> dict[str, object]:
    """How to talk to the sentinels themselves (their own credentials, same timeouts)."""
    kwargs: dict[str, object] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.connect_timeout,
        "username": address.options.get("sentinel_username"),
        "password": address.options.get("sentinel_password"),
    }
    if address.tls:
        kwargs["ssl"] = True
        kwargs.update({n: address.options[n] for n in _TLS_OPTIONS if n in address.options})
    return kwargs


def _single_kwargs(options: ClientOptions, asynchronous: bool) -> dict[str, object]:
    return {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.connect_timeout,
        "retry": _retry(options, asynchronous),
        "decode_responses": options.decode_responses,
        "health_check_interval": options.health_check_interval,
    }


# Commands a node pipeline sends itself: each names one key first (its slot is that key's);
# a script's keys must share a slot anyway (EVALSHA sha numkeys key ...).
_FIRST_KEY_COMMANDS: Final = frozenset({
    "GET", "HGET", "HGETALL", "HMGET", "SMEMBERS", "SCARD", "ZCARD", "ZCOUNT", "ZRANGE",
    "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZSCORE", "XLEN", "XRANGE", "XREVRANGE",
    "TTL", "PTTL", "LLEN",
})
_SCRIPT_COMMANDS: Final = frozenset({"EVALSHA", "EVALSHA_RO", "EVAL", "EVAL_RO"})


def _slot_key(args: tuple[Any, ...]) -> Any | None:
    """The key that routes a command, or None when this pipeline leaves it to redis-py."""
    name = str(args[0]).upper()
    if name in _FIRST_KEY_COMMANDS and len(args) > 1:
        return args[1]
    if name in _SCRIPT_COMMANDS and len(args) > 3 and int(args[2]) > 0:
        return args[3]
    return None


class NodePipeline(aiocluster.ClusterPipeline):
    """A cluster pipeline that goes straight to the primary serving each command's slot: one
    pipeline per node, sent to all at once. redis-py's own routing of a cluster pipeline (a
    command policy lookup and node resolution for every command) cost ~10 us a command, most
    of a listing's client CPU with 8 partitions on 3 primaries (16 ZCARDs: 340 -> 180 us).

    Anything it does not route (a command it does not know the key of, a slot not mapped yet)
    goes redis-py's way whole. After an error reply or a lost node, redis-py's way takes the
    rest: it sends again only the commands without a result (as its own retries do), follows
    redirections, refreshes the topology and retries. ``commands`` keeps the last execution's
    commands with their results, so a caller can tell which ones failed (``scripts``)."""

    commands: list[Any] = []

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        queue = getattr(self._execution_strategy, "_command_queue", None)
        self.commands = list(queue or ())
        if not self._transaction and queue and await self._per_node(queue):
            await self.reset()
            return [cmd.result for cmd in queue]
        return await super().execute(raise_on_error, allow_redirections)

    async def _per_node(self, queue: list[Any]) -> bool:
        client = self.cluster_client
        if client._initialize:
            return False
        slots, encode = client.nodes_manager.slots_cache, client.encoder.encode
        nodes: dict[str, tuple[Any, list[Any]]] = {}
        for cmd in queue:
            key = _slot_key(cmd.args)
            if key is None or cmd.kwargs.get("target_nodes") is not None:
                return False
            serving = slots.get(redis.crc.key_slot(encode(key)))
            if not serving:
                return False
            node = serving[0]
            nodes.setdefault(node.name, (node, []))[1].append(cmd)
        outcomes = await asyncio.gather(
            *(node.execute_pipeline(cmds) for node, cmds in nodes.values()),
            return_exceptions=True,
        )
        return not any(outcomes)


class StoreCluster(aiocluster.RedisCluster):
    """``RedisCluster`` whose pipelines send reads one pipeline per node (``NodePipeline``)."""

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> aiocluster.ClusterPipeline:
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)
        return NodePipeline(self, transaction)


def _address(target: StoreAddress | str) -> StoreAddress:
    return parse_store_url(target) if isinstance(target, str) else target


def open_async(target: StoreAddress | str, options: ClientOptions | None = None) -> AsyncStore:
    """An asyncio client for the store (connections are opened on first use)."""
    address, options = _address(target), options or ClientOptions()
    if address.mode == "single":
        return aioredis.Redis.from_url(address.url, **_single_kwargs(options, True))  # type: ignore[arg-type]
    kwargs = _connection_kwargs(address, options, True)
    if address.mode == "cluster":
        nodes = [aiocluster.ClusterNode(n.host, n.port) for n in address.nodes]
        return StoreCluster(startup_nodes=nodes, **kwargs)  # type: ignore[arg-type]
    sentinel = aiosentinel.Sentinel(
        [(n.host, n.port) for n in address.nodes],
        sentinel_kwargs=_sentinel_kwargs(address, options),
    )
    return sentinel.master_for(address.service_name, db=address.db, **kwargs)


def open_sync(target: StoreAddress | str, options: ClientOptions | None = None) -> SyncStore:
    """A blocking client for the store, for threads (audit from the publisher, redbeat)."""
    address, options = _address(target), options or ClientOptions()
    if address.mode == "single":
        return redis.Redis.from_url(address.url, **_single_kwargs(options, False))  # type: ignore[arg-type]
    kwargs = _connection_kwargs(address, options, False)
    if address.mode == "cluster":
        nodes = [redis.cluster.ClusterNode(n.host, n.port) for n in address.nodes]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs)  # type: ignore[arg-type]
    sentinel = redis.sentinel.Sentinel(
        [(n.host, n.port) for n in address.nodes],
        sentinel_kwargs=_sentinel_kwargs(address, options),
    )
    return sentinel.master_for(address.service_name, db=address.db, **kwargs)


def store_keys(redis_url: str, key_prefix: str, partitions: int = 1) -> Keys:
    """The key builder for a role's settings (``TASKPULSE_REDIS_URL``, ``TASKPULSE_KEY_PREFIX``,
    ``TASKPULSE_PARTITIONS``; an empty prefix is the store's default). Settings call it at
    start-up too, so a bad URL or prefix fails there, naming the variable."""
    try:
        address = parse_store_url(redis_url)
    except StoreUrlError as exc:
        raise StoreUrlError(f"TASKPULSE_REDIS_URL: {exc}") from None
    try:
        prefix = store_key_prefix(address, key_prefix, partitions)
    except StoreUrlError as exc:
        raise StoreUrlError(f"TASKPULSE_KEY_PREFIX: {exc}") from None
    return Keys.layout(prefix, partitions, cluster=address.mode == "cluster")


def is_cluster(client: object) -> bool:
    """Whether an async store client talks to a Redis Cluster (one slot per multi-key call)."""
    return isinstance(client, aiocluster.RedisCluster)


async def node_targets(client: AsyncStore) -> list[dict[str, object]]:
    """Keyword arguments that send a server command (CONFIG, INFO) to each node in turn: one
    empty set for one Redis, ``target_nodes=<node>`` for every node of a cluster."""
    if not is_cluster(client):
        return [{}]
    await client.initialize()
    return [{"target_nodes": node} for node in client.get_nodes()]
