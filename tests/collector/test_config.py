"""Settings come from TASKPULSE_* variables, typed, with the variable named on a bad value."""

from __future__ import annotations

import pytest

from event_collector.config import CollectorSettings
from event_collector.environment import SettingsError, settings_from_env


def test_defaults_without_environment() -> None:
    settings = settings_from_env(CollectorSettings, {})
    assert (settings.keys.prefix, settings.metrics_port) == ("tp:", 9808)


def test_variables_are_converted_to_the_field_types() -> None:
    settings = settings_from_env(CollectorSettings, {
        "TASKPULSE_BATCH_SIZE": "100", "TASKPULSE_RETENTION_TIMELINE_MAX": "5",
        "TASKPULSE_QUEUES": "a, b", "TASKPULSE_BROKER_URL": "amqp://guest@rabbit//",
    })
    assert settings.batch_size == 100
    assert settings.retention.timeline_max == 5
    assert settings.queue_names == ("a", "b")
    assert settings.is_rabbitmq


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(SettingsError, match="TASKPULSE_METRICS_PORT"):
        settings_from_env(CollectorSettings, {"TASKPULSE_METRICS_PORT": "http"})


def test_the_result_backend_defaults_to_the_broker_url_as_in_every_role() -> None:
    settings = settings_from_env(CollectorSettings, {"TASKPULSE_BROKER_URL": "redis://b:6379/0"})
    assert settings.backend_url == "redis://b:6379/0"
