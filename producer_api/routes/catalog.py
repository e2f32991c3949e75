"""The task catalog as the API enforces it."""

from __future__ import annotations

from aiohttp import web

from producer_api.catalog import Catalog
from producer_api.http import endpoint, json_response
from producer_api.resources import CATALOG

routes = web.RouteTableDef()


@routes.get("/catalog")
@endpoint("Tasks that may be enqueued, their parameters, queues and priorities", "viewer",
          response=Catalog, tag="catalog")
async def catalog(request: web.Request) -> web.Response:
    return json_response(request.app[CATALOG])
