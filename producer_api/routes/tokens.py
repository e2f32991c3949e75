"""Token management (admin). The secret of a new token is in the response and nowhere else.

Changes run in a thread: a write may wait for another process's write to the token database,
and the event loop must not wait with it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from producer_api.audit import append_audit, audit_event
from producer_api.errors import NotFound
from producer_api.http import endpoint, json_response, read_body
from producer_api.middleware import ACTOR
from producer_api.resources import REDIS, STREAM, TOKENS
from producer_api.schemas import Deleted, TokenCreate, TokenCreated, TokenInfo, TokenList

routes = web.RouteTableDef()


async def _audit(request: web.Request, action: str, detail: str) -> None:
    event = audit_event(request[ACTOR].name, action, detail=detail)
    await append_audit(request.app[REDIS], request.app[STREAM], [event])


@routes.get("/tokens")
@endpoint("List tokens (names and roles; never secrets)", "admin", response=TokenList,
          errors=(503,), tag="tokens")
async def list_tokens(request: web.Request) -> web.Response:
    entries = await asyncio.to_thread(request.app[TOKENS].list)
    return json_response(TokenList(tokens=[
        TokenInfo(id=e.id, name=e.name, role=e.role, created=e.created)  # type: ignore[arg-type]
        for e in entries
    ]))


@routes.post("/tokens")
@endpoint("Create a token; its secret is shown only in this response", "admin",
          body=TokenCreate, response=TokenCreated, status=201, errors=(400, 413, 422, 503),
          tag="tokens")
async def create_token(request: web.Request) -> web.Response:
    req = await read_body(request, TokenCreate)
    entry, secret = await asyncio.to_thread(request.app[TOKENS].create, req.name, req.role)
    await _audit(request, "token-create", f"{entry.id} {entry.name} {entry.role}")
    created = TokenCreated(id=entry.id, name=entry.name, role=req.role, created=entry.created,
                           token=secret)
    return json_response(created, status=201)


@routes.delete("/tokens/{token_id}")
@endpoint("Revoke a token", "admin", response=Deleted, errors=(404, 503), tag="tokens")
async def revoke_token(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    if not await asyncio.to_thread(request.app[TOKENS].revoke, token_id):
        raise NotFound(f"no token {token_id!r}", {"id": token_id})
    await _audit(request, "token-revoke", token_id)
    return json_response(Deleted(id=token_id))
