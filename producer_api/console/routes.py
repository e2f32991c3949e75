"""The web console at ``/ui``: its pages, sign-in, sign-out, and its files.

Every page is the same small HTML shell; the console's modules render the page the URL names and
talk to ``/api/v1`` with the session cookie, so the console can do exactly what the API lets its
role do. Signing in is the only thing that touches a token: it arrives in a POSTed form field
(never a URL), is checked like a bearer token, and leaves behind a session (``sessions.py``).
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from typing import Final
from urllib.parse import quote, urlsplit

import msgspec
from aiohttp import web

from producer_api.audit import append_audit, audit_event
from producer_api.auth import TokenEntry
from producer_api.console.assets import SECURITY_HEADERS, Assets, load_assets, respond
from producer_api.console.sessions import (
    SESSION_COOKIE,
    SESSIONS,
    SessionEnded,
    SessionStore,
    check_csrf,
    resolve,
    session_id_of,
)
from producer_api.http import endpoint, json_response
from producer_api.middleware import ACTOR
from producer_api.resources import KEYS, REDIS, SETTINGS, STREAM, TOKENS

ui = web.RouteTableDef()  # served at the root: /ui/...
api = web.RouteTableDef()  # served under /api/v1
ASSETS = web.AppKey("console_assets", Assets)
MAX_TOKEN_CHARS: Final = 200
# Why the sign-in page is shown, by the reason code the console or a redirect puts in the URL.
MESSAGES: Final = {
    "expired": "Your session has expired or was signed out. Sign in again.",
    "revoked": "The token you signed in with has been revoked. Sign in with another one.",
    "signed-out": "You are signed out.",
    "invalid": "That token is not valid (or has been revoked).",
    "link": "This sign-in link has already been used or has expired. Ask for a new one.",
    "cross-site": "Sign-in must come from this console's own page.",
}


class SessionInfo(msgspec.Struct, frozen=True):
    """Who the console acts as, and the CSRF secret its state-changing requests must send."""

    name: str
    role: str
    token_id: str
    csrf: str
    expires_in: int


class LoginLink(msgspec.Struct, frozen=True):
    """A one-time sign-in link for the caller's own token. ``path`` is relative to the API."""

    path: str
    expires_in: int


async def ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[SESSIONS] = SessionStore(
        app[REDIS], app[KEYS], settings.ui_session_ttl_seconds, settings.ui_login_link_ttl_seconds
    )
    app[ASSETS] = load_assets(settings.stuck_after_seconds)
    yield


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never another site (no open redirect)."""
    if not target:
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/") or "\\" in target:
        return "/ui/"
    return target


def _login_page(request: web.Request, reason: str | None, next_path: str,
                status: int = 200) -> web.Response:
    template = request.app[ASSETS].page("login.html")
    message = MESSAGES.get(reason or "", "")
    page = (template
            .replace("{{message}}", html.escape(message))
            .replace("{{message_class}}", "message" if message else "message hidden")
            .replace("{{next}}", html.escape(next_path, quote=True)))
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return web.Response(text=page, content_type="text/html", status=status, headers=headers)


def _cross_site(request: web.Request) -> bool:
    """A sign-in POSTed from another site's page (login CSRF) is refused."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc != request.host


async def _start_session(request: web.Request, entry: TokenEntry, how: str,
                         next_path: str) -> web.Response:
    session_id, _ = await request.app[SESSIONS].create(entry.id)
    await append_audit(request.app[REDIS], request.app[STREAM],
                       [audit_event(entry.name, "console-sign-in", detail=how)])
    response = web.HTTPSeeOther(next_path)
    # No Max-Age: the browser keeps it until it closes; the server's idle timeout decides.
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="Strict", path="/",
                        secure=request.secure)
    return response


@ui.get("/ui")
async def ui_root(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/ui/")


@ui.get("/ui/login")
async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, request.query.get("reason"), _safe_next(request.query.get("next")))


@ui.post("/ui/login")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    next_path = _safe_next(str(form.get("next", "")))
    if _cross_site(request):
        return _login_page(request, "cross-site", next_path, status=403)
    token = str(form.get("token", "")).strip()[:MAX_TOKEN_CHARS]
    entry = request.app[TOKENS].authenticate(token) if token else None
    if entry is None:
        return _login_page(request, "invalid", next_path, status=401)
    return await _start_session(request, entry, "token", next_path)


@ui.get("/ui/login/{code}")
async def login_with_link(request: web.Request) -> web.Response:
    if request.method == "HEAD":  # a link preview must not use up the one-time code
        return web.Response(headers=SECURITY_HEADERS)
    token_id = await request.app[SESSIONS].redeem_link(request.match_info["code"])
    entry = request.app[TOKENS].get(token_id) if token_id else None
    if entry is None:
        return _login_page(request, "link", "/ui/", status=401)
    return await _start_session(request, entry, "one-time link", "/ui/")


@ui.post("/ui/logout")
async def logout(request: web.Request) -> web.Response:
    session_id = session_id_of(request)
    if session_id:
        try:
            session, _ = await resolve(request, request.app[TOKENS])
            check_csrf(request, session)
        except SessionEnded:
            pass  # already over: just clear the cookie
        await request.app[SESSIONS].delete(session_id)
    response = web.HTTPSeeOther("/ui/login?reason=signed-out")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@ui.get("/ui/session")
async def session_info(request: web.Request) -> web.Response:
    session, entry = await resolve(request, request.app[TOKENS])
    ttl = request.app[SETTINGS].ui_session_ttl_seconds
    info = SessionInfo(name=entry.name, role=entry.role, token_id=entry.id, csrf=session.csrf,
                       expires_in=ttl)
    return json_response(info, headers={"Cache-Control": "no-store"})


@ui.get("/ui/static/{version}/{path:.+}")
async def static_file(request: web.Request) -> web.Response:
    assets = request.app[ASSETS]
    path = request.match_info["path"]
    asset = assets.files.get(path)
    if asset is None or path in ("index.html", "login.html"):
        raise web.HTTPNotFound()
    # A page of an older release may still ask for its version: it gets today's file, uncached.
    return respond(request, asset, forever=request.match_info["version"] == assets.version)


@ui.get("/ui/{page:.*}")
async def shell(request: web.Request) -> web.Response:
    """Every console page: the router in the browser renders what the path names."""
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return web.Response(text=request.app[ASSETS].page("index.html"), content_type="text/html",
                        headers=headers)


@api.post("/ui/login-links")
@endpoint("A one-time web console sign-in link for the caller's own token (valid once, briefly)",
          "admin", response=LoginLink, status=201, errors=(503,), tag="console")
async def create_login_link(request: web.Request) -> web.Response:
    entry: TokenEntry = request[ACTOR]
    code = await request.app[SESSIONS].create_link(entry.id)
    await append_audit(request.app[REDIS], request.app[STREAM],
                       [audit_event(entry.name, "console-link", detail=f"for token {entry.id}")])
    ttl = request.app[SETTINGS].ui_login_link_ttl_seconds
    return json_response(LoginLink(path=f"/ui/login/{quote(code)}", expires_in=ttl), status=201)

