"""systemd units, supervisor programs and Kubernetes manifests start real entry points."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deployfiles import (
    DEPLOY,
    entry_point_problem,
    env_vars_read_by_code,
    load_yaml,
    load_yaml_all,
    split,
)

SYSTEMD = DEPLOY / "systemd"
K8S = DEPLOY / "k8s"
UNITS = sorted(SYSTEMD.glob("*.service"))
ROLES = ("worker", "beat", "collector", "api")


def read_ini(path: Path) -> configparser.RawConfigParser:
    # systemd allows repeated keys (EnvironmentFile twice): keep the last, as a check is enough.
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def k8s_docs() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in load_yaml_all(path)]


def containers(kind: str = "Deployment") -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc["spec"]["template"]["spec"]["containers"][0]
            for doc in k8s_docs() if doc["kind"] == kind}


# --- systemd -----------------------------------------------------------------------------------


def test_there_is_a_unit_for_every_process() -> None:
    names = {unit.stem.rstrip("@") for unit in UNITS}
    assert names == {f"taskpulse-{role}" for role in ROLES}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_starts_an_entry_point_and_restarts(unit: Path) -> None:
    service = read_ini(unit)["Service"]
    assert entry_point_problem(split(service["ExecStart"])) is None
    assert service["Restart"] == "always"
    assert service["EnvironmentFile"].lstrip("-").startswith("/etc/taskpulse/")


def test_target_wants_a_unit_that_exists_for_each_name() -> None:
    wants = read_ini(SYSTEMD / "taskpulse.target")["Unit"]["Wants"].split()
    for want in wants:
        template = re.sub(r"@[^.]+\.service$", "@.service", want)
        assert (SYSTEMD / template).is_file(), want


def test_example_env_file_sets_only_variables_the_code_reads() -> None:
    names = {line.split("=", 1)[0] for line in (SYSTEMD / "taskpulse.env.example").read_text()
             .splitlines() if line and not line.startswith("#")}
    assert names - env_vars_read_by_code() == set()


def test_systemd_accepts_the_unit_syntax() -> None:
    # --man=no and a missing binary are fine; syntax errors show as "Unknown key" or
    # "Invalid section" lines.
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, UNITS)],
                            capture_output=True, text=True, timeout=60)
    assert not re.search(r"Unknown (key|section)|Invalid section", result.stderr), result.stderr


# --- supervisor --------------------------------------------------------------------------------


def supervisor_programs() -> dict[str, dict[str, str]]:
    parser = read_ini(DEPLOY / "supervisor" / "taskpulse.conf")
    return {s.split(":", 1)[1]: dict(parser[s]) for s in parser.sections()
            if s.startswith("program:")}


def test_supervisor_runs_every_process_and_the_group_lists_them() -> None:
    programs = supervisor_programs()
    assert set(programs) == {f"taskpulse-{role}" for role in ROLES}
    group = read_ini(DEPLOY / "supervisor" / "taskpulse.conf")["group:taskpulse"]["programs"]
    assert set(group.split(",")) == set(programs)


@pytest.mark.parametrize("name", [f"taskpulse-{role}" for role in ROLES])
def test_supervisor_restarts_every_program_whatever_its_exit_code(name: str) -> None:
    # "true": whatever the exit code. supervisor's default, "unexpected", trusts `exitcodes`
    # (0), and a worker that shuts itself down cleanly would stay down.
    assert supervisor_programs()[name]["autorestart"] == "true"


@pytest.mark.parametrize("name", [f"taskpulse-{role}" for role in ROLES])
def test_supervisor_program_starts_an_entry_point_with_known_variables(name: str) -> None:
    program = supervisor_programs()[name]
    # supervisor expands %(process_num)d and %% before running the command.
    command = program["command"].replace("%(process_num)d", "0").replace("%%", "%")
    assert entry_point_problem(split(command)) is None
    names = set(re.findall(r"(TASKPULSE_\w+)=", program.get("environment", "")))
    assert names - env_vars_read_by_code() == set()


# --- Kubernetes --------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"}


def test_every_process_has_a_deployment_running_a_real_entry_point() -> None:
    deployments = containers()
    assert set(deployments) == {f"taskpulse-{role}" for role in ROLES}
    for name, container in deployments.items():
        assert entry_point_problem(container["command"]) is None, name


def test_config_and_secret_hold_only_variables_the_code_reads() -> None:
    names: set[str] = set()
    for doc in k8s_docs():
        if doc["kind"] in ("ConfigMap", "Secret"):
            names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
    for container in containers().values():
        names |= {env["name"] for env in container.get("env", [])}
    assert names - env_vars_read_by_code() == set()


def test_deployments_reference_the_configmap_and_secret_that_exist() -> None:
    defined = {(doc["kind"], doc["metadata"]["name"]) for doc in k8s_docs()}
    for name, container in containers().items():
        for source in container["envFrom"]:
            ref = source.get("configMapRef") or source.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            assert (kind, ref["name"]) in defined, name


def test_services_select_their_pods_and_target_named_ports() -> None:
    pods = {doc["metadata"]["name"]: doc["spec"]["template"] for doc in k8s_docs()
            if doc["kind"] == "Deployment"}
    for svc in (doc for doc in k8s_docs() if doc["kind"] == "Service"):
        template = pods[svc["metadata"]["name"]]
        assert svc["spec"]["selector"].items() <= template["metadata"]["labels"].items()
        ports = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports


def test_service_monitors_scrape_metrics_from_the_services_the_rules_name() -> None:
    services = {doc["metadata"]["name"]: doc for doc in k8s_docs() if doc["kind"] == "Service"}
    monitors = [doc for doc in k8s_docs() if doc["kind"] == "ServiceMonitor"]
    # The rules match job="taskpulse-collector"; the operator's job label is the Service name.
    assert {m["metadata"]["name"] for m in monitors} == {"taskpulse-collector", "taskpulse-api"}
    for monitor in monitors:
        svc = services[monitor["metadata"]["name"]]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"][
            "labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_container_ports_match_the_configured_ports() -> None:
    config = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")["data"]
    deployments = containers()
    assert deployments["taskpulse-collector"]["ports"][0]["containerPort"] == int(
        config["TASKPULSE_METRICS_PORT"])
    assert deployments["taskpulse-api"]["ports"][0]["containerPort"] == int(
        config["TASKPULSE_API_PORT"])


def test_every_process_runs_in_a_deployment_that_restarts_its_container() -> None:
    workloads = {doc["metadata"]["name"]: doc for doc in k8s_docs()
                 if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Pod", "Job")}
    assert {f"taskpulse-{role}" for role in ROLES} <= workloads.keys()
    for role in ROLES:
        workload = workloads[f"taskpulse-{role}"]
        # A Deployment's pods always restart their containers (Always is the only policy it
        # accepts); a bare Pod or a Job would leave a crashed worker down.
        assert workload["kind"] == "Deployment", role
        assert workload["spec"]["template"]["spec"].get("restartPolicy", "Always") == "Always"


def test_exactly_one_beat_even_during_a_rollout() -> None:
    beat = next(d for d in k8s_docs() if d["metadata"]["name"] == "taskpulse-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_prometheusrule_is_generated_from_the_alerts_file() -> None:
    result = subprocess.run([sys.executable, str(K8S / "build_prometheusrule.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rule = load_yaml(K8S / "prometheusrule.yaml")
    assert rule["spec"]["groups"] == load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
