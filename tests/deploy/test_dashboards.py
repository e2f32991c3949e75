"""Grafana dashboards: generated output is committed, variables match the celery-exporter mixin."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.deploy.deployfiles import DEPLOY, load_yaml
from tests.deploy.test_alert_rules import SHARED_GAUGES

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def dashboard(name: str) -> dict:
    return json.loads((GRAFANA / "dashboards" / name).read_text())


def variables(board: dict) -> dict[str, dict]:
    return {var["name"]: var for var in board["templating"]["list"]}


def exprs(board: dict) -> list[str]:
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def test_committed_dashboards_are_what_the_generator_produces() -> None:
    result = subprocess.run([sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    names = {path.name for path in DASHBOARDS}
    assert names == {"overview.json", "task.json", "workers-queues.json", "self-monitoring.json"}
    uids = [dashboard(name)["uid"] for name in names]
    assert len(set(uids)) == len(uids)


def test_task_dashboards_offer_the_mixins_job_queue_and_task_variables() -> None:
    assert {"datasource", "job", "queue_name"} <= variables(dashboard("overview.json")).keys()
    assert {"datasource", "job", "task"} <= variables(dashboard("task.json")).keys()
    assert {"job", "queue_name"} <= variables(dashboard("workers-queues.json")).keys()


def test_every_variable_used_in_a_query_is_defined() -> None:
    builtin = {"__rate_interval", "__range", "__interval"}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        defined = variables(board).keys() | builtin
        for expr in exprs(board):
            for used in re.findall(r"\$(\w+)", expr):
                assert used in defined, f"{path.name}: ${used} in {expr}"


def test_every_panel_has_a_query_and_panels_do_not_overlap() -> None:
    for path in DASHBOARDS:
        cells: set[tuple[int, int]] = set()
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            pos = panel["gridPos"]
            mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                    for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not cells & mine, f"{path.name}: {panel['title']} overlaps another panel"
            assert pos["x"] + pos["w"] <= 24
            cells |= mine


def test_queries_never_sum_gauges_that_both_collectors_export() -> None:
    for path in DASHBOARDS:
        for expr in exprs(json.loads(path.read_text())):
            for gauge in SHARED_GAUGES:
                assert not re.search(rf"\bsum\b[^()]*\(\s*{gauge}\b", expr), f"{path.name}: {expr}"


def test_grafana_provisioning_loads_the_dashboards_folder_that_compose_mounts() -> None:
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "taskpulse.yml")
    path = provider["providers"][0]["options"]["path"]
    grafana = load_yaml(DEPLOY / "compose.yaml")["services"]["grafana"]
    assert f"./grafana/dashboards:{path}:ro" in grafana["volumes"]


def test_datasource_uid_is_the_dashboards_default() -> None:
    source = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    uid = source["datasources"][0]["uid"]
    for path in DASHBOARDS:
        assert variables(json.loads(path.read_text()))["datasource"]["current"]["value"] == uid
