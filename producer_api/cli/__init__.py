"""``taskpulse``: operator commands over the HTTP API (the seed's ``celery_manage``, grown up).

Configured by ``TASKPULSE_API_URL`` (default http://127.0.0.1:8080) and ``TASKPULSE_TOKEN``;
``--api-url``/``--token`` override them. Output is readable text in one voice (``output.py``);
``--json`` prints the API's JSON for scripts.

One job per module, imported one way only (commands -> client, output, arguments; ``app`` -> all):
``client`` (HTTP and error wording), ``output`` (formatting), ``arguments`` (reading times, JSON,
labels; enum choices from the API schema), one module per command area (``tasks``, ``watch``,
``workflows``, ``schedules``, ``catalog``, ``monitoring``, ``tokens``), and ``app`` (the parser
and ``main``).
"""

from producer_api.cli.app import main

__all__ = ["main"]
