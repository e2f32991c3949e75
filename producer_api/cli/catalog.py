"""``taskpulse catalog``: the tasks that may be sent, and "did you mean" for names that are not."""

from __future__ import annotations

import argparse
import json
from typing import Any

from producer_api.catalog import close_names
from producer_api.cli import fleet
from producer_api.cli.client import Api, CliError, did_you_mean
from producer_api.cli.output import Output


def parameter_type(schema: dict[str, Any]) -> str:
    if "type" in schema:
        kind = schema["type"]
        return "|".join(kind) if isinstance(kind, list) else kind
    if "anyOf" in schema:
        return "|".join(parameter_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "enum"
    if "const" in schema:
        return "const"
    return "any"


def constraints(schema: dict[str, Any]) -> str:
    """The schema's limits in a few words: ``one of "csv", "json"``, ``1..12``, ``length >= 1``."""
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(json.dumps(v) for v in schema["enum"]))
    if "const" in schema:
        parts.append("always " + json.dumps(schema["const"]))
    parts += _bounds("", schema.get("minimum"), schema.get("maximum"))
    parts += _bounds("length ", schema.get("minLength"), schema.get("maxLength"))
    parts += [c for s in schema.get("anyOf", ()) if (c := constraints(s))]
    if isinstance(schema.get("items"), dict) and (inner := constraints(schema["items"])):
        parts.append(f"items: {inner}")
    return "; ".join(parts)


def _bounds(prefix: str, low: Any, high: Any) -> list[str]:
    if low is not None and low == high:
        return [f"{prefix}{json.dumps(low)}"]
    if low is not None and high is not None:
        return [f"{prefix}{json.dumps(low)}..{json.dumps(high)}"]
    if low is not None:
        return [f"{prefix}>= {json.dumps(low)}"]
    if high is not None:
        return [f"{prefix}<= {json.dumps(high)}"]
    return []


def show_catalog(out: Output, catalog: dict[str, Any]) -> None:
    prio = catalog["priorities"]
    levels = [f"{p} (default)" if p == prio["default"] else p for p in prio["levels"]]
    print(f"queues: {', '.join(catalog['queues'])}")
    print(f"priorities: {', '.join(levels)}")
    for task in catalog["tasks"]:
        print(f"\n{task['name']}  queue {task['queue']}")
        if task.get("description"):
            print(f"  {task['description']}")
        rows = [{
            "parameter": p["name"],
            "type": parameter_type(p.get("schema", {})),
            "default": json.dumps(p.get("default")) if not p.get("required", True)
            else "(required)",
            "constraints": constraints(p.get("schema", {})),
        } for p in task.get("parameters", [])]  # fmt: skip
        if rows:
            out.table(rows, ["parameter", "type", "default", "constraints"], indent="  ")
        else:
            print("  (no parameters)")


def cmd_catalog(api: Api, out: Output, args: argparse.Namespace) -> int:
    if args.names[:1] == ["limits"]:
        return fleet.cmd_limits(api, out, args, args.names[1:])
    if any(getattr(args, option) for option in fleet.LIMIT_OPTIONS):
        raise CliError("--rate-limit, --time-limits and --clear go with `taskpulse catalog "
                       "limits NAME`", 2)
    catalog = api.call("GET", "/catalog")
    if args.names:
        known = {t["name"]: t for t in catalog["tasks"]}
        for name in args.names:
            if name not in known:
                hint = did_you_mean(close_names(name, list(known)))
                raise CliError(f"no task {name!r} in the catalog" + (f"; {hint}" if hint else ""))
        catalog = {**catalog, "tasks": [known[n] for n in args.names]}
    out.emit(catalog, lambda c: show_catalog(out, c))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "catalog", parents=[common], help="tasks you can send: queue, parameters, constraints",
        description="The tasks the API accepts, with their queue and each parameter's type, "
        "default and constraints (what --args/--kwargs must satisfy).",
        epilog="examples:\n  taskpulse catalog\n  taskpulse catalog exports.export_data\n"
        "  taskpulse catalog limits demo.test_task                  (in force, per worker)\n"
        "  taskpulse catalog limits demo.test_task --rate-limit 10/m --time-limits 60/90\n"
        "  taskpulse catalog limits demo.test_task --clear",
    )
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="only these tasks; `limits NAME`: that task's rate and time limits")
    fleet.add_limit_options(p)
    p.set_defaults(func=cmd_catalog)
