"""``python -m producer_api`` / ``taskpulse-api``: run the HTTP API."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys

from aiohttp import web

from producer_api import server
from producer_api.app import create_app
from producer_api.config import ENV_VARS, load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="taskpulse-api",
        description="taskpulse producer API: enqueue Celery tasks by name and query the "
        "monitoring store. Configured by environment (flags override): "
        + ", ".join(ENV_VARS),
    )
    parser.add_argument("--host", help="listen address (TASKPULSE_API_HOST, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="listen port (TASKPULSE_API_PORT, default 8080)")
    parser.add_argument("--log-level", default=os.environ.get("TASKPULSE_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


async def _freeze_gc(app: web.Application) -> None:
    """Move everything loaded at startup (Celery, kombu, the catalog...) out of the collector's
    sight: full collections then scan only request garbage, which keeps latency tails short."""
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(os.environ, host=args.host, port=args.port)
        app = create_app(settings)
        app.on_startup.append(_freeze_gc)
    except (ValueError, OSError) as exc:
        sys.exit(f"taskpulse-api: {exc}")
    logging.getLogger("producer_api").info(
        "producer API on http://%s:%d/api/v1 (broker %s, store %s, tokens %s)",
        settings.host, settings.port, settings.broker_url.rpartition("@")[2],
        settings.redis_url.rpartition("@")[2], settings.tokens_file,
    )
    server.run(app, settings.host, settings.port, shutdown_timeout=5)


if __name__ == "__main__":
    main()
