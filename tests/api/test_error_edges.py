"""Requests that go wrong below the routes: rejected by the HTTP parser, or abandoned by the client.

This module runs its own API process so it can read that process's log and metrics.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.api.conftest import ApiClient, make_tokens, start_api
from tests.services import RedisServer, ServiceProcess


@dataclass
class Edge:
    api: ApiClient
    proc: ServiceProcess
    host: str
    port: int


@pytest.fixture(scope="module")
def edge(api_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    workdir = tmp_path_factory.mktemp("edge")
    tokens = make_tokens(workdir / "tokens.json")
    proc, base = start_api(api_redis, workdir, workdir / "tokens.json")
    host, port = base.removeprefix("http://").split(":")
    yield Edge(ApiClient(base, tokens), proc, host, int(port))
    proc.stop()


def exchange(edge: Edge, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the status, headers and body."""
    with socket.create_connection((edge.host, edge.port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def json_error(headers: dict[str, str], body: bytes) -> dict:
    assert headers["Content-Type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert {"code", "message", "details"} <= set(error)
    return error


def test_an_oversize_url_gets_a_json_400(edge: Edge) -> None:
    status, headers, body = exchange(
        edge, b"GET /api/v1/tasks?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == 400
    assert json_error(headers, body)["details"] == {"limit_bytes": 8190}


def test_an_oversize_header_gets_a_json_400(edge: Edge) -> None:
    status, headers, body = exchange(
        edge, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    )
    assert status == 400
    assert "longer than 8190 bytes" in json_error(headers, body)["message"]


def test_too_many_headers_get_a_json_431(edge: Edge) -> None:
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(200))
    status, headers, body = exchange(edge, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status == 431
    assert json_error(headers, body)["code"] == "request_header_fields_too_large"


def test_garbage_instead_of_http_gets_a_json_400(edge: Edge) -> None:
    status, headers, body = exchange(edge, b"HELLO THERE\r\n\r\n")
    assert status == 400
    assert json_error(headers, body)["code"] == "bad_request"


def test_parser_rejections_are_logged_as_info_without_a_traceback(edge: Edge) -> None:
    exchange(edge, b"GET /" + b"b" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    edge.proc.wait_for_log("INFO producer_api: rejected a malformed request", timeout=5)
    assert "Traceback" not in edge.proc.log()
    assert "ERROR" not in edge.proc.log()


def test_a_client_hanging_up_mid_body_is_no_server_error(edge: Edge) -> None:
    head = (
        "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {edge.api.tokens['operator']}\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection((edge.host, edge.port), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"name": "demo.')
        time.sleep(0.2)  # the handler is now waiting for the rest of the body
    edge.proc.wait_for_log("client hung up during POST /api/v1/tasks", timeout=5)
    log = edge.proc.log()
    assert "INFO producer_api: client hung up during POST /api/v1/tasks" in log
    assert "Traceback" not in log
    metrics = requests.get(edge.api.base_url + "/metrics", timeout=5).text
    assert 'route="/api/v1/tasks",status="499"' in metrics
    assert 'status="500"' not in metrics



def test_a_body_that_breaks_its_content_encoding_is_a_json_400(edge: Edge) -> None:
    head = (
        "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {edge.api.tokens['operator']}\r\nContent-Encoding: gzip\r\n"
        "Content-Length: 10\r\nConnection: close\r\n\r\n"
    )
    status, headers, body = exchange(edge, head.encode() + b"not gzip!!")
    assert status == 400
    assert json_error(headers, body)["message"].startswith("malformed request body")
