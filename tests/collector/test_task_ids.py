"""Compact task ids (``task_ids.py``): every id reads back as itself."""

from __future__ import annotations

import uuid

import pytest

from event_collector.task_ids import index_member, task_id_of, uuid_bytes

UUID = "c7f1e848-2636-4044-8a4a-47d306764217"


def test_a_canonical_uuid_becomes_a_23_character_member() -> None:
    member = index_member(UUID)
    assert (len(member), member[0]) == (23, "~")
    assert task_id_of(member) == task_id_of(member.encode()) == UUID


@pytest.mark.parametrize("task_id", [
    "t-1", UUID.upper(), UUID.replace("-", ""), "~", "~x", "~" * 23, "~" + "A" * 22,
    "~" + "A" * 21, "A" * 23, str(uuid.uuid4()),
])
def test_any_task_id_reads_back_from_its_member(task_id: str) -> None:
    assert task_id_of(index_member(task_id)) == task_id


@pytest.mark.parametrize("task_id", [UUID.upper(), UUID.replace("-", " "), "t" * 36])
def test_only_a_canonical_uuid_has_a_16_byte_form(task_id: str) -> None:
    assert uuid_bytes(task_id) is None
    assert uuid_bytes(UUID) == bytes.fromhex(UUID.replace("-", ""))
