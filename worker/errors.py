"""The two kinds of failure a task can have, and what the worker does about each.

``TransientError`` — the outside world is briefly unavailable (SMTP relay down, lock busy): the
task is retried with exponential backoff and jitter, at most ``max_retries`` times.
``PermanentError`` — retrying cannot help (bad arguments, a refused address): the task fails at
once with the message.
"""

from __future__ import annotations


class TransientError(Exception):
    """Retry later: the same call may well succeed."""


class PermanentError(Exception):
    """Do not retry: the same call will fail the same way."""


class InvalidArguments(PermanentError, ValueError):
    """A task was called with arguments it cannot accept."""
