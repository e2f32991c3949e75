"""``normalize.task_events`` (the C-decoded common case) gives exactly what the general path
(``orjson.loads`` + ``normalize``) gives, and steps aside for anything it cannot vouch for."""

from __future__ import annotations

import json
import random

import orjson
from celery import Celery
from hypothesis import given, settings
from hypothesis import strategies as st

from event_collector.consume import unwrap_kombu_redis
from event_collector.events import TASK_EVENT_KINDS, TASK_PROGRESS
from event_collector.normalize import InvalidEvent, normalize, task_events
from tests.services import RedisServer

TASK_TYPES = [*TASK_EVENT_KINDS, TASK_PROGRESS]
TEXT = ["name", "args", "kwargs", "queue", "exchange", "routing_key", "eta", "expires",
        "parent_id", "root_id", "result", "exception", "traceback", "signum"]
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**70), st.floats(allow_nan=False),
    st.text(max_size=8), st.just("with\ttab"), st.just(""), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["current", "total"]), st.integers(0, 9), max_size=2),
)


def general(body: bytes) -> list:
    """What the general path makes of a body: events, or the reasons it rejects them."""
    parsed = orjson.loads(body)
    out = []
    for item in parsed if isinstance(parsed, list) else [parsed]:
        try:
            out.append(normalize(item))
        except InvalidEvent as exc:
            out.append(exc.reason)
    return out


GOOD_VALUES = {
    **{name: st.one_of(st.none(), st.text(max_size=6)) for name in TEXT},
    "runtime": st.one_of(st.none(), st.floats(0, 10), st.integers(0, 5)),
    "priority": st.one_of(st.none(), st.integers(0, 9)),
    "retries": st.one_of(st.none(), st.integers(0, 3)),
    "current": st.one_of(st.none(), st.floats(0, 10), st.integers(0, 5)),
    "total": st.one_of(st.none(), st.integers(0, 50)),
    "terminated": st.one_of(st.none(), st.booleans()),
    "expired": st.one_of(st.none(), st.booleans()),
    "requeue": st.one_of(st.none(), st.booleans()),
    "utcoffset": st.integers(-12, 12),
    "progress": st.dictionaries(st.sampled_from(["current", "total"]), st.integers(0, 9)),
}


def mostly(draw: st.DrawFn, good: st.SearchStrategy, odd: st.SearchStrategy) -> object:
    """A well-formed value, or one time in eight an odd one."""
    return draw(odd) if draw(st.integers(0, 7)) == 0 else draw(good)


@st.composite
def task_event(draw: st.DrawFn) -> dict:
    task_id = mostly(draw, st.sampled_from(["t-1", "3f0e1d4c-8a5b-4f3e-9d2c-1b0a9e8f7d6c"]),
                     st.sampled_from(["", "a b", "x" * 300, None, 5]))
    event: dict = {
        "type": mostly(draw, st.sampled_from(TASK_TYPES),
                       st.sampled_from(["worker-heartbeat", "task-exploded", "", None])),
        "timestamp": mostly(draw, st.floats(1, 2e9),
                            st.one_of(st.integers(-1, 10), st.just(2e11), st.text(max_size=4))),
        "hostname": mostly(draw, st.sampled_from(["w1@host", "", None]),
                           st.sampled_from(["bad\nhost", "tab\thost", 7, False])),
        "pid": mostly(draw, st.integers(0, 2**40), st.sampled_from([None, "12", 1.0, True])),
        "clock": mostly(draw, st.integers(0, 99), st.sampled_from([None, 2**70, 1.5])),
        "uuid": task_id,
    }
    for name in draw(st.lists(st.sampled_from(sorted(GOOD_VALUES)), max_size=8, unique=True)):
        event[name] = mostly(draw, GOOD_VALUES[name], ODD_VALUES)
    if draw(st.booleans()):
        event["root_id"] = task_id
    return event


@settings(max_examples=400, deadline=None)
@given(events=st.lists(task_event(), min_size=1, max_size=4), as_list=st.booleans())
def test_the_fast_path_agrees_with_the_general_one_or_steps_aside(
    events: list[dict], as_list: bool
) -> None:
    body = json.dumps(events if as_list else events[0]).encode()
    fast = task_events(body)
    if fast is not None:
        assert fast == general(body)


def test_a_nested_progress_is_left_to_normalize() -> None:
    body = b'{"type": "task-progress", "uuid": "t", "timestamp": 5.0, "progress": {"current": 3}}'
    assert task_events(body) is None
    assert general(body)[0].progress_current == 3.0


def test_timestamps_parse_to_the_same_float_either_way() -> None:
    """Event ids hash the timestamp's repr: both parsers must read the same float."""
    rng = random.Random(16)
    for _ in range(20_000):
        stamp = f"{rng.uniform(1e9, 2e9):.{rng.randint(1, 17)}f}"
        body = b'{"type": "task-started", "uuid": "t", "timestamp": ' + stamp.encode() + b"}"
        [event] = task_events(body)
        assert event.timestamp == orjson.loads(body)["timestamp"], stamp


def test_what_celery_sends_takes_the_fast_path(tmp_path) -> None:
    """Every task event of a lifecycle, captured off a real broker as Celery's dispatchers send
    it (task.multi batches included), is decoded in C."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        pubsub = server.client().pubsub()
        pubsub.psubscribe("/0.celeryev/*")
        pubsub.get_message(timeout=1)
        app = Celery(broker=server.url(0), set_as_current=False)
        with app.connection_for_write() as conn:
            producer = app.events.Dispatcher(conn, hostname="gen@h", enabled=True)
            worker = app.events.Dispatcher(conn, hostname="w1@h", enabled=True,
                                           buffer_group=["task"])
            producer.send("task-sent", uuid="t-1", root_id="t-1", parent_id=None,
                          name="demo.test_task", args="(1,)", kwargs="{}", retries=0, eta=None,
                          expires=None, queue="default", exchange="", routing_key="default")
            worker.send("task-received", uuid="t-1", name="demo.test_task", args="(1,)",
                        kwargs="{}", root_id="t-1", parent_id=None, retries=0, eta=None,
                        expires=None)
            worker.send("task-started", uuid="t-1")
            worker.send("task-progress", uuid="t-1", current=3, total=10)
            worker.send("task-failed", uuid="t-1", exception="ValueError('x')",
                        traceback="Traceback ...")
            worker.send("task-retried", uuid="t-1", exception="ValueError('x')",
                        traceback="Traceback ...")
            worker.send("task-revoked", uuid="t-1", terminated=True, signum="SIGTERM",
                        expired=False)
            worker.send("task-succeeded", uuid="t-1", result="2", runtime=0.01)
            worker.flush()
        bodies = []
        while (message := pubsub.get_message(timeout=1)) is not None:
            bodies.append(unwrap_kombu_redis(message["data"]))
    finally:
        server.stop()
    assert len(bodies) == 2  # task-sent alone, the worker's seven in one task.multi
    for body in bodies:
        fast = task_events(body)
        assert fast is not None, body
        assert fast == general(body)
