"""The fleet, failure and bulk routes answer a bad request with a 422 naming what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ApiClient
from tests.api.test_bad_input import error_of


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/api/v1/workers/w1@h/pool", {"grow": 1, "shrink": 1}, ""),
    ("POST", "/api/v1/workers/w1@h/pool", {}, ""),
    ("POST", "/api/v1/workers/w1@h/pool", {"grow": -3}, "grow"),
    ("POST", "/api/v1/workers/w1@h/consumers", {"add": "nope"}, "add"),
    ("PUT", "/api/v1/catalog/demo.test_task/limits", {"rate_limit": "ten per minute"},
     "rate_limit"),
    ("PUT", "/api/v1/catalog/demo.test_task/limits", {"soft_time_limit": 10, "time_limit": 5},
     "soft_time_limit"),
    ("POST", "/api/v1/queues/default/purge", {}, ""),
    ("POST", "/api/v1/tasks/bulk/retry", {"filter": {"colour": "red"}}, "filter"),
    ("POST", "/api/v1/tasks/bulk/retry", {"filter": {}, "limit": 0}, "limit"),
    ("POST", "/api/v1/tasks/bulk/revoke", {"filter": {"state": "NOPE"}}, "filter.state"),
])
def test_a_bad_operations_body_is_422_naming_the_field(
    api: ApiClient, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    r = api.request(method, path, "admin", json=body)
    assert r.status_code == 422, r.text
    assert error_of(r)["details"]["field"] == field


@pytest.mark.parametrize(("path", "field"), [
    ("/api/v1/failures?limit=0", "limit"),
    ("/api/v1/tasks?fingerprint=zz", "fingerprint"),
])
def test_a_bad_failures_query_is_422_naming_the_parameter(
    api: ApiClient, path: str, field: str
) -> None:
    r = api.get(path)
    assert r.status_code == 422, r.text
    assert error_of(r)["details"] == {"field": field, "in": "query"}
