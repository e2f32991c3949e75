"""The task catalog (``catalog.json``, written by ``python -m worker catalog``; format in
``worker/catalog.py``).

The API never imports task code: this file is all it knows about tasks — names, queues,
parameters (each with a JSON Schema) and the broker priority numbers. Arguments are bound to the
parameters the way a Python call would bind them and each value is checked against its schema,
so a bad call is refused with a 422 instead of failing on a worker.

The schemas come from the task signatures' annotations (``worker/tasks/params.py``), which the
worker also checks every call against; this module implements the JSON Schema subset they use,
with the same semantics as msgspec on the worker (patterns are searched, as in JSON Schema).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from producer_api.errors import Unprocessable

# The JSON Schema subset parameter schemas may use. Anything else makes the catalog fail to load,
# so a schema the API cannot enforce is noticed at startup, not silently ignored.
SCHEMA_KEYWORDS: Final = frozenset(
    {"type", "enum", "const", "anyOf", "items", "minimum", "maximum", "exclusiveMinimum",
     "exclusiveMaximum", "minLength", "maxLength", "pattern", "title", "description", "default",
     "examples"}
)
_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


class Parameter(msgspec.Struct, frozen=True, omit_defaults=True):
    """A task parameter, in positional order. ``default`` is given only when it is optional."""

    name: str
    required: bool = True
    type: str = ""
    schema: dict[str, Any] = {}
    default: Any = None


class TaskSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    queue: str
    parameters: list[Parameter] = []
    description: str = ""
    returns: dict[str, Any] = {}  # JSON Schema of the result; {} = anything


class Priorities(msgspec.Struct, frozen=True):
    """Levels (API numbers 1..4 in this order), the default, and level -> number per broker."""

    levels: list[str]
    default: str
    redis: dict[str, int]
    amqp: dict[str, int]

    def number(self, broker_kind: str, level: str) -> int:
        return (self.redis if broker_kind == "redis" else self.amqp)[level]


class Catalog(msgspec.Struct, frozen=True):
    """Tasks that may be sent, known queues, and priorities."""

    tasks: list[TaskSpec]
    queues: list[str]
    priorities: Priorities
    version: int = 1

    def task(self, name: str) -> TaskSpec | None:
        return next((t for t in self.tasks if t.name == name), None)

    def known_task(self, name: str, field: str) -> TaskSpec:
        """The task ``name``; 422 on ``field`` with the closest names if there is none."""
        spec = self.task(name)
        if spec is None:
            raise Unprocessable(
                f"unknown task {name!r}; GET /catalog lists the tasks that may be sent",
                {"field": field, "did_you_mean": close_names(name, [t.name for t in self.tasks])},
            )
        return spec

    def known_queue(self, queue: str, field: str) -> str:
        """``queue`` if declared; 422 on ``field`` listing the queues otherwise."""
        if queue not in self.queues:
            raise Unprocessable(
                f"unknown queue {queue!r}; one of {', '.join(self.queues)}",
                {"field": field, "allowed": self.queues,
                 "did_you_mean": close_names(queue, self.queues)},
            )  # fmt: skip
        return queue


def close_names(word: str, names: Sequence[str]) -> list[str]:
    """Up to three of ``names`` close to ``word`` ("did you mean"); a bare function name finds
    its ``domain.`` name too. The API's 422s and the CLI suggest by this one rule."""
    by_tail = {n.rpartition(".")[2]: n for n in names}
    close = difflib.get_close_matches(word, names, n=3, cutoff=0.6)
    close += [by_tail[t] for t in difflib.get_close_matches(word, list(by_tail), n=3, cutoff=0.6)]
    return list(dict.fromkeys(close))[:3]


