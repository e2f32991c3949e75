"""Web console sessions and one-time sign-in links, kept in the monitoring Redis.

A person signs in with a token once; the browser then holds only a random session id in an
HttpOnly, SameSite=Strict cookie. Redis holds the SHA-256 of that id (``keys.py``
``ui:session``) with the id of the token it is bound to and the session's CSRF secret. Every
request re-reads the token by id, so revoking the token ends the session at once, and a changed
role applies to the next click.

State-changing requests made with the cookie must repeat the CSRF secret in ``X-CSRF-Token``
(the console reads it from ``GET /ui/session`` into memory). A cross-site form cannot read it, so
it cannot forge the header; SameSite=Strict already keeps the cookie off cross-site requests, and
this holds even where that attribute is ignored. Bearer-token requests carry no cookie and are
not concerned.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Final

import msgspec
import redis.asyncio as aioredis
from aiohttp import web

from event_collector.keys import Keys
from event_collector.replies import hash_text, text
from producer_api.auth import TokenEntry, TokenStore
from producer_api.errors import Forbidden, Unauthorized

SESSION_COOKIE: Final = "taskpulse_session"
CSRF_HEADER: Final = "X-CSRF-Token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class Session(msgspec.Struct, frozen=True):
    token_id: str
    csrf: str
    created: float


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionStore:
    """Sessions and sign-in links of one store. Create once per process with the shared pool."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, ttl_seconds: int,
                 link_ttl_seconds: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl = ttl_seconds
        self.link_ttl = link_ttl_seconds

    async def create(self, token_id: str) -> tuple[str, Session]:
        """A new session bound to ``token_id``: the id for the cookie, and what is stored."""
        session_id = secrets.token_urlsafe(32)
        session = Session(token_id=token_id, csrf=secrets.token_urlsafe(32),
                          created=round(time.time(), 3))
        key = self.keys.ui_session(_digest(session_id))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=msgspec.structs.asdict(session))
            pipe.expire(key, self.ttl)
            await pipe.execute()
        return session_id, session

    async def get(self, session_id: str) -> Session | None:
        """The live session with this id, its idle timeout restarted; None if unknown/expired."""
        key = self.keys.ui_session(_digest(session_id))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(key)
            pipe.expire(key, self.ttl)  # a no-op when the key is gone
            raw, _ = await pipe.execute()
        if not raw:
            return None
        return msgspec.convert(hash_text(raw), Session, strict=False)

    async def delete(self, session_id: str) -> None:
        await self.redis.delete(self.keys.ui_session(_digest(session_id)))

    async def create_link(self, token_id: str) -> str:
        """A one-time sign-in code for ``token_id``; only its hash is stored, for ``link_ttl``."""
        code = secrets.token_urlsafe(24)
        await self.redis.set(self.keys.ui_login(_digest(code)), token_id, ex=self.link_ttl)
        return code

    async def redeem_link(self, code: str) -> str | None:
        """The token id of a sign-in code, which no longer works after this call."""
        raw = await self.redis.getdel(self.keys.ui_login(_digest(code)))
        return text(raw) or None


SESSIONS = web.AppKey("sessions", SessionStore)


class SessionEnded(Unauthorized):
    """The cookie names no live session, or its token was revoked: sign in again."""

    code = "session_ended"


def session_id_of(request: web.Request) -> str | None:
    value = request.cookies.get(SESSION_COOKIE, "").strip()
    return value or None


async def resolve(request: web.Request, tokens: TokenStore) -> tuple[Session, TokenEntry]:
    """The session behind the request's cookie and its token, both still valid."""
    session_id = session_id_of(request)
    if session_id is None:
        raise SessionEnded("not signed in to the console", {"reason": "none"})
    session = await request.app[SESSIONS].get(session_id)
    if session is None:
        raise SessionEnded("your console session has expired or was signed out; sign in again",
                           {"reason": "expired"})
    entry = tokens.get(session.token_id)
    if entry is None:
        raise SessionEnded("the token this session was signed in with has been revoked",
                           {"reason": "revoked"})
    return session, entry


def check_csrf(request: web.Request, session: Session) -> None:
    """State-changing requests must echo the session's CSRF secret in ``X-CSRF-Token``."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise Forbidden(f"a request made with a console session needs its {CSRF_HEADER} header",
                        {"reason": "csrf"})


async def session_actor(request: web.Request, tokens: TokenStore) -> TokenEntry:
    """For the auth middleware: the token a cookie-authenticated request acts as."""
    session, entry = await resolve(request, tokens)
    check_csrf(request, session)
    return entry
