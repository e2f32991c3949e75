"""Event collector: Celery events into a Redis stream, projections and Prometheus metrics."""
