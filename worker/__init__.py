"""taskpulse worker: the Celery app and its task catalog.

``celery -A worker worker -E -Q default,finance,reports,email`` and ``celery -A worker beat`` find
``app`` here. It is configured from the environment (see ``worker.config``); code that needs
other settings builds its own with ``worker.application.create_app``.
"""

from __future__ import annotations

from worker.application import create_app
from worker.config import load_settings

app = create_app(load_settings())

__all__ = ["app", "create_app", "load_settings"]
