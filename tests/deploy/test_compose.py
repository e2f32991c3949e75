"""deploy/compose.yaml: no Docker engine here, so check what a broken stack would get wrong."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.deployfiles import (
    DEPLOY,
    entry_point_problem,
    env_vars_read_by_code,
    load_yaml,
    runs_with_help,
    split,
)

COMPOSE = load_yaml(DEPLOY / "compose.yaml")
SERVICES = COMPOSE["services"]
TASKPULSE = [name for name, svc in SERVICES.items() if "build" in svc]


def test_stack_has_every_component() -> None:
    assert {"redis", "worker", "beat", "collector-1", "collector-2", "api", "prometheus",
            "alertmanager", "grafana", "smtp"} <= SERVICES.keys()
    assert set(TASKPULSE) == {"worker", "beat", "collector-1", "collector-2", "api"}


@pytest.mark.parametrize("name", TASKPULSE)
def test_every_taskpulse_command_is_a_real_entry_point(name: str) -> None:
    assert entry_point_problem(split(SERVICES[name]["command"])) is None


@pytest.mark.parametrize("script", ["taskpulse-collector", "taskpulse-api"])
def test_console_scripts_start_and_explain_themselves(script: str) -> None:
    result = runs_with_help(script)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower()


def test_every_taskpulse_variable_is_one_the_code_reads() -> None:
    for name in TASKPULSE:
        unknown = set(SERVICES[name]["environment"]) - env_vars_read_by_code()
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_every_mounted_file_and_build_input_exists() -> None:
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
        if "build" in svc:
            context = DEPLOY / svc["build"]["context"]
            assert (context / svc["build"]["dockerfile"]).is_file()


def test_dockerfile_copies_every_package_that_exists() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for package in ("worker", "event_collector", "producer_api"):
        assert f"COPY {package} ./{package}" in text
        assert (DEPLOY.parent / package / "__init__.py").is_file()


def test_every_long_running_service_restarts_and_core_ones_have_health_checks() -> None:
    for name, svc in SERVICES.items():
        assert svc.get("restart") == "unless-stopped", name
    for name in ("redis", "worker", "collector-1", "collector-2", "api", "prometheus", "grafana"):
        assert "healthcheck" in SERVICES[name], name


def test_two_collectors_differ_only_in_their_id() -> None:
    one, two = SERVICES["collector-1"], SERVICES["collector-2"]
    assert one["command"] == two["command"]
    assert one["environment"]["TASKPULSE_COLLECTOR_ID"] != two["environment"][
        "TASKPULSE_COLLECTOR_ID"]
    assert {k: v for k, v in one["environment"].items() if k != "TASKPULSE_COLLECTOR_ID"} == {
        k: v for k, v in two["environment"].items() if k != "TASKPULSE_COLLECTOR_ID"}


def test_prometheus_scrapes_each_collector_and_the_api_on_their_ports() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in config["scrape_configs"]}
    assert targets["taskpulse-collector"] == [
        f"{name}:{SERVICES[name]['environment']['TASKPULSE_METRICS_PORT']}"
        for name in ("collector-1", "collector-2")
    ]
    api_port = SERVICES["api"]["environment"]["TASKPULSE_API_PORT"]
    assert targets["taskpulse-api"] == [f"api:{api_port}"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"]


def test_health_checks_probe_the_documented_endpoints() -> None:
    collector = " ".join(SERVICES["collector-1"]["healthcheck"]["test"])
    api = " ".join(SERVICES["api"]["healthcheck"]["test"])
    assert "127.0.0.1:9808/health" in collector
    assert re.search(r"127\.0\.0\.1:8080/(healthz|readyz)", api)


def test_mail_goes_to_the_smtp_sink() -> None:
    alertmanager = load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
    assert alertmanager["receivers"][0]["email_configs"][0]["smarthost"] == "smtp:1025"
    worker_env = SERVICES["worker"]["environment"]
    assert (worker_env["TASKPULSE_SMTP_HOST"], worker_env["TASKPULSE_SMTP_PORT"]) == (
        "smtp", "1025")


def test_grafana_provisioning_files_are_mounted_from_the_repo() -> None:
    mounts = [Path(v.split(":")[0]) for v in SERVICES["grafana"]["volumes"]]
    assert Path("./grafana/provisioning") in mounts
    assert (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").is_file()


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool (prometheus-alertmanager)")
def test_alertmanager_config_passes_amtool() -> None:
    result = subprocess.run(["amtool", "check-config", str(DEPLOY / "alertmanager" /
                                                          "alertmanager.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_inhibits_only_alerts_that_exist() -> None:
    alerts = {rule["alert"] for group in load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
              for rule in group["rules"]}
    config = load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            names = re.fullmatch(r'alertname=~?"([^"]+)"', matcher).group(1).split("|")
            assert set(names) <= alerts, matcher
