"""The collector's disk spool: raw broker messages it has read but cannot write to the store yet.

On Redis the event fanout is PUB/SUB: a subscriber that stops reading is disconnected once Redis
buffers 32 MB for it, and whatever is published until it resubscribes is gone. So under a
sustained overload the reader keeps reading, and what does not fit in the memory budget is
appended here (``consume.RawBuffer``); the writer drains memory, then the spool, in arrival order.

Layout: one directory per collector (a *slot*, see ``open_spool``) holding ``lock`` (an
``flock`` held while a collector uses the slot, so two never share one), ``owner.json`` (the store
the messages belong to) and numbered segment files ``<seq>.seg``, read in ``seq`` order::

    segment := MAGIC record*
    record  := header payload
    header  := header_crc:u32 length:u32 messages:u32 events:u32 payload_crc:u32   (little endian)
    payload := zlib(msgpack(list of message bodies))                               (``pack``)

``header_crc`` covers the four fields after it, ``payload_crc`` the payload, so a reader can tell
a torn or corrupt payload (skipped, its events counted from the header) from a torn or corrupt
header (the rest of the segment is skipped: its lengths cannot be trusted; counted as one event,
the least it held). A segment is deleted once every message in it is written to the store; a
restart replays every segment still on disk (dedup by event id makes a replayed event a no-op).

fsync policy: a record is one ``os.write`` (the page cache has it as soon as it returns, so a
killed collector loses nothing); a segment is fdatasync'ed when it is full and the next one
begins, together with the directory. A power loss can thus cost the records of the one segment
being written; the checksums find its torn tail on the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Final

import msgspec

log = logging.getLogger("taskpulse.collector.spool")

MAGIC: Final = b"TPSPOOL1"
HEADER: Final = struct.Struct("<IIIII")
SEGMENT_SUFFIX: Final = ".seg"
SEGMENT_BYTES: Final = 16 << 20
MAX_SLOTS: Final = 64
_PACK: Final = msgspec.msgpack.Encoder().encode
_UNPACK: Final = msgspec.msgpack.Decoder(list[bytes]).decode

# (reason, events): called for events that were read from the broker and will never be written.
DropCounter = Callable[[str, int], None]
# Why events are dropped (the ``reason`` label of taskpulse_events_dropped_total):
BUFFER_FULL: Final = "buffer_full"  # past the memory budget, no spool configured
SPOOL_FULL: Final = "spool_full"  # past the spool's disk budget
SPOOL_ERROR: Final = "spool_error"  # the disk refused a write (full, read-only, I/O error)
SPOOL_CORRUPT: Final = "spool_corrupt"  # a torn or corrupt record found when reading it back
DROP_REASONS: Final = (BUFFER_FULL, SPOOL_FULL, SPOOL_ERROR, SPOOL_CORRUPT)


def pack(messages: list[bytes]) -> bytes:
    """A list of message bodies as one compressed blob (JSON bodies shrink ~5-10x)."""
    return zlib.compress(_PACK(messages), 1)  # zlib releases the GIL while it works


def unpack(blob: bytes) -> list[bytes]:
    return _UNPACK(zlib.decompress(blob))


def record(payload: bytes, messages: int, events: int) -> bytes:
    """One record: header + ``payload`` (a ``pack`` blob)."""
    fields = struct.pack("<III", len(payload), messages, events)
    return HEADER.pack(zlib.crc32(fields), len(payload), messages, events,
                       zlib.crc32(payload)) + payload


class SpoolError(RuntimeError):
    """The spool directory cannot be used (locked by another collector, another store's)."""


class _Segment:
    """One segment file: what is on disk, how far it has been read, what awaits writing."""

    def __init__(self, seq: int, path: Path, size: int, sealed: bool) -> None:
        self.seq = seq
        self.path = path
        self.size = size  # bytes on disk (complete records only, for the one being written)
        self.read_at = len(MAGIC)
        self.sealed = sealed  # nothing more will be appended
        self.pending = 0  # messages handed out and not yet written to the store


class Spool:
    """Append-only segments in one slot directory, within ``max_bytes`` on disk.

    Not thread-safe: ``RawBuffer`` calls it under its lock (the reader thread appends, the
    event loop reads and acknowledges). ``sync_sealed`` may run outside that lock.
    """

    def __init__(
        self, directory: Path, max_bytes: int, dropped: DropCounter,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 4))
        self._dropped = dropped
        self._segments: list[_Segment] = []
        self._write_fd: int | None = None
        self._read_fd: tuple[int, int] | None = None  # (seq, fd)
        self._to_sync: list[int] = []
        self.slot: _Slot | None = None  # set by open_spool, released by close
        self.bytes = 0
        self.messages = 0  # appended and not yet handed out
        self.events = 0
        for path in sorted(directory.glob("*" + SEGMENT_SUFFIX)):
            self._adopt(path)
        self._next_seq = (self._segments[-1].seq + 1) if self._segments else 1

    # -- state -------------------------------------------------------------------------------

    def __bool__(self) -> bool:
        """Whether messages wait in the spool (appended, not yet handed out)."""
        return self.messages > 0

    @property
    def segments(self) -> int:
        return len(self._segments)

    # -- appending (reader thread) -----------------------------------------------------------

    def append(self, payload: bytes, messages: int, events: int) -> str | None:
        """Append one record (a ``pack`` payload). Returns None, or why nothing was written:
        ``SPOOL_FULL`` (it would pass ``max_bytes``) or ``SPOOL_ERROR`` (the disk refused it);
        the caller drops those events."""
        data = record(payload, messages, events)
        live = self._live()
        if live is not None and live.size + len(data) > self.segment_bytes and live.size > len(
            MAGIC
        ):
            self._seal(live)
            live = None
        extra = len(data) + (len(MAGIC) if live is None else 0)
        if self.bytes + extra > self.max_bytes:
            return SPOOL_FULL
        try:
            if live is None:
                live = self._new_segment()
            assert self._write_fd is not None
            _write_all(self._write_fd, data)
        except OSError as exc:
            log.error("spool: cannot write %s (%s)", self.directory, exc)
            if live is not None:
                self._discard_partial(live)
            return SPOOL_ERROR
        live.size += len(data)
        self.bytes += len(data)
        self.messages += messages
        self.events += events
        return None

    def _live(self) -> _Segment | None:
        if self._segments and not self._segments[-1].sealed:
            return self._segments[-1]
        return None

    def _new_segment(self) -> _Segment:
        path = self.directory / f"{self._next_seq:012d}{SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            _write_all(fd, MAGIC)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        segment = _Segment(self._next_seq, path, len(MAGIC), sealed=False)
        self._next_seq += 1
        self._segments.append(segment)
        self._write_fd = fd
        self.bytes += len(MAGIC)
        return segment

    def _discard_partial(self, live: _Segment) -> None:
        """After a failed write: cut the file back to its last complete record."""
        with contextlib.suppress(OSError):
            assert self._write_fd is not None
            os.ftruncate(self._write_fd, live.size)

    def _seal(self, segment: _Segment) -> None:
        segment.sealed = True
        if self._write_fd is not None:
            self._to_sync.append(self._write_fd)  # fdatasync'ed by sync_sealed, then closed
            self._write_fd = None

    def sync_sealed(self) -> None:
        """fdatasync the segments sealed since the last call, and the directory (outside the
        buffer's lock: the loop keeps reading meanwhile)."""
        fds, self._to_sync = self._to_sync, []
        for fd in fds:
            try:
                os.fdatasync(fd)
            except OSError as exc:
                log.warning("spool: fdatasync failed (%s)", exc)
            finally:
                os.close(fd)
        if fds:
            _fsync_dir(self.directory)

    # -- reading (event loop) ----------------------------------------------------------------

    def read(self) -> tuple[list[bytes], _Segment] | None:
        """The oldest record's messages and its segment (for ``written``), or None when
        nothing waits. Torn or corrupt records are skipped and counted as dropped."""
        while self._segments:
            segment = self._reading()
            if segment is None:
                return None
            found = self._read_record(segment)
            if found is not None:
                return found, segment
            if not segment.sealed:
                return None  # all read; the writer may still append to it
            self._close_reader()
            self._maybe_delete(segment)
        return None

    def _reading(self) -> _Segment | None:
        for segment in self._segments:
            if segment.read_at < segment.size or not segment.sealed:
                return segment
        return None

    def _read_record(self, segment: _Segment) -> list[bytes] | None:
        fd = self._reader_fd(segment)
        while segment.read_at < segment.size:
            at, end = segment.read_at, segment.size
            header = os.pread(fd, HEADER.size, at)
            if len(header) < HEADER.size or _header_broken(header):
                # a torn or corrupt header: the lengths after it mean nothing
                self._lost(segment, 1, SPOOL_CORRUPT,
                           f"unreadable record header at byte {at}: skipped the last"
                           f" {end - at} bytes, at least one message lost")
                segment.read_at = end
                return None
            _, length, messages, events, payload_crc = HEADER.unpack(header)
            segment.read_at = at + HEADER.size + length
            if segment.read_at > end:
                self._lost(segment, events, SPOOL_CORRUPT,
                           f"torn record at byte {at} ({end - at} of"
                           f" {HEADER.size + length} bytes)")
                segment.read_at = end
                return None
            payload = os.pread(fd, length, at + HEADER.size)
            self.messages -= messages
            self.events -= events
            try:
                if zlib.crc32(payload) != payload_crc:
                    raise ValueError("checksum mismatch")
                bodies = unpack(payload)
            except (ValueError, zlib.error, msgspec.DecodeError) as exc:
                self._lost(segment, events, SPOOL_CORRUPT, f"record at byte {at}: {exc}")
                continue
            segment.pending += len(bodies)
            return bodies
        return None

    def _lost(self, segment: _Segment, events: int, reason: str, detail: str) -> None:
        log.error("spool: %s: %s; %d event(s) dropped", segment.path.name, detail, events)
        self._dropped(reason, events)

    def _reader_fd(self, segment: _Segment) -> int:
        if self._read_fd is None or self._read_fd[0] != segment.seq:
            self._close_reader()
            self._read_fd = (segment.seq, os.open(segment.path, os.O_RDONLY))
        return self._read_fd[1]

    def _close_reader(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd[1])
            self._read_fd = None

    def written(self, segment: _Segment, messages: int) -> None:
        """``messages`` handed out from ``segment`` are now in the store."""
        segment.pending -= messages
        self._maybe_delete(segment)

    def _maybe_delete(self, segment: _Segment) -> None:
        if segment.pending or segment.read_at < segment.size:
            return
        if not segment.sealed:
            if self.messages:  # only the live segment can be unread here; keep appending
                return
            # drained: delete it, the next spill starts a fresh segment
            segment.sealed = True
            if self._write_fd is not None:
                os.close(self._write_fd)
                self._write_fd = None
        if self._read_fd is not None and self._read_fd[0] == segment.seq:
            self._close_reader()
        segment.path.unlink(missing_ok=True)
        self._segments.remove(segment)
        self.bytes -= segment.size

    # -- start and stop ----------------------------------------------------------------------

    def _adopt(self, path: Path) -> None:
        """A segment left by an earlier run: replay it whole (its tail may be torn)."""
        try:
            seq = int(path.stem)
        except ValueError:
            log.warning("spool: ignoring %s (not a segment name)", path)
            return
        size = path.stat().st_size
        segment = _Segment(seq, path, size, sealed=True)
        with path.open("rb") as file:
            if file.read(len(MAGIC)) != MAGIC:
                self._lost(segment, 1, SPOOL_CORRUPT, "not a spool segment (bad magic)")
                path.unlink()
                return
            messages, events = _count(file, size)
        self._segments.append(segment)
        self.bytes += size
        self.messages += messages
        self.events += events

    def close(self) -> None:
        """Stop using the files (what is on disk stays for the next start)."""
        live = self._live()
        if live is not None:
            self._seal(live)
        self.sync_sealed()
        self._close_reader()
        if self.slot is not None:
            self.slot.release()
            self.slot = None


