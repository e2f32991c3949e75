"""Reading deploy/ as the tests need it: YAML documents, entry points, env vars the code reads."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.services import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
DOCS = REPO_ROOT / "docs"
WORKER_QUEUES = "default,finance,reports,email"
# Entry points of our own processes; anything else in a command (redis, grafana...) is an image's.
OWN_PROGRAMS = {"celery", "taskpulse", "taskpulse-api", "taskpulse-collector", "python", "python3"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


class _RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every variable a settings loader asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@cache
def env_vars_read_by_code() -> frozenset[str]:
    """Every TASKPULSE_* variable the worker, collector and API settings loaders look up."""
    from event_collector.config import load_settings as collector_settings
    from producer_api.config import load_settings as api_settings
    from worker.config import load_settings as worker_settings

    env = _RecordingEnv()
    worker_settings(env)
    collector_settings(env)
    api_settings(env)
    return frozenset(name for name in env.asked if name.startswith("TASKPULSE_"))


@cache
def console_scripts() -> dict[str, str]:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return pyproject["project"]["scripts"]


def program(argv: list[str]) -> str:
    return Path(argv[0]).name


def split(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def entry_point_problem(argv: list[str]) -> str | None:
    """Why ``argv`` would not start a taskpulse process, or None when it would."""
    name = program(argv)
    if name == "celery":
        return _celery_problem(argv)
    if name in console_scripts():
        module, _, func = console_scripts()[name].partition(":")
        try:
            loaded = importlib.import_module(module)
        except ImportError as exc:
            return f"{name} -> {module}: {exc}"
        if not callable(getattr(loaded, func, None)):
            return f"{name} -> {module}:{func} is not callable"
        return None
    if name.startswith("python") and argv[1:2] == ["-m"]:
        if importlib.util.find_spec(f"{argv[2]}.__main__") is None:
            return f"python -m {argv[2]}: no such module"
        return None
    return f"{argv[0]} is not a taskpulse entry point"


def _celery_problem(argv: list[str]) -> str | None:
    if argv[1:3] != ["-A", "worker"]:
        return f"celery must load the app with -A worker: {argv}"
    from celery import Celery

    if not isinstance(getattr(importlib.import_module("worker"), "app", None), Celery):
        return "-A worker finds no Celery app at worker.app"
    command = argv[3]
    if command == "worker":
        if "-E" not in argv:
            return "worker without -E emits no events: the collector would see nothing"
        if argv[argv.index("-Q") + 1] != WORKER_QUEUES:
            return f"worker must consume {WORKER_QUEUES}"
    elif command != "beat":
        return f"unknown celery command {command!r}"
    return None


@cache
def runs_with_help(program_name: str) -> subprocess.CompletedProcess[str]:
    """Run a console script's ``--help`` for real: proves the entry point starts."""
    module, _, func = console_scripts()[program_name].partition(":")
    code = f"import sys; from {module} import {func}; sys.exit({func}())"
    return subprocess.run(
        [sys.executable, "-c", code, "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=60, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
