"""The API's settings: its own variable names, flags over the environment, bad values named."""

from __future__ import annotations

import pytest

from event_collector.environment import SettingsError
from producer_api.config import load_settings


def test_variables_map_to_their_fields_and_flags_win() -> None:
    settings = load_settings(
        {"TASKPULSE_API_PORT": "9000", "TASKPULSE_API_IDEMPOTENCY_TTL": "60",
         "TASKPULSE_API_HOST": "127.0.0.1"},
        host="0.0.0.0", port=None,
    )
    assert (settings.port, settings.idempotency_ttl_seconds, settings.host) == (
        9000, 60, "0.0.0.0")


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(SettingsError, match="TASKPULSE_API_SSE_HEARTBEAT"):
        load_settings({"TASKPULSE_API_SSE_HEARTBEAT": "often"})
