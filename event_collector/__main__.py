"""``taskpulse-collector``: run the collector, or rebuild its projections from the stream."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from event_collector.config import CollectorSettings, load_settings
from event_collector.connection import open_async
from event_collector.environment import SettingsError
from event_collector.service import Collector
from event_collector.spool import SpoolError
from event_collector.store import EventStore

DESCRIPTION = """\
Consume Celery events from the broker (Redis PUB/SUB fanout, or a durable RabbitMQ queue),
append each to the Redis stream P events and fold it into the projections the API reads
(tasks, timelines, indexes, counters, workers). Serves Prometheus metrics on /metrics and its
state on /health. Configuration comes from TASKPULSE_* environment variables (see README);
flags override them.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="taskpulse-collector", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--broker-url", help="Celery broker (TASKPULSE_BROKER_URL)")
    parser.add_argument("--redis-url", help="monitoring store (TASKPULSE_REDIS_URL)")
    parser.add_argument("--key-prefix", help="key prefix (TASKPULSE_KEY_PREFIX, default tp:)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING (TASKPULSE_LOG_LEVEL)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="consume events and serve metrics (the default)")
    run.add_argument("--metrics-host", help="listen address (TASKPULSE_METRICS_HOST)")
    run.add_argument("--metrics-port", type=int, help="listen port (TASKPULSE_METRICS_PORT)")
    commands.add_parser(
        "rebuild",
        help="drop the projections and refold them from the event stream",
        description="Delete every projection key of the prefix (tasks, timelines, indexes,"
        " counters, workers) and fold the stream P events into them again. Stop the collectors"
        " first: an event applied while the old projections are being deleted can be"
        " miscounted.",
    )
    return parser.parse_args(argv)


def settings_with_flags(args: argparse.Namespace) -> CollectorSettings:
    import msgspec

    settings = load_settings()
    overrides = {
        name: value
        for name in ("broker_url", "redis_url", "key_prefix", "log_level", "metrics_host",
                     "metrics_port")
        if (value := getattr(args, name, None)) is not None
    }
    return msgspec.structs.replace(settings, **overrides)


async def run(settings: CollectorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Collector(settings).run(stop)


async def rebuild(settings: CollectorSettings) -> None:
    log = logging.getLogger("taskpulse.collector")
    client = open_async(settings.redis_url)
    try:
        store = EventStore(client, settings.keys, settings.retention)
        log.info("rebuilding projections from %s", settings.keys.events)
        seen, applied = await store.rebuild()
        log.info("rebuild done: %d stream entries read, %d events applied", seen, applied)
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_with_flags(args)
    except SettingsError as exc:
        print(f"taskpulse-collector: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command = rebuild if args.command == "rebuild" else run
    try:
        asyncio.run(command(settings))
    except SpoolError as exc:
        print(f"taskpulse-collector: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