def _header_broken(header: bytes) -> bool:
    return zlib.crc32(header[4:16]) != struct.unpack_from("<I", header)[0]


def _count(file, size: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Messages and events of the records whose header is intact, reading headers only."""
    messages = events = 0
    at = len(MAGIC)
    while at + HEADER.size <= size:
        file.seek(at)
        header = file.read(HEADER.size)
        if _header_broken(header):
            break
        _, length, n_messages, n_events, _ = HEADER.unpack(header)
        if at + HEADER.size + length > size:
            break
        messages += n_messages
        events += n_events
        at += HEADER.size + length
    return messages, events


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        log.warning("spool: fsync of %s failed (%s)", directory, exc)
    finally:
        os.close(fd)


# -- slots: one spool per collector --------------------------------------------------------------


class _Slot:
    """A locked slot directory: released when the collector closes it."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    def release(self) -> None:
        os.close(self._lock_fd)  # closing the descriptor releases the flock


def _try_lock(path: Path) -> int | None:
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _owner_matches(path: Path, owner: dict[str, str]) -> bool:
    """A slot holding messages belongs to their store: replaying them into another would be
    wrong. An empty slot is anyone's (so slots of stores long gone do not pile up)."""
    file = path / "owner.json"
    try:
        if json.loads(file.read_text()) == owner:
            return True
    except (OSError, ValueError):
        pass
    if any(path.glob("*" + SEGMENT_SUFFIX)):
        return False
    file.write_text(json.dumps(owner, sort_keys=True) + "\n")
    return True


def claim_slot(base: Path, name: str, owner: dict[str, str]) -> _Slot:
    """Lock the slot ``base/name`` (a collector id), or, for ``name`` "", the first free slot
    ``base/collector-<n>`` whose messages belong to ``owner`` (the store): a restarted collector
    takes its old slot back and replays it; a second collector on the same host gets its own."""
    candidates = [name] if name else [f"collector-{n}" for n in range(1, MAX_SLOTS + 1)]
    for candidate in candidates:
        path = base / candidate
        fd = _try_lock(path)
        if fd is None:
            if name:
                holder = (path / "lock").read_text().strip() or "?"
                raise SpoolError(f"spool {path} is in use by another collector (pid {holder});"
                                 " give each collector its own TASKPULSE_COLLECTOR_ID")
            continue
        if _owner_matches(path, owner):
            return _Slot(path, fd)
        os.close(fd)
        if name:
            raise SpoolError(f"spool {path} holds events for another store"
                             f" ({(path / 'owner.json').read_text().strip()}); point"
                             " TASKPULSE_SPOOL_DIR elsewhere or empty it")
    raise SpoolError(f"no free spool slot under {base} (all {MAX_SLOTS} taken or another"
                     " store's)")


def open_spool(
    base: Path, name: str, owner: dict[str, str], max_bytes: int, dropped: DropCounter
) -> Spool:
    """The spool of this collector (``claim_slot``), with whatever an earlier run left in it."""
    try:
        slot = claim_slot(base, name, owner)
    except OSError as exc:
        raise SpoolError(f"cannot use the spool directory {base}: {exc}") from None
    try:
        spool = Spool(slot.path, max_bytes, dropped)
    except BaseException:
        slot.release()
        raise
    spool.slot = slot
    return spool