class ArgumentError(ValueError):
    """Arguments that do not fit a task's parameters; ``field`` names the offending one."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def load_catalog(path: Path | str) -> Catalog:
    """Read and check the catalog; a bad file stops the API at startup, not on a request."""
    catalog = msgspec.json.decode(Path(path).read_bytes(), type=Catalog)
    unknown = {t.queue for t in catalog.tasks} - set(catalog.queues)
    if unknown:
        raise ValueError(f"{path}: tasks routed to undeclared queues {sorted(unknown)}")
    prio = catalog.priorities
    for table in (prio.redis, prio.amqp):
        if set(table) != set(prio.levels) or prio.default not in prio.levels:
            raise ValueError(f"{path}: priorities must map exactly the levels {prio.levels}")
    for task in catalog.tasks:
        for param in task.parameters:
            _check_schema_keywords(param.schema, f"{task.name}.{param.name}")
    return catalog


def _check_schema_keywords(schema: dict[str, Any], where: str) -> None:
    extra = set(schema) - SCHEMA_KEYWORDS
    if extra:
        raise ValueError(f"catalog schema for {where} uses unsupported keywords {sorted(extra)}")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error as exc:
            raise ValueError(f"catalog schema for {where} has a bad pattern: {exc}") from None
    for sub in schema.get("anyOf", ()):
        _check_schema_keywords(sub, where)
    if isinstance(schema.get("items"), dict):
        _check_schema_keywords(schema["items"], where)


def check_arguments(spec: TaskSpec, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Bind ``args``/``kwargs`` to the parameters like a call would; raise ``ArgumentError``."""
    params = spec.parameters
    if len(args) > len(params):
        raise ArgumentError(
            f"{spec.name} takes at most {len(params)} positional arguments, got {len(args)}",
            "args",
        )
    bound: dict[str, tuple[str, Any]] = {
        p.name: (f"args[{i}]", v) for i, (p, v) in enumerate(zip(params, args, strict=False))
    }
    by_name = {p.name: p for p in params}
    for key, value in kwargs.items():
        if key not in by_name:
            raise ArgumentError(f"{spec.name} has no parameter {key!r}", f"kwargs.{key}")
        if key in bound:
            raise ArgumentError(f"{spec.name} got {key!r} twice", f"kwargs.{key}")
        bound[key] = (f"kwargs.{key}", value)
    for param in params:
        if param.name not in bound:
            if param.required:
                raise ArgumentError(f"{spec.name} needs {param.name!r}", f"kwargs.{param.name}")
            continue
        field, value = bound[param.name]
        problem = schema_problem(param.schema, value)
        if problem:
            raise ArgumentError(f"{spec.name}: {param.name!r} {problem}", field)


def result_problem(spec: TaskSpec, result: dict[str, Any], kwargs: dict[str, Any]) -> str | None:
    """Why ``spec`` cannot take a value of schema ``result`` (the step before's result, which
    Celery puts first in a mutable step's args) as its first argument; None if it can."""
    if not spec.parameters:
        return f"{spec.name} takes no arguments, so it cannot take the result of the step before"
    first = spec.parameters[0]
    if first.name in kwargs:
        return (f"{spec.name} would get {first.name!r} twice: as the result of the step before "
                "and from kwargs")
    given, wanted = _json_types(result), _json_types(first.schema)
    if given is not None and wanted is not None and not given & wanted:
        return (f"{spec.name}'s first parameter {first.name!r} takes {sorted(wanted)}, but the "
                f"step before returns {sorted(given)}")
    return None


def _json_types(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types ``schema`` admits (``number`` and ``integer`` overlap); None: any."""
    if "anyOf" in schema:
        branches = [_json_types(sub) for sub in schema["anyOf"]]
        return None if None in branches else set().union(*branches)  # type: ignore[arg-type]
    if "type" in schema:
        kinds = {schema["type"]} if isinstance(schema["type"], str) else set(schema["type"])
    elif "enum" in schema or "const" in schema:
        kinds = {_json_type(v) for v in schema.get("enum", [schema.get("const")])}
    else:
        return None
    if kinds & {"number", "integer"}:
        kinds |= {"number", "integer"}
    return kinds


def schema_problem(schema: dict[str, Any], value: Any) -> str | None:
    """Why ``value`` does not match ``schema`` (the subset above), or None if it does."""
    if "anyOf" in schema:
        problems = [schema_problem(sub, value) for sub in schema["anyOf"]]
        if all(problems):
            # The branch of the value's own type says best what is wrong (a pattern, a bound).
            typed = [p for p, sub in zip(problems, schema["anyOf"], strict=True)
                     if "type" in sub and _is_type(value, sub["type"])]
            if len(typed) == 1:
                return typed[0]
            return f"matches none of {[s.get('type', s.get('enum')) for s in schema['anyOf']]}"
    if "const" in schema and value != schema["const"]:
        return f"must be {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"must be one of {schema['enum']}"
    kind = schema.get("type")
    if kind is not None and not _is_type(value, kind):
        return f"must be {kind}, got {_json_type(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"must be >= {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"must be <= {schema['maximum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return f"must be > {schema['exclusiveMinimum']}"
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return f"must be < {schema['exclusiveMaximum']}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"must be at least {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"must be at most {schema['maxLength']} characters"
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            hint = schema.get("description")
            return f"must be {hint}" if hint else f"must match {schema['pattern']!r}"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            if problem := schema_problem(schema["items"], item):
                return f"item {i} {problem}"
    return None


def _is_type(value: Any, kind: str | list[str]) -> bool:
    kinds = [kind] if isinstance(kind, str) else kind
    if isinstance(value, bool):
        return "boolean" in kinds
    if isinstance(value, float) and value.is_integer() and "integer" in kinds:
        return False  # 1.0 is not an integer argument: the task would get a float
    return any(isinstance(value, _TYPES.get(k, ())) for k in kinds)


def _json_type(value: Any) -> str:
    for name, types in _TYPES.items():
        if name != "number" and isinstance(value, types) and not (
            name == "integer" and isinstance(value, bool)
        ):
            return name
    return "number" if isinstance(value, float) else type(value).__name__
