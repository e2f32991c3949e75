"""Bearer tokens with roles, kept hashed in a SQLite database (``TASKPULSE_API_TOKENS_FILE``).

Only SHA-256 digests are stored: a leaked file does not leak tokens. Tokens are random (256 bits),
so a plain digest is enough — there is nothing to brute-force.

Why SQLite (stdlib) rather than the JSON file it replaces, which was re-read and rewritten whole:
- every change is one transaction, so processes writing at once (API replicas, ``taskpulse tokens
  create --file`` runs) no longer overwrite each other's tokens;
- a token is one row and a lookup one indexed ``SELECT`` by digest: the cost stays flat with
  thousands of tokens, and a change writes a page or two, not the whole store;
- nothing is cached: each request reads the committed state, so a revocation applies to every
  process at its next request;
- WAL mode: readers never wait for a writer (``authenticate`` runs on the API's event loop).
  WAL needs shared memory, so every process using the file must run on one host (not over NFS).

Looking a digest up in an index is not constant-time, unlike comparing it with every entry. What
the timing could reveal is how close the digest of the *presented* string is to a stored one;
finding a token from its digest still means inverting SHA-256, so an indexed lookup is safe.

An old JSON tokens file (``{"tokens": [...]}``) at the path — or, when the path does not exist
yet, next to it with the suffix ``.json`` (the old default name) — is imported once when a store
is first opened; an in-place conversion keeps the JSON as ``<path>.json-backup``.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Final

import msgspec

from producer_api.errors import Unavailable

log = logging.getLogger("producer_api.auth")

# Each role may do what the ones before it may, and more.
ROLES: Final[tuple[str, ...]] = ("viewer", "operator", "admin")
ROLE_RANK: Final[dict[str, int]] = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_PREFIX: Final = "tp_"
# How long a writer waits for another process's write (reads never wait in WAL mode).
BUSY_TIMEOUT_SECONDS: Final = 10.0
SQLITE_HEADER: Final = b"SQLite format 3\x00"
_ID_ATTEMPTS: Final = 5
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tokens (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    role    TEXT NOT NULL,
    sha256  TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
)"""
_COLUMNS: Final = "id, name, role, sha256, created"


class TokenEntry(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    sha256: str
    created: float


class TokenFile(msgspec.Struct):
    """The old JSON format, read only to import it."""

    tokens: list[TokenEntry] = []


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def role_allows(role: str, required: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[required]


def _entry(row: Sequence[object]) -> TokenEntry:
    return TokenEntry(*row)  # type: ignore[arg-type]


class TokenStore:
    """The token database. Each thread uses its own connection; any method may block briefly
    on disk, ``create`` and ``revoke`` also on another process's write (run them off the loop)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        _prepare(self.path)

    def _db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:  # locked past the timeout, disk full, I/O error
            # The path and SQLite's words go to the log (the cause), not to the client.
            raise Unavailable("the token store is unavailable",
                              {"dependency": "token_store"}) from exc

    def authenticate(self, presented: str) -> TokenEntry | None:
        """The entry whose digest matches ``presented``, or None."""
        with self._errors():
            rows = self._db().execute(
                f"SELECT {_COLUMNS} FROM tokens WHERE sha256 = ?", (hash_token(presented),)
            ).fetchall()  # all, not fetchone: a statement left unfinished keeps its snapshot
        return _entry(rows[0]) if rows else None

    def get(self, token_id: str) -> TokenEntry | None:
        """The token with this id, or None once it is revoked."""
        with self._errors():
            rows = self._db().execute(
                f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", (token_id,)
            ).fetchall()
        return _entry(rows[0]) if rows else None

    def list(self) -> list[TokenEntry]:
        with self._errors():
            rows = self._db().execute(
                f"SELECT {_COLUMNS} FROM tokens ORDER BY created, id"
            ).fetchall()
        return [_entry(r) for r in rows]

    def create(self, name: str, role: str) -> tuple[TokenEntry, str]:
        """A new token: its entry and the secret, which is not stored anywhere."""
        if role not in ROLE_RANK:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLE_RANK)}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        for _ in range(_ID_ATTEMPTS):
            entry = TokenEntry(
                id=secrets.token_hex(4), name=name, role=role, sha256=hash_token(secret),
                created=round(time.time(), 3),
            )  # fmt: skip
            try:
                with self._errors():
                    _insert(self._db(), [entry])
            except sqlite3.IntegrityError:
                continue  # 32-bit ids: with thousands of tokens a clash is rare, not impossible
            return entry, secret
        raise RuntimeError(f"no free token id after {_ID_ATTEMPTS} attempts")

    def revoke(self, token_id: str) -> bool:
        with self._errors():
            deleted = self._db().execute("DELETE FROM tokens WHERE id = ?", (token_id,))
        return deleted.rowcount > 0


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit (isolation_level=None): each statement is its own transaction, so a read sees
    # every change committed before it. FULL: a revocation survives a power cut.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _insert(conn: sqlite3.Connection, entries: Sequence[TokenEntry]) -> None:
    conn.executemany(
        f"INSERT INTO tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
        [(e.id, e.name, e.role, e.sha256, e.created) for e in entries],
    )


@contextmanager
def _setup_lock(path: Path) -> Iterator[None]:
    """Serialises creating and importing between processes starting together (SQLite cannot
    switch to WAL while another connection is busy, and an import must happen once)."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _prepare(path: Path) -> None:
    """Create the database (mode 0600, WAL) or import an old JSON file, once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _setup_lock(path):
        source = _legacy_source(path)
        if source is not None:
            _import(source, path)
        elif not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # sqlite would use 0644
        with closing(_connect(path)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)


def _legacy_source(path: Path) -> Path | None:
    """The old JSON file to import: ``path`` itself, or ``<stem>.json`` beside a new path."""
    if path.exists():
        return None if _head(path) in (SQLITE_HEADER, b"") else path
    sibling = path.with_suffix(".json")
    if sibling == path or not sibling.is_file():
        return None
    return None if _head(sibling) == SQLITE_HEADER else sibling  # a database of its own


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_HEADER))


def _import(source: Path, path: Path) -> None:
    try:
        tokens = msgspec.json.decode(source.read_bytes(), type=TokenFile).tokens
    except msgspec.DecodeError as exc:
        raise ValueError(
            f"{source} is neither a taskpulse token database nor a JSON tokens file: {exc}"
        ) from None
    if source == path:
        backup = path.with_name(path.name + ".json-backup")
        _write_private(backup, source.read_bytes())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tokens-")
    os.close(fd)  # mkstemp makes it 0600; sqlite reopens it
    try:
        with closing(_connect(Path(tmp))) as conn:
            conn.execute(_SCHEMA)
            _insert(conn, tokens)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.warning(
        "imported %d token(s) from the JSON file %s into the token database %s%s", len(tokens),
        source, path, f" (the JSON is kept as {path.name}.json-backup)" if source == path else
        f"; {source} is no longer read",
    )  # fmt: skip


def _write_private(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tokens-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
