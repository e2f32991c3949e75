"""Every console page in a real browser: renders without script errors; schedules obey clicks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.services import ServiceProcess, wait_until
from tests.ui.conftest import screenshot, sign_in
from tests.ui.workload import finished_workload
from tests.workflows.conftest import Stack

PAGES = {
    "overview": ("/ui/", ".cards"),
    "workers": ("/ui/workers", "tr[data-worker]"),
    "queues": ("/ui/queues", "tr[data-queue]"),
    "schedules": ("/ui/schedules", "table.schedules"),
    "tokens": ("/ui/tokens", "tr[data-token-id]"),
    "enqueue": ("/ui/enqueue", ".task-picker"),
}


@pytest.fixture
def beat(stack: Stack) -> Iterator[ServiceProcess]:
    proc = stack.beat(uuid.uuid4().hex[:6])
    proc.wait_for_log("beat: Acquired lock", timeout=30)
    yield proc
    proc.stop()


def test_every_page_renders_for_an_admin_without_script_errors(page: Page, stack: Stack) -> None:
    finished_workload(stack, ok=2, failed=1)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, stack.tokens["admin"])

    for name, (path, ready) in PAGES.items():
        page.goto(path)
        page.wait_for_selector(ready)
        screenshot(page, name)

    assert problems == []


def test_pausing_a_schedule_in_the_console_stops_it_firing(
    page: Page, stack: Stack, beat: ServiceProcess
) -> None:
    name, message = f"ui-every-2s-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    created = stack.call("POST", "/schedules", "admin", json={
        "name": name, "task": "demo.test_task", "interval": {"every": 2.0},
        "kwargs": {"message": message},
    })  # fmt: skip
    assert created.status_code == 201, created.text
    wait_until(lambda: len(stack.demo_runs(message)) >= 1, timeout=12,
               what="the schedule's first run")  # fmt: skip
    sign_in(page, stack.tokens["admin"], "/ui/schedules")
    row = page.locator(f"tr[data-schedule='{name}']")

    row.locator("[data-action=pause]").click()

    expect(row).to_have_attribute("data-enabled", "false")
    assert stack.call("GET", f"/schedules/{name}", "viewer").json()["enabled"] is False
    time.sleep(1.5)  # a beat tick that began before the pause may still send once
    runs = len(stack.demo_runs(message))
    time.sleep(6)  # three intervals
    assert len(stack.demo_runs(message)) == runs

    row.locator("[data-action=resume]").click()
    expect(row).to_have_attribute("data-enabled", "true")
    wait_until(lambda: len(stack.demo_runs(message)) > runs, timeout=12,
               what="a run after resuming")  # fmt: skip
    stack.call("DELETE", f"/schedules/{name}", "admin")


def test_a_schedules_interval_is_edited_in_place(page: Page, stack: Stack) -> None:
    name = f"ui-edit-{uuid.uuid4().hex[:6]}"
    stack.call("POST", "/schedules", "admin", json={
        "name": name, "task": "demo.test_task", "interval": {"every": 3600.0},
    })  # fmt: skip
    sign_in(page, stack.tokens["admin"], "/ui/schedules")
    row = page.locator(f"tr[data-schedule='{name}']")

    row.locator("[data-action=edit]").click()
    editor = page.locator("tr.editor form")
    editor.locator("select[name=kind]").select_option("crontab")
    editor.locator("input[name=minute]").fill("*/5")
    editor.locator("[data-action=save]").click()

    expect(row.locator("td.mono")).to_contain_text("cron */5 * * * *")
    assert stack.call("GET", f"/schedules/{name}", "viewer").json()["crontab"]["minute"] == "*/5"
    stack.call("DELETE", f"/schedules/{name}", "admin")


def test_run_now_sends_the_schedules_task_once(page: Page, stack: Stack) -> None:
    name, message = f"ui-run-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    stack.call("POST", "/schedules", "admin", json={
        "name": name, "task": "demo.test_task", "interval": {"every": 3600.0},
        "kwargs": {"message": message},
    })  # fmt: skip
    sign_in(page, stack.tokens["operator"], "/ui/schedules")

    page.locator(f"tr[data-schedule='{name}'] [data-action=run-now]").click()

    wait_until(lambda: len(stack.demo_runs(message)) == 1, timeout=15, what="the run now")
    expect(page.locator(f"tr[data-schedule='{name}'] [data-action=pause]")).to_have_count(0)
    stack.call("DELETE", f"/schedules/{name}", "admin")


def test_a_token_created_in_the_console_is_shown_once_and_signs_in(
    page: Page, stack: Stack
) -> None:
    sign_in(page, stack.tokens["admin"], "/ui/tokens")
    page.fill("input[name=name]", f"ui-made-{uuid.uuid4().hex[:4]}")
    page.select_option("select[name=role]", "viewer")
    page.click("[data-action=create-token]")

    secret = page.locator("[data-testid=new-secret] input").input_value()
    assert secret.startswith("tp_")
    page.goto("/ui/tokens")  # gone once left
    expect(page.locator("[data-testid=new-secret] input")).to_have_count(0)
    signed = requests.get(f"{stack.base_url}/api/v1/tasks", timeout=10,
                          headers={"Authorization": f"Bearer {secret}"})
    assert signed.status_code == 200
