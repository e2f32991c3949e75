"""A task's page in a real browser: traceback, retry, workflow tree, live progress, enqueue."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.services import wait_until
from tests.ui.conftest import screenshot, sign_in
from tests.ui.workload import send
from tests.workflows.conftest import FINAL, Stack


def test_a_failed_tasks_page_shows_its_traceback(page: Page, stack: Stack) -> None:
    task_id = send(stack, message="will fail", fail=True)
    stored = stack.wait_task(task_id)
    assert stored["state"] == "FAILURE"
    assert "Traceback" in stored["traceback"]

    sign_in(page, stack.tokens["viewer"], f"/ui/tasks/{task_id}")

    shown = page.locator("[data-testid=traceback]")
    expect(shown).to_contain_text("Traceback (most recent call last)")
    # The worker's own last line, exactly as stored.
    expect(shown).to_contain_text(stored["traceback"].strip().splitlines()[-1])
    expect(page.locator(f"[data-task-id='{task_id}']").first).to_have_attribute(
        "data-state", "FAILURE")
    screenshot(page, "task-failed")


def test_retry_clicked_as_operator_creates_a_new_task_shown_as_its_child(
    page: Page, stack: Stack
) -> None:
    task_id = send(stack, message="retry me", fail=True)
    stack.wait_task(task_id)
    sign_in(page, stack.tokens["operator"], f"/ui/tasks/{task_id}")

    page.click("[data-action=retry]")

    child = page.locator("[data-testid=children] li[data-task-id]")
    expect(child).to_have_count(1, timeout=10_000)
    child_id = child.get_attribute("data-task-id")
    assert child_id != task_id
    assert stack.wait_task(child_id)["parent_id"] == task_id
    # The new task's page names its parent.
    child.locator("a").click()
    page.wait_for_url(f"**/ui/tasks/{child_id}")
    expect(page.locator(f"a[href='/ui/tasks/{task_id}']").first).to_be_visible()


def test_a_chord_shows_as_one_tree_with_its_roll_up(page: Page, stack: Stack) -> None:
    def step(message: str, **extra: object) -> dict[str, object]:
        return {"name": "demo.test_task", "kwargs": {"message": message, **extra}}

    body = {"chord": {"header": [step("h1"), step("h2", fail=True), step("h3")],
                      "body": step("callback")}}  # fmt: skip
    sent = stack.call("POST", "/workflows", "operator", json=body).json()
    header = [t["id"] for t in sent["tasks"][:3]]
    for task_id in header:
        stack.wait_task(task_id)

    def settled() -> bool:
        tree = stack.call("GET", f"/tasks/{sent['root_id']}/tree", "viewer").json()
        return tree["total"] == 3 and sum(n for s, n in tree["by_state"].items() if s in FINAL) == 3

    wait_until(settled, timeout=30, what="the chord's header finished")
    sign_in(page, stack.tokens["viewer"], f"/ui/tasks/{header[0]}")

    workflow = page.locator("[data-testid=workflow]")
    expect(workflow.locator("[data-rollup]")).to_have_attribute("data-rollup", "failed")
    expect(workflow.locator("[data-rollup]")).to_have_attribute("data-total", "3")
    # One tree: every header task under the chord's (virtual) root, the failed one marked so.
    trees = workflow.locator("ul.tree")
    expect(trees).to_have_count(1)
    root = trees.locator(":scope > li")
    assert root.get_attribute("data-task-id") == sent["root_id"]
    for task_id in header:
        expect(root.locator(f"li[data-task-id='{task_id}']")).to_have_count(1)
    expect(root.locator(f"li[data-task-id='{header[1]}']")).to_have_attribute("data-state",
                                                                              "FAILURE")
    screenshot(page, "workflow")

    # The chord's own id (no task of its own) opens as the same workflow.
    page.goto(f"/ui/tasks/{sent['root_id']}")
    expect(page.locator("[data-rollup]")).to_have_attribute("data-rollup", "failed")


def test_a_chords_body_is_drawn_in_the_same_tree_and_labelled(page: Page, stack: Stack) -> None:
    step = {"name": "demo.test_task", "kwargs": {"message": "cb"}}
    sent = stack.call("POST", "/workflows", "operator",
                      json={"chord": {"header": [step, step], "body": step}}).json()
    body = sent["tasks"][2]["id"]
    stack.wait_task(body)
    sign_in(page, stack.tokens["viewer"], f"/ui/tasks/{body}")

    workflow = page.locator("[data-testid=workflow]")
    expect(workflow.locator("[data-rollup]")).to_have_attribute("data-rollup", "succeeded")
    expect(workflow.locator("[data-rollup]")).to_have_attribute("data-total", "3")
    node = workflow.locator(f"li[data-task-id='{body}']")
    expect(node).to_have_attribute("data-role", "chord_body")
    expect(node).to_contain_text("chord body")


def test_progress_moves_live_on_a_running_tasks_page(page: Page, stack: Stack) -> None:
    sign_in(page, stack.tokens["viewer"], "/ui/tasks")
    task_id = send(stack, "demo.long_running_task", total=6, step_seconds=0.5)
    page.goto(f"/ui/tasks/{task_id}")

    bar = page.locator(".progress")
    seen: set[str] = set()

    def moved() -> bool:
        if bar.count():
            seen.add(bar.first.get_attribute("data-progress") or "")
        return len(seen - {""}) >= 3

    wait_until(moved, timeout=20, interval=0.1, what="three progress values without a reload")
    expect(page.locator(f"[data-task-id='{task_id}']").first).to_have_attribute(
        "data-state", "SUCCESS", timeout=20_000)
    expect(bar).to_have_attribute("data-progress", "100.0")


def test_an_operator_enqueues_from_a_form_built_from_the_catalog(page: Page, stack: Stack) -> None:
    message = f"from the form {uuid.uuid4().hex[:6]}"
    sign_in(page, stack.tokens["operator"], "/ui/enqueue?name=demo.test_task")

    form = page.locator("form.enqueue[data-task='demo.test_task']")
    form.locator("input[name=param-message]").fill(message)
    form.locator("input[name=param-sleep_seconds]").fill("0.1")
    form.locator("select[name=param-fail]").select_option("false")
    screenshot(page, "enqueue")
    form.locator("[data-action=enqueue]").click()

    page.wait_for_url("**/ui/tasks/*")
    task_id = page.url.rsplit("/", 1)[1]
    stored = stack.wait_task(task_id)
    assert stored["name"] == "demo.test_task"
    assert message in stored["kwargs"]
    expect(page.locator(f"[data-task-id='{task_id}']").first).to_have_attribute(
        "data-state", "SUCCESS", timeout=15_000)


def test_a_bad_value_in_the_enqueue_form_is_refused_with_the_servers_reason(
    page: Page, stack: Stack
) -> None:
    sign_in(page, stack.tokens["operator"], "/ui/enqueue?name=demo.test_task")
    form = page.locator("form.enqueue")
    form.locator("input[name=countdown]").fill("99999999")  # more than the API's year
    form.locator("[data-action=enqueue]").click()
    expect(form.locator(".form-error")).to_contain_text("countdown")
    assert "/ui/enqueue" in page.url


def test_an_admin_terminates_a_running_task_from_its_page(page: Page, stack: Stack) -> None:
    task_id = send(stack, "demo.long_running_task", total=40, step_seconds=0.5)
    stack.wait_task(task_id, frozenset({"STARTED"}))
    sign_in(page, stack.tokens["admin"], f"/ui/tasks/{task_id}")

    page.click("[data-action=terminate]")
    page.click("[data-action=terminate]")  # the second click confirms

    expect(page.locator(f"[data-task-id='{task_id}']").first).to_have_attribute(
        "data-state", "REVOKED", timeout=15_000)
    assert stack.wait_task(task_id)["state"] == "REVOKED"
    expect(page.locator("[data-action=delete]")).to_be_visible()  # finished now: deletable
