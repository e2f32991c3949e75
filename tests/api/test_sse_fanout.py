"""Many live event streams share one feed: the rest of the API keeps working, every stream still
gets every event, resuming is exact, and a slow stream is ended instead of holding anyone up.

This module runs its own API process with a small SSE backlog, so a lagging stream is cheap to
provoke; its Redis is the module's private one.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis

from event_collector.keys import Keys
from event_collector.store import EventStore
from tests.api.conftest import STORE_DB, ApiClient, make_tokens, start_api
from tests.events import sent_and_succeeded
from tests.services import RedisServer, ServiceProcess

STREAMS = 300
BACKLOG = 200


@dataclass
class Fanout:
    api: ApiClient
    redis: RedisServer
    proc: ServiceProcess

    @property
    def viewer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api.tokens['viewer']}"}


@pytest.fixture(scope="module")
def fanout(api_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fanout]:
    workdir = tmp_path_factory.mktemp("fanout")
    tokens = make_tokens(workdir / "tokens.json")
    proc, base = start_api(api_redis, workdir, workdir / "tokens.json",
                           TASKPULSE_API_SSE_BACKLOG=str(BACKLOG))
    yield Fanout(ApiClient(base, tokens), api_redis, proc)
    proc.stop()


class Stream:
    """One SSE response read message by message: (id, event type, data)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def connected(self) -> None:
        assert self.response.status == 200, await self.response.text()
        lines = [await self.response.content.readline() for _ in range(3)]
        assert lines[1] == b": connected\n"  # the server has fixed its starting point

    async def next(self) -> tuple[str, str, dict] | None:
        """The next message, or None when the server ended the stream."""
        fields: dict[str, str] = {}
        while True:
            line = await self.response.content.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text.startswith(":"):
                continue
            if not text:
                if fields:
                    return fields["id"], fields["event"], json.loads(fields["data"])
                continue
            key, _, value = text.partition(": ")
            fields[key] = value

    async def ids_until(self, last_id: str) -> list[str]:
        ids: list[str] = []
        while not ids or ids[-1] != last_id:
            message = await self.next()
            assert message is not None, f"stream ended after {len(ids)} messages"
            ids.append(message[0])
        return ids


@asynccontextmanager
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        yield http


