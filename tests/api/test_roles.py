"""The role matrix: every route x every role (and no token), against the running API."""

from __future__ import annotations

import re

import pytest

from producer_api.auth import ROLE_RANK
from tests.api.conftest import ROLES, ApiClient

# (method, path, JSON body, least role allowed). Ids that do not exist are fine: an allowed
# role then gets a 404, which still proves it got past the auth check.
ROUTES = [
    ("GET", "/api/v1/tasks", None, "viewer"),
    ("GET", "/api/v1/tasks/count", None, "viewer"),
    ("GET", "/api/v1/tasks/missing", None, "viewer"),
    ("GET", "/api/v1/tasks/missing/events", None, "viewer"),
    ("GET", "/api/v1/stats", None, "viewer"),
    ("GET", "/api/v1/history", None, "viewer"),
    ("GET", "/api/v1/workers", None, "viewer"),
    ("GET", "/api/v1/queues", None, "viewer"),
    ("GET", "/api/v1/catalog", None, "viewer"),
    ("GET", "/api/v1/events", None, "viewer"),
    ("POST", "/api/v1/tasks", {"name": "demo.test_task"}, "operator"),
    ("POST", "/api/v1/tasks/batch", {"tasks": [{"name": "demo.test_task"}]}, "operator"),
    ("POST", "/api/v1/tasks/missing/retry", None, "operator"),
    ("POST", "/api/v1/tasks/missing/revoke", {}, "admin"),
    ("GET", "/api/v1/failures", None, "viewer"),
    ("GET", "/api/v1/tasks?exception=KeyError&q=x", None, "viewer"),
    ("POST", "/api/v1/tasks/bulk/retry", {"filter": {"name": "demo.test_task"}}, "operator"),
    ("POST", "/api/v1/tasks/bulk/revoke", {"filter": {"name": "demo.test_task"}}, "admin"),
    ("GET", "/api/v1/tokens", None, "admin"),
    ("POST", "/api/v1/tokens", {"name": "matrix", "role": "viewer"}, "admin"),
    ("DELETE", "/api/v1/tokens/missing", None, "admin"),
    # Fleet control: this module's broker has no workers, so nothing is really shut down.
    ("POST", "/api/v1/workers/*/pool", {"grow": 1}, "admin"),
    ("POST", "/api/v1/workers/missing/consumers", {"add": "default"}, "admin"),
    ("POST", "/api/v1/workers/missing/shutdown", None, "admin"),
    ("GET", "/api/v1/catalog/demo.test_task/limits", None, "viewer"),
    ("PUT", "/api/v1/catalog/demo.test_task/limits", {}, "operator"),
    ("POST", "/api/v1/queues/default/pause", None, "operator"),
    ("POST", "/api/v1/queues/default/resume", None, "operator"),
    ("POST", "/api/v1/queues/default/purge", {"expected": 0}, "admin"),
    ("GET", "/api/v1/queues/default/messages", None, "viewer"),
]
PUBLIC = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/runbook"]


def call(api: ApiClient, method: str, path: str, body, role: str | None) -> int:
    r = api.request(method, path, role=role, json=body, stream=path.endswith("/events"))
    r.close()  # the SSE stream would run forever; its status line is all this test needs
    return r.status_code


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "least"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_role_is_allowed_exactly_from_the_least_role_up(
    api: ApiClient, store, method: str, path: str, body, least: str, role: str
) -> None:
    status = call(api, method, path, body, role)
    if ROLE_RANK[role] >= ROLE_RANK[least]:
        assert status not in (401, 403), f"{role} should be allowed, got {status}"
    else:
        assert status == 403


@pytest.mark.parametrize(("method", "path", "body", "least"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_every_protected_route_needs_a_token(api: ApiClient, method, path, body, least) -> None:
    assert call(api, method, path, body, None) == 401


@pytest.mark.parametrize("path", PUBLIC)
def test_probes_metrics_and_docs_need_no_token(api: ApiClient, path: str) -> None:
    assert api.get(path, role=None).status_code == 200


def test_every_documented_operation_enforces_its_role(api: ApiClient, store) -> None:
    """Covers routes added later too: each one refuses no token, and the roles below its own."""
    spec = api.get("/openapi.json", role=None).json()
    checked = 0
    for template, ops in spec["paths"].items():
        path = re.sub(r"{\w+}", "missing", template)
        for method, op in ops.items():
            least = op.get("x-taskpulse-role")
            if least is None:
                assert "security" not in op
                continue
            assert call(api, method.upper(), path, None, None) == 401, (method, template)
            for role in ROLES:
                status = call(api, method.upper(), path, None, role)
                allowed = ROLE_RANK[role] >= ROLE_RANK[least]
                assert (status not in (401, 403)) if allowed else status == 403, (
                    method, template, role, status,
                )
            checked += 1
    assert checked >= len(ROUTES)


def test_a_revoked_token_stops_working(api: ApiClient) -> None:
    created = api.post("/api/v1/tokens", json={"name": "short-lived", "role": "viewer"}).json()
    assert api.get("/api/v1/stats", token=created["token"]).status_code == 200
    r = api.request("DELETE", f"/api/v1/tokens/{created['id']}")
    assert r.status_code == 200
    assert api.get("/api/v1/stats", token=created["token"]).status_code == 401


def test_token_list_never_shows_secrets_or_hashes(api: ApiClient) -> None:
    listed = api.get("/api/v1/tokens").json()["tokens"]
    assert {t["name"] for t in listed} >= {"test-viewer", "test-operator", "test-admin"}
    assert all(set(t) == {"id", "name", "role", "created"} for t in listed)
