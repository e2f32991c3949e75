"""The disk spool's segment format and bookkeeping: order, torn tails, checksums, deletion only
after a write, the disk budget, one slot per collector. Pure file I/O, no services."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from event_collector.spool import (
    HEADER,
    MAGIC,
    SPOOL_CORRUPT,
    SPOOL_FULL,
    Spool,
    SpoolError,
    claim_slot,
    open_spool,
    pack,
)

OWNER = {"store": "redis://127.0.0.1:6379/1", "key_prefix": "tp:"}


class Drops:
    def __init__(self) -> None:
        self.events: dict[str, int] = {}

    def __call__(self, reason: str, events: int) -> None:
        self.events[reason] = self.events.get(reason, 0) + events


def chunk(first: int, count: int = 3) -> list[bytes]:
    return [b'{"n": %d}' % n for n in range(first, first + count)]


def fill(spool: Spool, chunks: int, per_chunk: int = 3) -> list[bytes]:
    sent: list[bytes] = []
    for i in range(chunks):
        bodies = chunk(i * per_chunk, per_chunk)
        assert spool.append(pack(bodies), len(bodies), len(bodies)) is None
        sent += bodies
    return sent


def read_all(spool: Spool, write: bool = True) -> list[bytes]:
    out: list[bytes] = []
    while (found := spool.read()) is not None:
        bodies, segment = found
        out += bodies
        if write:
            spool.written(segment, len(bodies))
    return out


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_records_come_back_in_append_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops(), segment_bytes=4096)
    sent = fill(spool, 200)
    assert len(segments(tmp_path)) > 1
    assert read_all(spool) == sent


def test_a_reopened_spool_replays_what_was_read_but_never_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops(), segment_bytes=4096)
    sent = fill(spool, 200)
    read_all(spool, write=False)  # handed out, the store never confirmed them
    spool.close()

    again = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops())
    assert (again.messages, again.events) == (len(sent), len(sent))
    assert read_all(again) == sent


def test_a_segment_is_deleted_only_once_every_message_in_it_is_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops(), segment_bytes=4096)
    fill(spool, 200)
    first = segments(tmp_path)[0]
    handed = []
    while (found := spool.read()) is not None and found[1].path == first:
        handed.append(found)
    spool.read()  # into the next segment: the first one is wholly read
    for bodies, segment in handed[:-1]:
        spool.written(segment, len(bodies))
    assert first.exists(), "one record of it is not written yet"
    spool.written(handed[-1][1], len(handed[-1][0]))
    assert not first.exists()


def test_a_drained_spool_leaves_no_segment_behind(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops(), segment_bytes=4096)
    fill(spool, 50)
    read_all(spool)
    assert segments(tmp_path) == []
    assert spool.bytes == 0
    assert not spool
    sent = fill(spool, 2)  # and the next spill starts a fresh one
    assert read_all(spool) == sent


def test_a_torn_tail_is_skipped_and_its_events_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops())
    sent = fill(spool, 5)
    spool.append(pack(chunk(100, 4)), 4, 9)  # a record of 4 messages holding 9 events
    spool.close()
    [path] = segments(tmp_path)
    os.truncate(path, path.stat().st_size - 10)  # the crash cut its last write short

    drops = Drops()
    again = Spool(tmp_path, max_bytes=1 << 20, dropped=drops)
    assert read_all(again) == sent
    assert drops.events == {SPOOL_CORRUPT: 9}


def test_a_torn_header_is_skipped_and_counted_as_at_least_one_event(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops())
    sent = fill(spool, 5)
    spool.close()
    [path] = segments(tmp_path)
    with path.open("ab") as file:
        file.write(HEADER.pack(0, 0, 0, 0, 0)[:7])

    drops = Drops()
    again = Spool(tmp_path, max_bytes=1 << 20, dropped=drops)
    assert read_all(again) == sent
    assert drops.events == {SPOOL_CORRUPT: 1}


def test_a_checksum_mismatch_skips_that_record_and_keeps_the_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops())
    first = fill(spool, 1)
    second = chunk(10, 2)
    spool.append(pack(second), 2, 2)
    third = chunk(20, 3)
    spool.append(pack(third), 3, 3)
    spool.close()
    [path] = segments(tmp_path)
    data = bytearray(path.read_bytes())
    second_at = len(MAGIC) + HEADER.size + len(pack(first))
    data[second_at + HEADER.size + 2] ^= 0xFF  # one bit flip inside the second payload
    path.write_bytes(bytes(data))

    drops = Drops()
    again = Spool(tmp_path, max_bytes=1 << 20, dropped=drops)
    assert read_all(again) == first + third
    assert drops.events == {SPOOL_CORRUPT: 2}


def test_a_corrupt_header_gives_up_the_rest_of_its_segment_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, dropped=Drops(), segment_bytes=4096)
    sent = fill(spool, 200)
    spool.close()
    first = segments(tmp_path)[0]
    alone = tmp_path / "first-alone"
    alone.mkdir()
    (alone / first.name).write_bytes(first.read_bytes())
    in_first = Spool(alone, max_bytes=1 << 20, dropped=Drops()).messages
    data = bytearray(first.read_bytes())
    data[len(MAGIC) + 5] ^= 0xFF  # the first record's length field
    first.write_bytes(bytes(data))

    drops = Drops()
    again = Spool(tmp_path, max_bytes=1 << 20, dropped=drops)
    assert read_all(again) == sent[in_first:]  # the later segments, whole and in order
    assert drops.events == {SPOOL_CORRUPT: 1}


def test_past_the_disk_budget_a_record_is_refused_and_nothing_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=600, dropped=Drops())
    sent = []
    while (reason := spool.append(pack(chunk(len(sent))), 3, 3)) is None:
        sent += chunk(len(sent))
    assert reason == SPOOL_FULL
    assert spool.bytes <= 600
    assert sum(p.stat().st_size for p in segments(tmp_path)) == spool.bytes
    assert read_all(spool) == sent


def test_a_second_collector_gets_a_slot_of_its_own(tmp_path: Path) -> None:
    first = open_spool(tmp_path, "", OWNER, 1 << 20, Drops())
    second = open_spool(tmp_path, "", OWNER, 1 << 20, Drops())
    assert first.directory != second.directory
    first.close()
    third = open_spool(tmp_path, "", OWNER, 1 << 20, Drops())
    assert third.directory == first.directory  # a restarted collector takes its slot back
    second.close()
    third.close()


def test_a_named_slot_in_use_is_refused(tmp_path: Path) -> None:
    held = open_spool(tmp_path, "collector-a", OWNER, 1 << 20, Drops())
    with pytest.raises(SpoolError, match="in use by another collector"):
        open_spool(tmp_path, "collector-a", OWNER, 1 << 20, Drops())
    held.close()


def test_a_slot_holding_another_stores_events_is_never_replayed_into_this_one(
    tmp_path: Path,
) -> None:
    other = {**OWNER, "store": "redis://elsewhere:6379/1"}
    spool = open_spool(tmp_path, "", other, 1 << 20, Drops())
    fill(spool, 3)
    spool.close()
    mine = claim_slot(tmp_path, "", OWNER)
    assert mine.path.name != spool.directory.name
    mine.release()
    with pytest.raises(SpoolError, match="another store"):
        open_spool(tmp_path, spool.directory.name, OWNER, 1 << 20, Drops())


def test_an_empty_slot_of_another_store_is_reused(tmp_path: Path) -> None:
    other = {**OWNER, "store": "redis://127.0.0.1:6390/1"}  # a test's store, long gone
    open_spool(tmp_path, "", other, 1 << 20, Drops()).close()
    mine = open_spool(tmp_path, "", OWNER, 1 << 20, Drops())
    assert mine.directory.name == "collector-1"
    mine.close()
