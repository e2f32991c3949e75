"""The alert rules: valid, unit-tested by promtool for firing and quiet cases, documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.deploy.deployfiles import DEPLOY, DOCS, load_yaml

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
# Gauges both hot-standby collectors export with the same value: summing them double counts.
SHARED_GAUGES = (
    "celery_queue_length", "celery_worker_up", "celery_worker_tasks_active",
    "taskpulse_tasks_stuck", "celery_active_consumer_count", "celery_active_worker_count",
    "celery_active_process_count", "taskpulse_stream_length",
)

# Absolute, from the Prometheus's `runbook_base` external label or else the shipped default.
RUNBOOK_URL = re.compile(
    r'\{\{ or \$externalLabels\.runbook_base "(?P<default>[^"]+)" \}\}#(?P<anchor>[a-z0-9-]+)'
)

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def alerts() -> list[dict]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True,
                          timeout=60)


def test_rules_file_passes_promtool_check() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = [case for test in load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]
             for case in test["alert_rule_test"]]
    for alert in alerts():
        mine = [case for case in cases if case["alertname"] == alert["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{alert['alert']} never fires in tests"
        assert any(not case["exp_alerts"] for case in mine), f"{alert['alert']} has no quiet test"


def test_every_alert_has_summary_description_and_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (DOCS / "runbook.md").read_text().splitlines() if line.startswith("#")
    }
    for alert in alerts():
        notes = alert["annotations"]
        assert notes["summary"], alert["alert"]
        assert notes["description"], alert["alert"]
        link = RUNBOOK_URL.fullmatch(notes["runbook_url"])
        assert link, f"{alert['alert']}: runbook_url is not the templated link"
        assert link["anchor"] in anchors, f"{alert['alert']}: no section #{link['anchor']}"


def test_runbook_links_are_absolute_with_one_default_for_every_alert() -> None:
    defaults = {RUNBOOK_URL.fullmatch(a["annotations"]["runbook_url"])["default"]
                for a in alerts()}  # fmt: skip
    assert len(defaults) == 1, defaults
    default = urlsplit(defaults.pop())
    # The API's own /runbook at its default address (producer_api/routes/health.py).
    assert (default.scheme, default.netloc, default.path) == ("http", "localhost:8080", "/runbook")


def test_the_unit_tests_expect_every_rendered_runbook_link_to_be_absolute() -> None:
    links = [alert["exp_annotations"]["runbook_url"]
             for test in load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]
             for case in test["alert_rule_test"] for alert in case["exp_alerts"]]  # fmt: skip
    assert links
    for link in links:
        parts = urlsplit(link)
        assert (parts.scheme in ("http", "https"), bool(parts.netloc), bool(parts.fragment)) == (
            True, True, True)


def test_alerts_never_sum_gauges_that_both_collectors_export() -> None:
    for alert in alerts():
        for gauge in SHARED_GAUGES:
            assert not re.search(rf"\bsum\b[^()]*\(\s*{gauge}\b", alert["expr"]), alert["alert"]


def test_alerts_sum_counters_across_collectors() -> None:
    for alert in alerts():
        for match in re.finditer(r"\b(rate|increase)\(", alert["expr"]):
            before = alert["expr"][: match.start()].rstrip()
            assert re.search(r"sum( by \([^)]*\))? \($", before), (alert["alert"], before[-40:])


@pytest.mark.parametrize("config", ["local.yml", "prometheus.yml"])
def test_prometheus_configs_are_valid_and_load_the_rules(config: str) -> None:
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts.yml" in load_yaml(PROMETHEUS / config)["rule_files"]


def test_local_config_scrapes_the_collector_and_api_that_make_run_starts() -> None:
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS / "local.yml")["scrape_configs"]}
    assert jobs["taskpulse-collector"]["static_configs"][0]["targets"] == ["127.0.0.1:9808"]
    assert jobs["taskpulse-api"]["static_configs"][0]["targets"] == ["127.0.0.1:8080"]


def test_rule_jobs_match_the_scrape_job_names() -> None:
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]}
    for alert in alerts():
        for job in re.findall(r'job="([^"]+)"', alert["expr"]):
            assert job in jobs, alert["alert"]
