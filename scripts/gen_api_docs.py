"""Write docs/api.md from the API's OpenAPI document (which itself comes from the code).

    .venv/bin/python scripts/gen_api_docs.py          # rewrite docs/api.md
    .venv/bin/python scripts/gen_api_docs.py --check  # exit 1 if docs/api.md is stale

A test runs the check, so the committed reference never drifts from the routes and schemas.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "api.md"
sys.path.insert(0, str(ROOT))


def openapi() -> dict[str, Any]:
    from producer_api.app import create_app
    from producer_api.config import ApiSettings
    from producer_api.openapi import build_openapi

    logging.getLogger("producer_api").setLevel(logging.ERROR)  # "no tokens" is expected here
    with tempfile.TemporaryDirectory() as tmp:  # no tokens needed to describe the API
        return build_openapi(create_app(ApiSettings(tokens_file=f"{tmp}/tokens.json")))


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[`{name}`](#{name.lower()})"
    if "anyOf" in schema:
        # null last: msgspec releases order the variants of an optional field differently.
        variants = sorted(schema["anyOf"], key=lambda s: s.get("type") == "null")
        return " or ".join(_schema_text(s) for s in variants)
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if schema.get("type") == "array":
        return f"array of {_schema_text(schema.get('items', {}))}"
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    bounds = [f"{k} {schema[k]:g}" if isinstance(schema[k], float) else f"{k} {schema[k]}"
              for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum",
                        "multipleOf", "minLength", "maxLength", "format") if k in schema]
    if "pattern" in schema:
        bounds.append(f"pattern `{schema['pattern']}`")
    return _cell(f"{kind}" + (f" ({', '.join(bounds)})" if bounds else ""))


def _cell(text: str) -> str:
    """Table-safe: a ``|`` inside a pattern or description would split the cell."""
    return text.replace("\\|", "|").replace("|", "\\|").replace("\n", " ")


def _description(schema: dict[str, Any]) -> str:
    found = schema.get("description") or next(
        (s["description"] for s in schema.get("anyOf", ()) if "description" in s), "")
    return _cell(found)


def _operation(lines: list[str], method: str, path: str, op: dict[str, Any]) -> None:
    role = op.get("x-taskpulse-role", "public")
    lines += [f"### `{method.upper()} {path}`", "", f"{op['summary']}. Role: **{role}**.", ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | required | type | description |", "|---|---|---|---|---|"]
        lines += [f"| `{p['name']}` | {p['in']} | {'yes' if p['required'] else 'no'} | "
                  f"{_schema_text(p['schema'])} | {_description(p['schema'])} |" for p in params]
        lines.append("")
    if "requestBody" in op:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        lines += [f"Body: {_schema_text(schema)}", ""]
    lines += ["| status | body |", "|---|---|"]
    for status, response in op["responses"].items():
        content = response.get("content", {})
        [(ctype, media)] = content.items() if content else [("", {})]
        body = _schema_text(media.get("schema", {})) if ctype == "application/json" else ctype
        lines.append(f"| {status} | {body} |")
    lines.append("")


def _component(lines: list[str], name: str, schema: dict[str, Any]) -> None:
    lines += [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    props = schema.get("properties")
    if not props:
        lines += [f"Type: {_schema_text(schema)}", ""]
        return
    required = set(schema.get("required", ()))
    lines += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for field, sub in props.items():
        default = _cell(json.dumps(sub["default"])) if "default" in sub else ""
        lines.append(f"| `{field}` | {_schema_text(sub)} | {'yes' if field in required else ''} "
                     f"| {default} | {_description(sub)} |")
    lines.append("")


def _task_parameters(lines: list[str], variants: list[dict[str, Any]]) -> None:
    """Each task's parameters as the API enforces them (the ``oneOf`` of ``EnqueueRequest``)."""
    lines += ["## Task parameters", "",
              "What `POST /tasks` (and batches, workflows, schedules) accept per task, from the",
              "catalog: give parameters by position in `args` or by name in `kwargs`. A value",
              "outside these constraints is a 422 naming the field, before anything is sent.", ""]
    for variant in variants:
        lines += [f"### {variant['title']}", "", _cell(variant["description"]), ""]
        params = variant["properties"]["kwargs"]["properties"]
        if not params:
            lines += ["No parameters.", ""]
            continue
        lines += ["| parameter | type | description |", "|---|---|---|"]
        lines += [f"| `{name}` | {_schema_text(schema)} | {_description(schema)} |"
                  for name, schema in params.items()]
        lines.append("")


def render(spec: dict[str, Any]) -> str:
    lines = [
        "# taskpulse API reference",
        "",
        "<!-- Generated by scripts/gen_api_docs.py from /openapi.json; do not edit by hand. -->",
        "",
        spec["info"]["description"],
        "Served by `python -m producer_api` (default `:8080`); resources under `/api/v1`,",
        "probes, metrics and the spec at the root. Live: `/openapi.json`, `/docs`.",
        "",
        "**Auth**: `Authorization: Bearer <token>`. Roles: `viewer` reads, `operator` also",
        "enqueues and retries, `admin` also revokes and manages tokens. No or bad token: 401;",
        "a role too low: 403. Create tokens with `taskpulse tokens create --role <role>`.",
        "",
        "**Errors** always have the shape `{\"error\": {\"code\", \"message\", \"details\"}}`;",
        "`details.field` names the offending field of a 422. Redis or broker down: 503.",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            by_tag.setdefault(op["tags"][0], []).append((method, path, op))
    for tag, ops in by_tag.items():
        lines += [f"## {tag.capitalize()}", ""]
        for method, path, op in ops:
            _operation(lines, method, path, op)
    _task_parameters(lines, spec["components"]["schemas"]["EnqueueRequest"].get("oneOf", []))
    lines += ["## Schemas", ""]
    for name, schema in sorted(spec["components"]["schemas"].items()):
        _component(lines, name, schema)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args()
    text = render(openapi())
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
