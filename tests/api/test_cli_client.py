"""How the CLI words the API's errors (``producer_api.cli.client.api_error``)."""

from __future__ import annotations

import json
from typing import Any

from producer_api.cli.client import api_error


def body(message: str, details: Any = None) -> bytes:
    return json.dumps({"error": {"code": "x", "message": message, "details": details}}).encode()


def test_a_suggestion_from_the_api_is_printed() -> None:
    error = api_error(422, "Unprocessable Entity", body(
        "unknown task 'demo.tset_task'", {"field": "name", "did_you_mean": ["demo.test_task"]}))
    assert str(error) == ("HTTP 422: unknown task 'demo.tset_task' [name] — "
                          "did you mean demo.test_task?")


def test_a_single_suggested_name_is_printed_too() -> None:
    error = api_error(422, "", body("unknown task 'a'", {"did_you_mean": "b"}))
    assert str(error).endswith("— did you mean b?")


def test_the_valid_values_from_the_api_are_printed() -> None:
    error = api_error(422, "", body("no such group 'x'", {"field": "by", "allowed": ["a", "b"]}))
    assert str(error) == "HTTP 422: no such group 'x' [by] — one of a, b"


def test_valid_values_the_message_already_lists_are_not_repeated() -> None:
    error = api_error(422, "", body("unknown queue 'fnance'; one of default, finance", {
        "field": "queue", "allowed": ["default", "finance"], "did_you_mean": ["finance"]}))
    assert str(error) == ("HTTP 422: unknown queue 'fnance'; one of default, finance [queue] — "
                          "did you mean finance?")


def test_valid_values_and_a_suggestion_are_both_printed() -> None:
    error = api_error(422, "", body("bad kind 'csvv'", {"allowed": ["csv", "json"],
                                                        "did_you_mean": ["csv"]}))
    assert str(error) == "HTTP 422: bad kind 'csvv' — one of csv, json; did you mean csv?"


def test_a_forbidden_call_is_the_apis_message_alone() -> None:
    error = api_error(403, "Forbidden", body("role 'viewer' may not do this; needs 'admin'"))
    assert str(error) == "HTTP 403: role 'viewer' may not do this; needs 'admin'"


def test_a_missing_token_says_how_to_set_one() -> None:
    error = api_error(401, "Unauthorized", body("missing bearer token"))
    assert str(error) == ("HTTP 401: missing bearer token — set TASKPULSE_TOKEN (or --token) to a "
                          "valid token")


def test_a_body_that_is_not_an_api_error_falls_back_to_the_reason() -> None:
    assert str(api_error(502, "Bad Gateway", b"<html>")) == "HTTP 502: Bad Gateway"
