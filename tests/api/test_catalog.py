"""Arguments are bound and checked against the catalog the way a Python call would."""

from __future__ import annotations

import pytest

from producer_api.catalog import ArgumentError, check_arguments, load_catalog, schema_problem
from producer_api.config import PACKAGED_CATALOG

CATALOG = load_catalog(PACKAGED_CATALOG)
EMAIL = CATALOG.task("notifications.send_notification_email")


def test_the_packaged_catalog_loads_and_routes_to_declared_queues() -> None:
    assert CATALOG.task("finance.check_pending_bills").queue == "finance"
    assert CATALOG.priorities.number("redis", "critical") == 0
    assert CATALOG.priorities.number("amqp", "critical") == 4


def test_positional_and_keyword_arguments_bind_like_a_call() -> None:
    check_arguments(EMAIL, ["a@b.c", "subject"], {"body": "text", "user_id": 7})


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [([], {"to": "a@b.c", "subject": "s"}, "kwargs.body"),
     (["a@b.c", "s", "b", 1, "extra"], {}, "args"),
     (["a@b.c"], {"to": "x@y.z", "subject": "s", "body": "b"}, "kwargs.to"),
     ([], {"to": "a@b.c", "subject": "s", "body": "b", "cc": "c"}, "kwargs.cc"),
     ([5, "s", "b"], {}, "args[0]"),
     (["a@b.c", "s", "b"], {"user_id": 1.5}, "kwargs.user_id"),
     (["not an address", "s", "b"], {}, "args[0]")],
)
def test_bad_arguments_name_the_offending_field(args, kwargs, field: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        check_arguments(EMAIL, args, kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("schema", "value", "ok"),
    [({"type": "integer"}, True, False),
     ({"type": "integer"}, 3, True),
     ({"type": "integer"}, 3.0, False),
     ({"type": "number"}, 3, True),
     ({"enum": ["csv", "json"]}, "xml", False),
     ({"anyOf": [{"type": "string"}, {"type": "null"}]}, None, True),
     ({"type": "array", "items": {"type": "string"}}, ["a", 1], False),
     ({"type": "string", "maxLength": 2}, "abc", False)],
)
def test_schema_subset(schema: dict, value, ok: bool) -> None:
    assert (schema_problem(schema, value) is None) is ok


def test_a_catalog_using_unsupported_schema_keywords_is_refused(tmp_path) -> None:
    bad = tmp_path / "catalog.json"
    bad.write_text(PACKAGED_CATALOG.read_text().replace('"type": "integer"',
                                                        '"type": "integer", "multipleOf": 2', 1))
    with pytest.raises(ValueError, match="unsupported keywords"):
        load_catalog(bad)


# Values whose meaning is never an address, a path or a key pattern: they are only stored, shown
# or mailed as text. Each must still be bounded in length.
FREE_TEXT = {
    "demo.test_task.message": "stored in demo_runs and returned",
    "notifications.send_notification_email.subject": "the mail's subject line",
    "notifications.send_notification_email.body": "the mail's text",
}
# What a caller must not be able to hand a task: another server, a file, a keyspace.
AUTHORITIES = [
    "redis://127.0.0.1:6379/1", "amqp://guest@host//", "http://example.com/x",
    "127.0.0.1:6379", "localhost:25", "[::1]:6379",
    "/etc/passwd", "../../etc", "..\\..\\windows", "C:\\data",
    "redbeat:tp:*", "tp:idem:*", "*", "key?", "key[ab]",
]


def _string_schemas(schema: dict) -> list[dict]:
    if schema.get("type") == "string":
        return [schema]
    return [s for sub in schema.get("anyOf", ()) for s in _string_schemas(sub)]


def test_no_string_parameter_can_carry_a_url_host_port_path_or_key_pattern() -> None:
    loose = []
    for task in CATALOG.tasks:
        for param in task.parameters:
            where = f"{task.name}.{param.name}"
            for schema in _string_schemas(param.schema):
                if "maxLength" not in schema:
                    loose.append(f"{where}: unbounded length")
                if where in FREE_TEXT:
                    continue
                if "pattern" not in schema:
                    loose.append(f"{where}: a string with neither enum nor pattern")
                    continue
                carried = [v for v in AUTHORITIES if schema_problem(schema, v) is None]
                if carried:
                    loose.append(f"{where}: accepts {carried}")
    assert not loose, "\n".join(loose)
