"""Pure-code checks of metric names, labels and counting (no services)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from event_collector.config import load_settings
from event_collector.events import Event
from event_collector.keys import Keys
from event_collector.metrics import CollectorMetrics, exception_class, host_label
from event_collector.service import Collector
from tests.events import task_event

NAME = "finance.check_pending_bills"
CELERY_EXPORTER_LABELS = {
    "celery_task_sent_total": {"name", "hostname", "queue_name"},
    "celery_task_received_total": {"name", "hostname", "queue_name"},
    "celery_task_started_total": {"name", "hostname", "queue_name"},
    "celery_task_succeeded_total": {"name", "hostname", "queue_name"},
    "celery_task_failed_total": {"name", "hostname", "queue_name", "exception"},
    "celery_task_rejected_total": {"name", "hostname", "queue_name"},
    "celery_task_revoked_total": {"name", "hostname", "queue_name"},
    "celery_task_retried_total": {"name", "hostname", "queue_name"},
    "celery_task_runtime_bucket": {"name", "hostname", "queue_name", "le"},
}



def one_task_lifecycle(task_id: str = "t1", failed: bool = False) -> list[Event]:
    final = (
        task_event("failed", task_id, 13.0, hostname="w1@box", runtime=2.0,
                   exception="ValueError('bad input')")
        if failed
        else task_event("succeeded", task_id, 13.0, hostname="w1@box", runtime=2.0)
    )
    return [
        task_event("sent", task_id, 10.0, hostname="gen1@api", name=NAME, queue="finance"),
        task_event("received", task_id, 10.5, hostname="w1@box", name=NAME),
        task_event("started", task_id, 11.0, hostname="w1@box"),
        final,
    ]


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def new_metrics() -> tuple[CollectorMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return CollectorMetrics(registry, keys=Keys()), registry


def test_task_counters_use_celery_exporter_names_and_labels():
    metrics, registry = new_metrics()
    metrics.observe_applied(one_task_lifecycle("t1") + one_task_lifecycle("t2", failed=True))
    metrics.observe_applied([task_event(k, "t3", 20.0, hostname="w1@box", name="demo.test_task")
                             for k in ("rejected", "revoked", "retried")])
    seen = {}
    for (name, labels), _ in samples(registry).items():
        if name in CELERY_EXPORTER_LABELS:
            seen[name] = {label for label, _ in labels}
    assert seen == CELERY_EXPORTER_LABELS


def test_succeeded_event_is_labelled_with_name_and_queue_learned_from_sent():
    metrics, registry = new_metrics()
    metrics.observe_applied(one_task_lifecycle())
    key = ("celery_task_succeeded_total", frozenset({
        ("name", "finance.check_pending_bills"), ("hostname", "box"), ("queue_name", "finance"),
    }))
    assert samples(registry)[key] == 1.0


def test_counters_count_each_applied_event_exactly_once():
    metrics, registry = new_metrics()
    for i in range(7):
        metrics.observe_applied(one_task_lifecycle(f"t{i}"))
    values = samples(registry)
    labels = frozenset({("name", "finance.check_pending_bills"), ("hostname", "box"),
                        ("queue_name", "finance")})
    assert values[("celery_task_started_total", labels)] == 7.0
    assert values[("celery_task_sent_total",
                   labels - {("hostname", "box")} | {("hostname", "api")})] == 7.0
    assert values[("taskpulse_events_total", frozenset({("type", "task-succeeded")}))] == 7.0
    assert values[("celery_task_runtime_count", labels)] == 7.0
    assert values[("celery_task_runtime_sum", labels)] == 14.0


def test_failed_counter_carries_exception_class_only():
    metrics, registry = new_metrics()
    metrics.observe_applied(one_task_lifecycle(failed=True))
    failed = {labels for (name, labels), value in samples(registry).items()
              if name == "celery_task_failed_total" and value > 0}
    assert failed == {frozenset({("name", "finance.check_pending_bills"), ("hostname", "box"),
                                 ("queue_name", "finance"), ("exception", "ValueError")})}


def test_failed_runtime_goes_to_its_own_histogram_not_the_runtime_one():
    metrics, registry = new_metrics()
    metrics.observe_applied(one_task_lifecycle(failed=True))
    names = {name for (name, _) in samples(registry)}
    assert "taskpulse_task_failed_runtime_seconds_count" in names
    assert "celery_task_runtime_count" not in names


def test_queue_wait_is_started_minus_sent():
    metrics, registry = new_metrics()
    metrics.observe_applied(one_task_lifecycle())
    values = samples(registry)
    wait_sum = [v for (n, _), v in values.items() if n == "celery_task_queue_wait_time_sum"]
    assert wait_sum == [1.0]


def test_duplicates_and_invalid_events_are_counted_separately():
    metrics, registry = new_metrics()
    metrics.observe_duplicates(3)
    metrics.observe_duplicates(2)
    metrics.observe_invalid("missing-uuid")
    values = samples(registry)
    assert values[("taskpulse_events_duplicate_total", frozenset())] == 5.0
    assert values[("taskpulse_events_invalid_total", frozenset({("reason", "missing-uuid")}))] == 1


def test_task_ids_appear_as_exemplars_in_openmetrics_not_as_labels():
    metrics, registry = new_metrics()
    metrics.observe_applied(one_task_lifecycle("4f1c-ok") + one_task_lifecycle("9e2d-bad", True))
    text = generate_openmetrics(registry).decode()
    labels = f'hostname="box",le="2.5",name="{NAME}",queue_name="finance"'
    bucket = f"celery_task_runtime_bucket{{{labels}}}"
    assert f'{bucket} 1.0 # {{task_id="4f1c-ok"}} 2.0' in text
    failed = [line for line in text.splitlines()
              if line.startswith("celery_task_failed_total{") and 'exception="ValueError"' in line]
    assert len(failed) == 1
    assert '} 1.0 # {task_id="9e2d-bad"} 1.0' in failed[0]
    assert "4f1c-ok" not in generate_latest(registry).decode()


def test_metrics_keep_nothing_per_task_between_calls():
    metrics, registry = new_metrics()
    metrics.observe_applied(one_task_lifecycle("t1")[:2])
    metrics.observe_applied(one_task_lifecycle("t1")[2:])
    # without the store's facts, a later call cannot know t1's name: labels come from the store
    key = ("celery_task_succeeded_total", frozenset({
        ("name", "unknown"), ("hostname", "box"), ("queue_name", "unknown")}))
    assert samples(registry)[key] == 1.0


def test_unknown_task_name_gets_a_bounded_placeholder_label():
    metrics, registry = new_metrics()
    metrics.observe_applied([task_event("succeeded", "never-seen", 1.0, hostname="w@h",
                                        runtime=0.1)])
    key = ("celery_task_succeeded_total", frozenset({
        ("name", "unknown"), ("hostname", "h"), ("queue_name", "unknown")}))
    assert samples(registry)[key] == 1.0


def test_exception_class_follows_celery_exporter():
    assert exception_class("ValueError('boom')") == "ValueError"
    assert exception_class("billing.errors.PaymentDeclined('card')") == "PaymentDeclined"
    assert exception_class("something odd") == "UnknownException"


def test_hostname_label_is_the_host_part_of_the_node_name_like_celery_exporter():
    assert host_label("w1@box") == "box"
    assert host_label("w1@box", node_hostnames=True) == "w1@box"
    assert host_label("box") == "box"


def test_first_worker_event_of_a_label_set_shows_the_other_counters_at_zero():
    metrics, registry = new_metrics()
    metrics.observe_applied(one_task_lifecycle()[:2])
    labels = frozenset({("name", NAME), ("hostname", "box"), ("queue_name", "finance")})
    values = samples(registry)
    assert values[("celery_task_received_total", labels)] == 1.0
    assert values[("celery_task_succeeded_total", labels)] == 0.0
    assert values[("celery_task_failed_total", labels | {("exception", "")})] == 0.0


def test_sent_counter_can_use_a_generic_hostname_for_random_producer_hosts():
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry, keys=Keys(), generic_sent_hostname=True)
    metrics.observe_applied(one_task_lifecycle())
    sent = {labels for (name, labels) in samples(registry) if name == "celery_task_sent_total"}
    assert sent == {frozenset({("name", NAME), ("hostname", "generic"), ("queue_name", "finance")})}


def test_a_failure_as_first_event_also_shows_the_success_counter_at_zero():
    metrics, registry = new_metrics()
    metrics.observe_applied([task_event("failed", "t1", 1.0, hostname="w1@box",
                                        exception="KeyError('k')")])
    unknown = frozenset({("name", "unknown"), ("hostname", "box"), ("queue_name", "unknown")})
    assert samples(registry)[("celery_task_succeeded_total", unknown)] == 0.0


def test_the_collector_labels_workers_by_node_when_its_setting_says_so():
    async def observed_hostnames() -> set[str]:
        service = Collector(load_settings({  # built, never started: no Redis needed
            "TASKPULSE_METRICS_NODE_HOSTNAMES": "true",
            "TASKPULSE_METRICS_GENERIC_SENT_HOSTNAME": "1",
        }))
        try:
            service.metrics.observe_applied(one_task_lifecycle())
            return {dict(labels)["hostname"] for (name, labels) in samples(service.registry)
                    if name.startswith("celery_task_") and name.endswith("_total")}
        finally:
            await service.redis.aclose()

    assert asyncio.run(observed_hostnames()) == {"w1@box", "generic"}
