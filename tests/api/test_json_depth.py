"""The request-body depth check on raw bytes agrees with the depth of the decoded JSON."""

from __future__ import annotations

import json
import random

import pytest

from producer_api.json_depth import FIELD_PARTS, MAX_JSON_DEPTH, deepest_field, too_deep


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def nested(levels: int, leaf: object = 1) -> object:
    value = leaf
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


def random_json(rng: random.Random, budget: int) -> object:
    kind = rng.random()
    if budget <= 0 or kind < 0.3:
        # Strings full of brackets, quotes and escapes must not count as nesting.
        return rng.choice([1, None, "[[{{", '"]}\\', "a\\\"[b", "", 2.5])
    if kind < 0.65:
        return [random_json(rng, budget - 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}[{{": random_json(rng, budget - 1) for i in range(rng.randint(0, 3))}


@pytest.mark.parametrize("seed", range(300))
def test_the_byte_scan_agrees_with_the_decoded_depth(seed: int) -> None:
    rng = random.Random(seed)
    value = random_json(rng, rng.randint(0, 12))
    raw = json.dumps(value).encode()
    limit = rng.randint(0, 8)
    assert too_deep(raw, limit) == (depth_of(value) > limit)


def test_a_body_at_the_limit_passes_and_one_level_more_does_not() -> None:
    at_limit = json.dumps(nested(MAX_JSON_DEPTH)).encode()
    assert not too_deep(at_limit)
    assert too_deep(json.dumps(nested(MAX_JSON_DEPTH + 1)).encode())


def test_wide_but_shallow_bodies_pass() -> None:
    batch = {"tasks": [{"name": "t", "args": [[1]], "kwargs": {"a": {"b": []}}}] * 1000}
    assert not too_deep(json.dumps(batch).encode())


def lists(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def test_the_field_named_is_the_one_holding_the_too_deep_value() -> None:
    body = {"tasks": [{"name": "ok", "kwargs": {"a": [1, {"b": 2}]}},
                      {"name": "t", "kwargs": {"x": 1, "config": lists(80)}}]}
    assert deepest_field(json.dumps(body).encode()) == "tasks[1].kwargs.config"


def test_list_positions_inside_the_deep_value_are_left_off() -> None:
    raw = b'{"args": [1, ' + b"[" * 100 + b"]" * 100 + b"]}"
    assert deepest_field(raw) == "args"


def test_a_field_inside_nested_objects_is_named_by_its_first_parts() -> None:
    raw = json.dumps({"kwargs": {"config": nested(80)}}).encode()
    assert FIELD_PARTS == 8
    assert deepest_field(raw) == "kwargs.config[0].k[0].k[0].k"


def test_keys_with_escapes_are_named_decoded() -> None:
    raw = json.dumps({'we"ird': lists(70)}).encode()
    assert deepest_field(raw) == 'we"ird'
