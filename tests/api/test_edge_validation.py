"""What the worker would fail on, or must never do, is refused at the API edge (the probes).

Each probe value here was once answered 202 and then failed on the worker (or did harm there).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.api.conftest import ApiClient, apply_events, make_tokens, start_api
from tests.api.test_enqueue import broker_messages
from tests.events import task_event
from tests.services import RedisServer


def error(r) -> dict:
    return r.json()["error"]


# ----------------------------------------------------------------------------- task arguments


def test_cleanup_cache_with_a_caller_chosen_server_and_pattern_is_422(
    api: ApiClient, api_redis: RedisServer
) -> None:
    before = len(broker_messages(api_redis, "default"))
    body = {"name": "maintenance.cleanup_cache",
            "kwargs": {"redis_url": f"redis://127.0.0.1:{api_redis.port}/1",
                       "pattern": "redbeat:tp:nightly-demo*"}}

    r = api.post("/api/v1/tasks", role="operator", json=body)

    assert r.status_code == 422
    assert error(r)["details"]["field"] == "kwargs.redis_url"
    assert len(broker_messages(api_redis, "default")) == before


@pytest.mark.parametrize(
    ("name", "kwargs", "field"),
    [
        ("demo.test_task", {"sleep_seconds": -5}, "kwargs.sleep_seconds"),
        ("maintenance.backup_database", {"keep": 0}, "kwargs.keep"),
        ("finance.calculate_monthly_revenue", {"month": "../../etc"}, "kwargs.month"),
        ("finance.calculate_monthly_revenue", {"month": "2026-10\n"}, "kwargs.month"),
        ("finance.send_bill_reminders", {"days_ahead": 1e6}, "kwargs.days_ahead"),
        ("finance.send_bill_reminders", {"days_ahead": 1_000_000}, "kwargs.days_ahead"),
        ("demo.long_running_task", {"total": 1e9}, "kwargs.total"),
        ("demo.long_running_task", {"total": 1_000_000_000}, "kwargs.total"),
        ("reports.generate_monthly_report", {"period_start": "9999-12-01"},
         "kwargs.period_start"),
        ("reports.generate_daily_report", {"period_start": "9999-12-01"}, "kwargs.period_start"),
        ("maintenance.cleanup_cache", {"under": "*"}, "kwargs.under"),
        ("notifications.send_notification_email",
         {"to": "x@127.0.0.1:25", "subject": "s", "body": "b"}, "kwargs.to"),
    ],
)
def test_a_value_the_task_signature_refuses_is_422_naming_the_field(
    api: ApiClient, name: str, kwargs: dict, field: str
) -> None:
    r = api.post("/api/v1/tasks", json={"name": name, "kwargs": kwargs})

    assert r.status_code == 422, r.text
    assert error(r)["details"]["field"] == field


def test_the_catalog_route_shows_each_parameters_constraints(api: ApiClient) -> None:
    tasks = {t["name"]: t for t in api.get("/api/v1/catalog", role="viewer").json()["tasks"]}
    keep = next(p for p in tasks["maintenance.backup_database"]["parameters"]
                if p["name"] == "keep")
    assert keep["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}


def test_the_openapi_documents_each_tasks_parameters_on_the_enqueue_body(api: ApiClient) -> None:
    spec = api.get("/openapi.json", role=None).json()
    variants = {v["title"]: v for v in spec["components"]["schemas"]["EnqueueRequest"]["oneOf"]}
    month = variants["finance.calculate_monthly_revenue"]["properties"]["kwargs"]["properties"]
    assert "pattern" in month["month"]["anyOf"][0]
    assert variants["notifications.send_notification_email"]["description"].endswith(
        "Required: to, subject, body.")


# ----------------------------------------------------------------------------- suggestions


def test_an_unknown_task_name_suggests_the_close_ones(api: ApiClient) -> None:
    for typo in ("finance.check_pending_bill", "check_pending_bills"):
        r = api.post("/api/v1/tasks", json={"name": typo})
        assert r.status_code == 422
        assert "finance.check_pending_bills" in error(r)["details"]["did_you_mean"], typo


def test_an_unknown_queue_suggests_the_close_one_and_lists_all(api: ApiClient) -> None:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "queue": "finanse"})
    assert r.status_code == 422
    assert error(r)["details"]["did_you_mean"] == ["finance"]
    assert error(r)["details"]["allowed"] == ["default", "finance", "reports", "email"]


def test_a_bad_enum_value_lists_the_valid_ones(api: ApiClient) -> None:
    r = api.get("/api/v1/tasks?state=DONE")
    assert r.status_code == 422
    assert "SUCCESS" in error(r)["details"]["allowed"]
    assert "SUCCESS" in error(r)["message"]
    r = api.post("/api/v1/tasks/batch", json={"tasks": [{"name": "demo.test_task",
                                                          "priority": "urgent"}]})
    assert error(r)["details"] == {"field": "tasks[0].priority", "in": "body",
                                   "allowed": ["critical", "high", "low", "normal"]}


def test_a_bad_enum_value_deep_in_a_workflow_lists_the_valid_ones(api: ApiClient) -> None:
    # Found by the fuzzer: a 500 while looking the valid values up through nested steps.
    body = {"chord": {"header": [{}], "body": {"group": [{"name": "demo.test_task",
                                                          "priority": "AAA"}]}}}
    r = api.post("/api/v1/workflows", json=body)
    assert r.status_code == 422
    assert error(r)["details"]["field"] == "chord.body.group[0].priority"
    assert error(r)["details"]["allowed"] == ["critical", "high", "low", "normal"]


# ----------------------------------------------------------------------------- caps


def test_an_eta_past_the_horizon_is_422(api: ApiClient) -> None:
    eta = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "eta": eta})
    assert r.status_code == 422
    assert error(r)["details"]["field"] == "eta"
    assert "TASKPULSE_API_MAX_DELAY_SECONDS" in error(r)["message"]


@pytest.mark.parametrize("field", ["countdown", "expires"])
def test_countdown_or_expires_past_the_horizon_is_422(api: ApiClient, field: str) -> None:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", field: 2 * 365 * 86400})
    assert r.status_code == 422
    assert error(r)["details"]["field"] == field


def test_an_eta_without_an_offset_is_422(api: ApiClient) -> None:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "eta": "2030-01-01T00:00:00"})
    assert r.status_code == 422
    assert error(r)["details"]["field"] == "eta"


def test_arguments_over_the_size_cap_are_413_stating_the_cap(api: ApiClient, api_redis) -> None:
    before = len(broker_messages(api_redis, "default"))
    body = {"name": "demo.test_task", "kwargs": {"message": "x" * 70_000}}
    r = api.post("/api/v1/tasks", json=body)
    assert r.status_code == 413
    assert "65536 bytes" in error(r)["message"]
    assert error(r)["details"]["limit"] == 65536
    assert len(broker_messages(api_redis, "default")) == before


@pytest.fixture(scope="module")
def tight_api(api_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[ApiClient]:
    """An API with its caps configured down: one minute ahead, 2 KiB of arguments."""
    workdir: Path = tmp_path_factory.mktemp("tight-api")
    tokens = make_tokens(workdir / "tokens.json")
    proc, base = start_api(api_redis, workdir, workdir / "tokens.json",
                           TASKPULSE_API_MAX_DELAY_SECONDS="60",
                           TASKPULSE_API_MAX_ARGS_BYTES="2048")
    yield ApiClient(base, tokens)
    proc.stop()


def test_the_caps_follow_their_settings_and_the_openapi_shows_them(tight_api: ApiClient) -> None:
    late = tight_api.post("/api/v1/tasks", json={"name": "demo.test_task", "countdown": 120})
    big = tight_api.post("/api/v1/tasks", json={"name": "demo.test_task", "args": ["x" * 3000]})
    props = tight_api.get("/openapi.json", role=None).json()[
        "components"]["schemas"]["EnqueueRequest"]["properties"]

    assert late.status_code == 422
    assert big.status_code == 413
    assert "2048 bytes" in error(big)["message"]
    assert props["countdown"]["anyOf"][0]["maximum"] == 60


# ----------------------------------------------------------------------------- idempotency


def test_the_same_idempotency_key_with_a_different_body_is_409(
    api: ApiClient, api_redis: RedisServer, store: redis.Redis
) -> None:
    first = api.post("/api/v1/tasks", json={"name": "demo.test_task", "kwargs": {"message": "a"},
                                            "idempotency_key": "k-differs"})
    again = api.post("/api/v1/tasks", json={"name": "demo.test_task", "kwargs": {"message": "b"},
                                            "idempotency_key": "k-differs"})
    assert again.status_code == 409
    assert error(again)["details"] == {"field": "idempotency_key", "task_id": first.json()["id"]}
    ids = [m["headers"]["id"] for m in broker_messages(api_redis, "default")]
    assert ids.count(first.json()["id"]) == 1


def test_the_same_request_written_differently_is_still_a_duplicate(
    api: ApiClient, store: redis.Redis
) -> None:
    one = {"name": "demo.test_task", "kwargs": {"message": "m", "fail_times": 0},
           "priority": "high", "idempotency_key": "k-same"}
    two = {"idempotency_key": "k-same", "priority": 3, "name": "demo.test_task",
           "kwargs": {"fail_times": 0, "message": "m"}}
    first = api.post("/api/v1/tasks", json=one).json()
    second = api.post("/api/v1/tasks", json=two).json()
    assert (second["id"], second["duplicate"]) == (first["id"], True)


def test_a_batch_with_one_conflicting_key_sends_and_claims_nothing(
    api: ApiClient, api_redis: RedisServer, store: redis.Redis
) -> None:
    api.post("/api/v1/tasks", json={"name": "demo.test_task", "idempotency_key": "k-batch"})
    before = len(broker_messages(api_redis, "default"))
    tasks = [{"name": "demo.test_task", "idempotency_key": "k-fresh"},
             {"name": "finance.check_pending_bills", "idempotency_key": "k-batch"}]
    r = api.post("/api/v1/tasks/batch", json={"tasks": tasks})
    assert r.status_code == 409
    assert error(r)["details"]["field"] == "tasks[1].idempotency_key"
    assert len(broker_messages(api_redis, "default")) == before
    assert store.get("tp:idem:k-fresh") is None


def test_an_idempotency_key_header_over_the_limit_is_422_not_cut_short(
    api: ApiClient, api_redis: RedisServer, store: redis.Redis
) -> None:
    before = len(broker_messages(api_redis, "default"))
    for key in ("a" * 200 + "1", "a" * 200 + "2"):
        r = api.post("/api/v1/tasks", json={"name": "demo.test_task"},
                     headers={"Idempotency-Key": key})
        assert r.status_code == 422
        assert error(r)["details"] == {"field": "Idempotency-Key", "in": "header"}
    assert len(broker_messages(api_redis, "default")) == before


def test_an_idempotency_key_header_and_a_different_body_key_are_422(api: ApiClient) -> None:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "idempotency_key": "body"},
                 headers={"Idempotency-Key": "header"})
    assert r.status_code == 422


# ----------------------------------------------------------------------------- schema vs API


@pytest.mark.parametrize("query", ["until=null", "state=null", "since=", "cursor=null"])
def test_a_query_parameter_that_says_null_is_422(api: ApiClient, query: str) -> None:
    r = api.get(f"/api/v1/tasks?{query}")
    assert r.status_code == 422
    assert error(r)["details"]["field"] == query.partition("=")[0]


def test_a_non_ascii_token_name_is_422_as_the_schema_pattern_says(api: ApiClient) -> None:
    r = api.post("/api/v1/tokens", json={"name": "tökén", "role": "viewer"})
    assert r.status_code == 422


def test_a_priority_number_written_with_a_fraction_of_zero_is_that_integer(
    api: ApiClient, api_redis: RedisServer
) -> None:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "priority": 2.0})
    assert r.status_code == 202
    assert r.json()["priority"] == "normal"
    half = api.post("/api/v1/tasks", json={"name": "demo.test_task", "priority": 2.5})
    assert half.status_code == 422


def test_history_over_the_bucket_cap_is_422_and_the_schema_says_so(api: ApiClient) -> None:
    now = time.time()
    r = api.get(f"/api/v1/history?granularity=minute&since={now - 2000 * 60}&until={now}")
    assert r.status_code == 422
    spec = api.get("/openapi.json", role=None).json()
    [since] = [p for p in spec["paths"]["/api/v1/history"]["get"]["parameters"]
               if p["name"] == "since"]
    assert "1500 buckets" in since["schema"]["description"]


# ----------------------------------------------------------------------------- just enqueued


def test_a_just_enqueued_task_shows_as_pending_before_the_collector_has_it(
    api: ApiClient, store: redis.Redis
) -> None:
    task_id = api.post("/api/v1/tasks", role="operator",
                       json={"name": "finance.check_pending_bills"}).json()["id"]

    shown = api.get(f"/api/v1/tasks/{task_id}", role="viewer")
    tree = api.get(f"/api/v1/tasks/{task_id}/tree", role="viewer")
    events = api.get(f"/api/v1/tasks/{task_id}/events", role="viewer")

    assert shown.status_code == 200
    assert (shown.json()["state"], shown.json()["name"], shown.json()["queue"]) == (
        "PENDING", "finance.check_pending_bills", "finance")
    assert tree.status_code == 200
    assert tree.json()["root"]["state"] == "PENDING"
    assert tree.json()["by_state"] == {"PENDING": 1}
    assert (events.status_code, events.json()["events"]) == (200, [])


def test_a_just_enqueued_task_is_a_conflict_not_a_404_for_retry_forget_and_annotate(
    api: ApiClient, store: redis.Redis
) -> None:
    task_id = api.post("/api/v1/tasks", json={"name": "demo.test_task"}).json()["id"]

    retry = api.post(f"/api/v1/tasks/{task_id}/retry")
    forget = api.request("DELETE", f"/api/v1/tasks/{task_id}")
    annotate = api.request("PATCH", f"/api/v1/tasks/{task_id}", json={"note": "n"})

    assert [r.status_code for r in (retry, forget, annotate)] == [409, 409, 409]
    assert error(forget)["details"] == {"state": "PENDING"}


def test_once_the_collector_has_the_task_its_record_is_the_answer(
    api: ApiClient, api_redis: RedisServer, store: redis.Redis
) -> None:
    task_id = api.post("/api/v1/tasks", json={"name": "demo.test_task"}).json()["id"]
    apply_events(api_redis, [task_event("started", task_id, time.time(),
                                        name="demo.test_task")])
    assert api.get(f"/api/v1/tasks/{task_id}").json()["state"] == "STARTED"


def test_a_forgotten_task_does_not_come_back_as_pending(
    api: ApiClient, api_redis: RedisServer, store: redis.Redis
) -> None:
    task_id = api.post("/api/v1/tasks", json={"name": "demo.test_task"}).json()["id"]
    apply_events(api_redis, [task_event("succeeded", task_id, time.time(), runtime=0.1)])

    assert api.request("DELETE", f"/api/v1/tasks/{task_id}").status_code == 200
    assert api.get(f"/api/v1/tasks/{task_id}").status_code == 404


# ----------------------------------------------------------------------------- workflows


def test_a_mutable_chain_step_that_cannot_take_the_result_before_it_is_422(
    api: ApiClient, api_redis: RedisServer
) -> None:
    before = len(broker_messages(api_redis, "default"))
    chain = [{"name": "demo.test_task"}, {"name": "demo.test_task", "immutable": False}]
    r = api.post("/api/v1/workflows", json={"chain": chain})
    assert r.status_code == 422
    assert error(r)["details"]["field"] == "chain[1].immutable"
    assert "'message' takes ['string']" in error(r)["message"]
    assert len(broker_messages(api_redis, "default")) == before


def test_a_mutable_chord_body_gets_a_list_and_must_take_one(api: ApiClient) -> None:
    chord = {"header": [{"name": "demo.test_task"}],
             "body": {"name": "demo.long_running_task", "immutable": False}}
    r = api.post("/api/v1/workflows", json={"chord": chord})
    assert r.status_code == 422
    assert error(r)["details"]["field"] == "chord.body.immutable"
    assert "returns ['array']" in error(r)["message"]
