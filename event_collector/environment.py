"""Settings from the environment, the same way in every taskpulse process: the collector
(``config.py``), the API (``producer_api.config``), the worker and beat (``worker.config``,
``worker.dynamic_schedule``) each describe theirs as one typed Struct and build it here.

Each field ``foo_bar`` reads ``TASKPULSE_FOO_BAR`` (or the variable a ``names`` table gives it);
strings from the environment are converted to the field's type (``msgspec.convert(...,
strict=False)``), so a bad value fails at start-up with the variable's name in the message,
never deep inside.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Final, TypeVar

import msgspec

ENV_PREFIX: Final = "TASKPULSE_"
# Defaults of the variables several roles read (the README's configuration table); the key
# prefix's is keys.DEFAULT_KEY_PREFIX.
DEFAULT_BROKER_URL: Final = "redis://127.0.0.1:6379/0"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/1"
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"

S = TypeVar("S", bound=msgspec.Struct)


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def settings_from_env(
    struct_type: type[S],
    environ: Mapping[str, str] | None = None,
    prefix: str = ENV_PREFIX,
    *,
    names: Mapping[str, str] | None = None,
    parse: Mapping[str, Callable[[str], object]] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> S:
    """Build ``struct_type`` from ``<prefix><FIELD>`` variables (or the ``names`` table:
    variable -> field, for a service whose variables are not its field names); unset ones keep
    their default, ``overrides`` (command-line flags; None = not given) win. ``parse`` (field ->
    function) reads a variable whose text is not a plain value of its field's type; a
    ValueError it raises names the variable too."""
    env = os.environ if environ is None else environ
    if names is None:
        names = {prefix + f.name.upper(): f.name for f in msgspec.structs.fields(struct_type)}
    parse = parse or {}
    values: dict[str, object] = {}
    for variable, field in names.items():
        raw = env.get(variable)
        if raw is None or raw == "":
            continue
        try:
            values[field] = parse[field](raw) if field in parse else raw
        except ValueError as exc:
            raise SettingsError(f"{variable}: {exc}") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return msgspec.convert(values, struct_type, strict=False)
    except msgspec.ValidationError as exc:
        # "Expected `int`, got `str` - at `$.batch_size`" -> name the variable instead
        message = str(exc)
        for variable, field in names.items():
            message = message.replace(f"`$.{field}`", variable)
        raise SettingsError(message) from None
