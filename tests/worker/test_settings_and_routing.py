"""Settings from the environment, the Celery config derived from them, routes and priorities."""

from __future__ import annotations

from pathlib import Path

import pytest

from event_collector.config import load_settings as collector_settings
from event_collector.environment import SettingsError, settings_from_env
from event_collector.keys import Keys
from producer_api.config import load_settings as api_settings
from worker.application import create_app
from worker.catalog import build_catalog
from worker.config import WorkerSettings, load_settings
from worker.dynamic_schedule import BeatSettings
from worker.routing import PRIORITIES, PRIORITY_LEVELS, queue_for


def test_defaults_without_environment() -> None:
    settings = load_settings({})

    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.backend_url == settings.broker_url
    assert settings.timezone == "Asia/Shanghai"
    assert settings.data_dir == Path(".run/data")
    assert (settings.smtp_host, settings.smtp_port) == ("localhost", 1025)
    assert (settings.soft_time_limit, settings.time_limit) == (1500, 1800)


def test_environment_overrides_and_per_task_time_limits() -> None:
    settings = load_settings(
        {
            "TASKPULSE_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
            "TASKPULSE_RESULT_BACKEND": "redis://127.0.0.1:6380/2",
            "TASKPULSE_TIMEZONE": "Europe/Berlin",
            "TASKPULSE_TASK_TIME_LIMITS": "demo.long_running_task=60/90",
            "TASKPULSE_DEFAULT_PRIORITY": "low",
        }
    )

    app = create_app(settings)

    assert settings.broker_kind == "amqp"
    assert app.conf.timezone == "Europe/Berlin"
    assert app.conf.task_default_priority == PRIORITIES["amqp"]["low"]
    task = app.tasks["demo.long_running_task"]
    assert (task.soft_time_limit, task.time_limit) == (60, 90)
    assert settings.cache_url == "redis://127.0.0.1:6380/2"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TASKPULSE_DEFAULT_PRIORITY", "urgent", "TASKPULSE_DEFAULT_PRIORITY"),
        ("TASKPULSE_TIMEZONE", "Mars/Olympus", "TASKPULSE_TIMEZONE"),
        ("TASKPULSE_SMTP_PORT", "twenty-five", "TASKPULSE_SMTP_PORT"),
        ("TASKPULSE_SOFT_TIME_LIMIT", "2000", "TASKPULSE_SOFT_TIME_LIMIT"),
        ("TASKPULSE_TASK_TIME_LIMITS", "demo.test_task=5", "TASKPULSE_TASK_TIME_LIMITS"),
        ("TASKPULSE_PREFETCH_MULTIPLIER", "1.5", "TASKPULSE_PREFETCH_MULTIPLIER"),
        ("TASKPULSE_BROKER_URL", "sqs://", "TASKPULSE_BROKER_URL"),
    ],
)
def test_bad_settings_fail_at_start_with_the_variable_named(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings({name: value})


def test_celery_config_turns_on_events_late_acks_and_limits() -> None:
    conf = create_app(WorkerSettings()).conf

    assert conf.worker_send_task_events
    assert conf.task_send_sent_event
    assert conf.task_track_started
    assert conf.task_acks_late
    assert conf.task_reject_on_worker_lost
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (1500, 1800)
    assert conf.result_expires == 86400


def test_every_task_routes_to_its_fixed_queue() -> None:
    queues = {
        task["name"]: task["queue"] for task in build_catalog(create_app(WorkerSettings()))["tasks"]
    }

    assert {name for name, queue in queues.items() if queue == "finance"} == {
        "finance.check_pending_bills",
        "finance.send_bill_reminders",
        "finance.calculate_monthly_revenue",
    }
    assert {name for name, queue in queues.items() if queue == "email"} == {
        "notifications.send_notification_email"
    }
    assert all(
        queue == "reports"
        for name, queue in queues.items()
        if name.startswith(("reports.", "exports."))
    )
    assert queue_for("notifications.cleanup_old_notifications") == "default"
    assert queue_for("maintenance.backup_database") == "default"


def test_router_gives_unprioritised_sends_the_normal_priority_on_redis() -> None:
    app = create_app(WorkerSettings())

    route = app.amqp.router.route({}, "demo.test_task")
    explicit = app.amqp.router.route({"priority": 0}, "demo.test_task")

    assert route["priority"] == PRIORITIES["redis"]["normal"]
    assert route["queue"].name == "default"
    assert explicit["priority"] == 0


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_priority_levels_are_strictly_ordered_for_each_broker(broker: str) -> None:
    numbers = [PRIORITIES[broker][level] for level in PRIORITY_LEVELS]
    # Redis consumes lower numbers first, RabbitMQ higher ones.
    expected = sorted(numbers, reverse=broker == "redis")

    assert numbers == expected
    assert len(set(numbers)) == len(numbers)


def test_rabbitmq_queues_are_declared_as_priority_queues() -> None:
    app = create_app(WorkerSettings(broker_url="amqp://guest:guest@127.0.0.1:5672//"))

    for queue in app.conf.task_queues:
        assert queue.queue_arguments == {"x-max-priority": max(PRIORITIES["amqp"].values())}


def test_a_bad_value_names_its_variable_for_beat_too() -> None:
    with pytest.raises(SettingsError, match="TASKPULSE_BEAT_MAX_INTERVAL"):
        settings_from_env(BeatSettings, {"TASKPULSE_BEAT_MAX_INTERVAL": "often"})


def test_beat_reads_its_settings_from_taskpulse_variables() -> None:
    settings = settings_from_env(BeatSettings, {
        "TASKPULSE_REDIS_URL": "redis://store:6379/1", "TASKPULSE_KEY_PREFIX": "x:",
        "TASKPULSE_BEAT_MAX_INTERVAL": "2.5", "TASKPULSE_BEAT_LOCK_TIMEOUT": "9",
    })
    assert settings == BeatSettings(redis_url="redis://store:6379/1", key_prefix="x:",
                                    beat_max_interval=2.5, beat_lock_timeout=9)


def test_every_role_defaults_the_shared_variables_alike() -> None:
    worker, beat = load_settings({}), settings_from_env(BeatSettings, {})
    collector, api = collector_settings({}), api_settings({})

    assert worker.broker_url == collector.broker_url == api.broker_url
    assert beat.redis_url == collector.redis_url == api.redis_url
    assert beat.keys == collector.keys == api.keys == Keys()
    assert worker.timezone == api.timezone
