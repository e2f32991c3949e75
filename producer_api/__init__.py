"""Producer API: enqueue Celery work by name and query the monitoring store over HTTP."""

__version__ = "0.1.0"
