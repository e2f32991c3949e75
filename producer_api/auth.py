"""Bearer tokens with roles, kept hashed in a JSON file.

The file holds only SHA-256 digests: a leaked file does not leak tokens. Tokens are random
(256 bits), so a plain digest is enough — there is nothing to brute-force. Several API replicas can
share the file: each one re-reads it when its modification time changes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Final

import msgspec

ROLE_RANK: Final[dict[str, int]] = {"viewer": 0, "operator": 1, "admin": 2}
TOKEN_PREFIX: Final = "tp_"
_RELOAD_CHECK_SECONDS: Final = 1.0


class TokenEntry(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    sha256: str
    created: float


class TokenFile(msgspec.Struct):
    tokens: list[TokenEntry] = []


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def role_allows(role: str, required: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[required]


class TokenStore:
    """The tokens file. Reads are cached; every write replaces the file atomically."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._entries: list[TokenEntry] = []
        self._mtime: float | None = None
        self._checked = 0.0
        self._reload()

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._entries, self._mtime = [], None
            return
        if mtime != self._mtime:
            data = msgspec.json.decode(self.path.read_bytes(), type=TokenFile)
            self._entries, self._mtime = list(data.tokens), mtime

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked >= _RELOAD_CHECK_SECONDS:
            self._checked = now
            self._reload()

    def authenticate(self, presented: str) -> TokenEntry | None:
        """The entry whose hash matches, comparing every entry in constant time."""
        self._maybe_reload()
        digest = hash_token(presented)
        found = None
        for entry in self._entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found

    def get(self, token_id: str) -> TokenEntry | None:
        """The entry with this id (console sessions re-check their token on every request)."""
        self._maybe_reload()
        return next((e for e in self._entries if e.id == token_id), None)

    def list(self) -> list[TokenEntry]:
        self._reload()
        return list(self._entries)

    def create(self, name: str, role: str) -> tuple[TokenEntry, str]:
        """A new token: its entry and the secret, which is not stored anywhere."""
        if role not in ROLE_RANK:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLE_RANK)}")
        self._reload()
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = TokenEntry(
            id=secrets.token_hex(4),
            name=name,
            role=role,
            sha256=hash_token(secret),
            created=round(time.time(), 3),
        )
        self._write([*self._entries, entry])
        return entry, secret

    def revoke(self, token_id: str) -> bool:
        self._reload()
        kept = [e for e in self._entries if e.id != token_id]
        if len(kept) == len(self._entries):
            return False
        self._write(kept)
        return True

    def _write(self, entries: list[TokenEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = msgspec.json.format(msgspec.json.encode(TokenFile(tokens=entries)))
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload + b"\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._entries, self._mtime = entries, self.path.stat().st_mtime
