"""The OpenAPI 3.1 document, derived from the routes' ``@endpoint`` metadata and the msgspec
Structs they name. Nothing here is written by hand per route, so the document cannot drift."""

from __future__ import annotations

import inspect
import re
from typing import Any

import msgspec
from aiohttp import web

import producer_api
from producer_api.catalog import TaskSpec
from producer_api.errors import ERROR_CODES
from producer_api.http import Endpoint
from producer_api.resources import CATALOG, SETTINGS
from producer_api.schemas import ErrorResponse

_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"{(\w+)}")


def _endpoints(app: web.Application) -> list[tuple[str, str, Any, Endpoint]]:
    found = []
    for route in app.router.routes():
        spec = getattr(route.handler, "endpoint", None)
        if spec is None or route.method == "HEAD" or route.resource is None:
            continue
        found.append((route.resource.canonical, route.method.lower(), route.handler, spec))
    return found


def build_openapi(app: web.Application) -> dict[str, Any]:
    endpoints = _endpoints(app)
    types: list[Any] = [ErrorResponse]
    for _, _, _, spec in endpoints:
        types.extend(t for t in (spec.body, spec.query, spec.response) if t is not None)
    types = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    by_type = dict(zip(types, schemas, strict=True))
    _tidy_descriptions(components)
    _pin_catalog_names(components, app)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler, spec in endpoints:
        paths.setdefault(path, {})[method] = _operation(path, handler, spec, by_type, components)
    _add_links(paths, endpoints)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskpulse producer API",
            "version": producer_api.__version__,
            "description": "Enqueue Celery tasks by name and query the monitoring store.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _tidy_descriptions(node: Any) -> None:
    """Descriptions come from docstrings, which msgspec releases tidy differently (0.23 dedents
    them, earlier ones did not); clean them here so the document is the same on every release."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = inspect.cleandoc(value)
            else:
                _tidy_descriptions(value)
    elif isinstance(node, list):
        for value in node:
            _tidy_descriptions(value)


def _pin_catalog_names(components: dict[str, Any], app: web.Application) -> None:
    """Task names, queues and each task's parameters are only known from the catalog, and the
    caps from the settings: document them as the API enforces them."""
    request = components.get("EnqueueRequest")
    if request is None or CATALOG not in app:
        return
    catalog = app[CATALOG]
    props = request["properties"]
    props["name"] = {**props["name"], "enum": [t.name for t in catalog.tasks]}
    props["queue"] = {"anyOf": [{"enum": list(catalog.queues)}, {"type": "null"}],
                      "default": None}
    request["oneOf"] = [_task_variant(task) for task in catalog.tasks]
    if SETTINGS in app:
        _pin_caps(props, app[SETTINGS].max_delay_seconds, app[SETTINGS].max_args_bytes)


def _task_variant(task: TaskSpec) -> dict[str, Any]:
    """One task's arguments: each parameter's schema (bounds, patterns, enums) by position in
    ``args`` and by name in ``kwargs``. Which parameters are required is said in words, since a
    parameter may be given either way."""
    params = task.parameters
    required = [p.name for p in params if p.required]
    needs = f" Required: {', '.join(required)}." if required else ""
    # prefixItems may not be empty: a task without parameters takes no args at all.
    args = ({"type": "array", "prefixItems": [p.schema for p in params], "items": False}
            if params else {"type": "array", "maxItems": 0})
    return {
        "title": task.name,
        "description": f"{task.description}{needs}",
        "properties": {
            "name": {"const": task.name},
            "args": args,
            "kwargs": {"type": "object", "properties": {p.name: p.schema for p in params},
                       "additionalProperties": False},
        },
    }


def _pin_caps(props: dict[str, Any], horizon: float, max_args_bytes: int) -> None:
    for name in ("countdown", "expires"):
        for variant in props[name]["anyOf"]:
            if variant.get("type") == "number":
                variant["maximum"] = horizon
    props["eta"]["description"] = (
        f"RFC 3339 with an offset; at most {horizon:.0f} seconds ahead "
        "(TASKPULSE_API_MAX_DELAY_SECONDS), else 422."
    )
    size = (f"args and kwargs together encode to at most {max_args_bytes} bytes of JSON "
            "(TASKPULSE_API_MAX_ARGS_BYTES), else 413.")
    for name in ("args", "kwargs"):
        props[name]["description"] = size


def _operation(
    path: str,
    handler: Any, spec: Endpoint, by_type: dict[Any, Any], components: dict[str, Any]
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": spec.summary,
        "tags": [spec.tag],
        "responses": {str(spec.status): _success(spec, by_type)},
    }
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for p in _PATH_PARAM.findall(path)
    ]
    if spec.query is not None:
        params.extend(_query_params(components[spec.query.__name__]))
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {
            "required": spec.body.__name__ != "RevokeRequest",
            "content": {"application/json": {"schema": by_type[spec.body]}},
        }
    errors = set(spec.errors)
    if spec.role is not None:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Needs a token with role `{spec.role}` or above."
        op["x-taskpulse-role"] = spec.role
        errors |= {401, 403}
    for status in sorted(errors):
        op["responses"][str(status)] = {
            "description": ERROR_CODES[status],
            "content": {"application/json": {"schema": by_type[ErrorResponse]}},
        }
    return op


def _add_links(
    paths: dict[str, dict[str, Any]], endpoints: list[tuple[str, str, Any, Endpoint]]
) -> None:
    """OpenAPI links from each ``@endpoint(links=...)`` response to the operations it feeds."""
    for path, method, _, spec in endpoints:
        links = {}
        for param, field in spec.links:
            for target, _, handler, _ in endpoints:
                if f"{{{param}}}" in target:
                    links[handler.__name__] = {
                        "operationId": handler.__name__,
                        "parameters": {param: f"$response.body#/{field}"},
                    }
        if links:
            paths[path][method]["responses"][str(spec.status)]["links"] = links


def _success(spec: Endpoint, by_type: dict[Any, Any]) -> dict[str, Any]:
    if spec.response is not None:
        schema = by_type[spec.response]
    elif spec.content_type == "application/json":
        schema = {"type": "object"}
    else:
        schema = {"type": "string"}
    return {"description": spec.summary, "content": {spec.content_type: {"schema": schema}}}


def _query_params(component: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(component.get("required", ()))
    params = []
    for name, schema in component.get("properties", {}).items():
        params.append({
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _without_null(schema),
        })
    return params


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query string cannot say null: an absent parameter is how it says "no value"."""
    variants = schema.get("anyOf")
    if not variants:
        return schema
    rest = [v for v in variants if v.get("type") != "null"]
    base = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**base, **rest[0]} if len(rest) == 1 else {**base, "anyOf": rest}