@asynccontextmanager
async def open_stream(http: aiohttp.ClientSession, fanout: Fanout, last_event_id: str = "",
                      **params: str) -> AsyncIterator[Stream]:
    headers = {**fanout.viewer, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    async with http.get(fanout.api.base_url + "/api/v1/events", params=params,
                        headers=headers) as response:
        stream = Stream(response)
        await stream.connected()
        yield stream


@asynccontextmanager
async def store(fanout: Fanout) -> AsyncIterator[tuple[aioredis.Redis, EventStore]]:
    client = aioredis.Redis.from_url(fanout.redis.url(STORE_DB))
    try:
        await client.flushdb()
        yield client, EventStore(client, Keys())
    finally:
        await client.aclose()


async def stream_ids(client: aioredis.Redis) -> list[str]:
    return [entry_id.decode() for entry_id, _ in await client.xrange(Keys().events)]


async def write_tasks(events: EventStore, prefix: str, tasks: int, per_batch: int = 50,
                      result: str = "'ok'", pause: float = 0.0) -> None:
    """Four events per task (sent .. succeeded), applied ``per_batch`` tasks at a time with a
    ``pause`` between batches (so a reader in this process keeps up with the writer)."""
    now = time.time()
    for start in range(0, tasks, per_batch):
        batch = [e for i in range(start, min(tasks, start + per_batch))
                 for e in sent_and_succeeded(f"{prefix}-{i}", now + i)]
        if result != "'ok'":
            batch = [msgspec.structs.replace(e, result=result) if e.type == "task-succeeded"
                     else e for e in batch]
        await events.apply(batch)
        await asyncio.sleep(pause)


def test_many_open_streams_leave_reads_readiness_and_enqueue_working(fanout: Fanout) -> None:
    async def scenario() -> tuple[list[str], list[list[str]]]:
        async with session() as http, store(fanout) as (client, events), AsyncExitStack() as held:
            streams = await asyncio.gather(*[
                held.enter_async_context(open_stream(http, fanout)) for _ in range(STREAMS)
            ])
            admin = {"Authorization": f"Bearer {fanout.api.tokens['admin']}"}
            base = fanout.api.base_url
            for path in ("/api/v1/stats", "/api/v1/tasks", "/api/v1/workers"):
                async with http.get(base + path, headers=admin) as r:
                    assert r.status == 200, (path, await r.text())
            async with http.get(base + "/readyz") as r:
                assert r.status == 200
                assert await r.json() == {"status": "ready", "redis": True, "broker": True}
            body = {"name": "demo.test_task", "idempotency_key": "fanout-1"}
            async with http.post(base + "/api/v1/tasks", json=body, headers=admin) as r:
                assert r.status == 202, await r.text()
            await write_tasks(events, "many", 2)
            wanted = await stream_ids(client)  # the enqueue's audit entry and 8 task events
            got = await asyncio.gather(*[s.ids_until(wanted[-1]) for s in streams])
            return wanted, got

    wanted, got = asyncio.run(scenario())
    assert len(wanted) == 9
    assert len(got) == STREAMS
    assert all(ids == wanted for ids in got)


async def read_until_task(stream: Stream, task_id: str) -> list[str]:
    """Message ids until ``task_id``'s task-succeeded (the last event written for it)."""
    ids: list[str] = []
    while True:
        message = await stream.next()
        assert message is not None, f"stream ended after {len(ids)} messages"
        ids.append(message[0])
        if message[1] == "task-succeeded" and message[2]["uuid"] == task_id:
            return ids


def test_resuming_from_an_old_id_crosses_to_live_without_gap_or_duplicate(fanout: Fanout) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        async with session() as http, store(fanout) as (client, events):
            await write_tasks(events, "old", 400)  # 1600 entries: catch-up takes several pages
            resume_from = (await stream_ids(client))[10]
            async with open_stream(http, fanout, last_event_id=resume_from) as stream:
                # New entries keep coming while the stream catches up and then joins the feed.
                writer = asyncio.create_task(write_tasks(events, "new", 300, 5, pause=0.005))
                got = await read_until_task(stream, "new-299")
                await writer
            everything = await stream_ids(client)
            return everything[everything.index(resume_from) + 1:], got

    wanted, got = asyncio.run(scenario())
    assert len(wanted) == 1589 + 1200
    assert got == wanted


async def open_slow_stream(fanout: Fanout) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream whose client reads its headers and then nothing: a tiny receive buffer, so the
    server's writes soon block."""
    host, port = fanout.api.base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(f"GET /api/v1/events HTTP/1.0\r\nHost: x\r\n"
                 f"Authorization: {fanout.viewer['Authorization']}\r\n\r\n".encode())
    head = await reader.readuntil(b": connected\n\n")
    assert head.startswith(b"HTTP/1.0 200"), head
    return reader, writer


def sse_ids(body: bytes) -> list[str]:
    return [line[4:] for line in body.decode().split("\n") if line.startswith("id: ")]


def test_a_slow_stream_is_ended_without_holding_up_the_others(fanout: Fanout) -> None:
    # ~8 MB of SSE: more than the kernel buffers between the API and its slow client hold
    # (loopback send buffers grow to tcp_wmem's 4 MB).
    tasks, result = 3000, "x" * 2500

    async def scenario() -> tuple[list[str], list[str], list[str], list[str]]:
        async with session() as http, store(fanout) as (client, events):
            slow_reader, slow_writer = await open_slow_stream(fanout)
            async with open_stream(http, fanout) as fast:
                writer = asyncio.create_task(write_tasks(events, "flood", tasks, 100, result, 0.05))
                fast_ids = await read_until_task(fast, f"flood-{tasks - 1}")
                await writer
            slow_ids = sse_ids(await asyncio.wait_for(slow_reader.read(), 30))  # until EOF
            slow_writer.close()
            async with open_stream(http, fanout, last_event_id=slow_ids[-1]) as resumed:
                rest = await read_until_task(resumed, f"flood-{tasks - 1}")
            return await stream_ids(client), fast_ids, slow_ids, rest

    wanted, fast_ids, slow_ids, rest = asyncio.run(scenario())
    assert fast_ids == wanted  # everything, in order, while the slow one lagged
    assert len(slow_ids) < len(wanted)  # the slow one was ended...
    assert slow_ids == wanted[:len(slow_ids)]  # ...after an unbroken prefix
    assert slow_ids + rest == wanted  # and resumes exactly where it stopped
    assert fanout.proc.process.poll() is None
