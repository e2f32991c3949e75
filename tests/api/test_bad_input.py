"""Every kind of bad request gets its 4xx and the one error shape, never a 500."""

from __future__ import annotations

import pytest

from producer_api.json_depth import MAX_JSON_DEPTH
from tests.api.conftest import ApiClient


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "details"} <= set(body["error"])
    return body["error"]


def test_malformed_json_is_400(api: ApiClient) -> None:
    r = api.post("/api/v1/tasks", data=b'{"name": "demo.test_task",',
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert error_of(r)["code"] == "bad_request"


def test_unknown_task_is_422_naming_the_field(api: ApiClient) -> None:
    r = api.post("/api/v1/tasks", json={"name": "billing.nope"})
    assert r.status_code == 422
    assert error_of(r)["details"]["field"] == "name"


def test_argument_of_the_wrong_type_is_422_naming_the_argument(api: ApiClient) -> None:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "kwargs": {"message": 5}})
    assert r.status_code == 422
    assert error_of(r)["details"]["field"] == "kwargs.message"


def test_unknown_keyword_argument_is_422(api: ApiClient) -> None:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "kwargs": {"colour": "red"}})
    assert r.status_code == 422
    assert error_of(r)["details"]["field"] == "kwargs.colour"


def test_missing_required_argument_is_422(api: ApiClient) -> None:
    body = {"name": "notifications.send_notification_email", "kwargs": {"to": "a@b.c"}}
    r = api.post("/api/v1/tasks", json=body)
    assert r.status_code == 422
    assert error_of(r)["details"]["field"] == "kwargs.subject"


def test_unknown_queue_is_422(api: ApiClient) -> None:
    r = api.post("/api/v1/tasks", json={"name": "demo.test_task", "queue": "nowhere"})
    assert r.status_code == 422
    assert error_of(r)["details"]["field"] == "queue"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": "demo.test_task", "priority": "urgent"}, "priority"),
     ({"name": "demo.test_task", "countdown": -1}, "countdown"),
     ({"name": "demo.test_task", "args": {"a": 1}}, "args"),
     ({"name": "demo.test_task", "surprise": True}, ""),
     ({"tasks": []}, "")],
)
def test_schema_violation_is_422(api: ApiClient, body: dict, field: str) -> None:
    r = api.post("/api/v1/tasks", json=body)
    assert r.status_code == 422
    assert error_of(r)["details"]["field"] == field


def test_countdown_and_eta_together_are_422(api: ApiClient) -> None:
    body = {"name": "demo.test_task", "countdown": 5, "eta": "2030-01-01T00:00:00Z"}
    r = api.post("/api/v1/tasks", json=body)
    assert r.status_code == 422


def test_body_over_the_limit_is_413(api: ApiClient) -> None:
    big = {"name": "demo.test_task", "kwargs": {"message": "x" * (1024 * 1024 + 10)}}
    r = api.post("/api/v1/tasks", json=big)
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"


def test_unknown_task_id_is_404(api: ApiClient, store) -> None:
    for path in ("/api/v1/tasks/nope", "/api/v1/tasks/nope/events"):
        r = api.get(path)
        assert r.status_code == 404, path
        assert error_of(r)["code"] == "not_found"
    assert api.post("/api/v1/tasks/nope/revoke", json={}).status_code == 404
    assert api.post("/api/v1/tasks/nope/retry").status_code == 404


def test_bad_query_parameter_is_422(api: ApiClient) -> None:
    for query in ("state=DONE", "limit=0", "limit=100000", "cursor=%%%", "since=abc"):
        r = api.get(f"/api/v1/tasks?{query}")
        assert r.status_code == 422, query
        error_of(r)


def test_unknown_route_is_a_json_404_and_wrong_method_a_json_405(api: ApiClient) -> None:
    assert error_of(api.get("/api/v1/nothing-here"))["code"] == "not_found"
    r = api.request("PUT", "/api/v1/tasks")
    assert r.status_code == 405
    error_of(r)


def test_a_405_says_which_methods_are_allowed(api: ApiClient) -> None:
    r = api.request("DELETE", "/api/v1/stats")
    assert r.status_code == 405
    assert set(r.headers["Allow"].split(",")) >= {"GET"}
    assert r.headers["Content-Type"].startswith("application/json")


def test_missing_token_is_401(api: ApiClient) -> None:
    r = api.get("/api/v1/tasks", role=None)
    assert r.status_code == 401
    assert error_of(r)["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_token_is_401(api: ApiClient) -> None:
    r = api.get("/api/v1/tasks", token="tp_not-a-real-token")
    assert r.status_code == 401


def test_wrong_role_is_403(api: ApiClient) -> None:
    r = api.post("/api/v1/tasks", role="viewer", json={"name": "demo.test_task"})
    assert r.status_code == 403
    assert error_of(r)["details"] == {"role": "viewer", "required": "operator"}


DEEP = "[" * 990 + "]" * 990  # ~1000 levels: msgspec's recursion used to give up with a 500


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/tasks", f'{{"name": "demo.test_task", "args": [{DEEP}]}}', "args"),
        ("POST", "/api/v1/tasks/batch",
         f'{{"tasks": [{{"name": "demo.test_task", "kwargs": {{"message": {DEEP}}}}}]}}',
         "tasks[0].kwargs.message"),
        ("POST", "/api/v1/schedules",
         f'{{"name": "deep", "task": "demo.test_task", "interval": {{"every": 60}}, '
         f'"kwargs": {{"message": {DEEP}}}}}', "kwargs.message"),
        ("PATCH", "/api/v1/schedules/deep", f'{{"args": {DEEP}}}', "args"),
        ("POST", "/api/v1/workflows",
         f'{{"chain": [{{"name": "demo.test_task", "args": {DEEP}}}]}}', "chain[0].args"),
        ("PATCH", "/api/v1/tasks/some-task", f'{{"labels": {{"a": {DEEP}}}}}', "labels.a"),
        ("POST", "/api/v1/tokens", f'{{"name": {DEEP}}}', "name"),
        ("POST", "/api/v1/tasks/some-task/revoke", f'{{"terminate": {DEEP}}}', "terminate"),
    ],
)
def test_deeply_nested_body_is_422_naming_the_field(
    api: ApiClient, method: str, path: str, body: str, field: str
) -> None:
    r = api.request(method, path, data=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    error = error_of(r)
    assert error["code"] == "validation_error"
    assert error["details"] == {"field": field, "in": "body", "max_depth": MAX_JSON_DEPTH}


def test_a_body_nested_to_the_limit_is_not_refused_for_depth(api: ApiClient) -> None:
    # 2 levels of envelope ({"kwargs": {"message": ...}}) + 62 of list: exactly the limit.
    value = "[" * (MAX_JSON_DEPTH - 2) + "]" * (MAX_JSON_DEPTH - 2)
    body = f'{{"name": "demo.test_task", "kwargs": {{"message": {value}}}}}'
    r = api.post("/api/v1/tasks", data=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert error_of(r)["details"]["field"] == "kwargs.message"  # the catalog: not a string
    assert "max_depth" not in error_of(r)["details"]
