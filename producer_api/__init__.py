"""Producer API: enqueue Celery work by name and query the monitoring store over HTTP."""
