"""The tasks list in a real browser: true states, filters, paging, live rows."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.ui.conftest import screenshot, sign_in
from tests.ui.workload import celery_app, finished_workload, send
from tests.workflows.conftest import Stack


def shown_states(page: Page) -> dict[str, str]:
    rows = page.locator("table.tasks tbody tr[data-task-id]")
    return {
        rows.nth(i).get_attribute("data-task-id"): rows.nth(i).get_attribute("data-state")
        for i in range(rows.count())
    }


def test_a_viewer_sees_the_tasks_of_a_known_workload_in_their_true_states(
    page: Page, stack: Stack
) -> None:
    workload = finished_workload(stack, ok=3, failed=2)
    assert sorted(workload.values()) == ["FAILURE", "FAILURE", "SUCCESS", "SUCCESS", "SUCCESS"]

    sign_in(page, stack.tokens["viewer"], "/ui/tasks")
    for task_id in workload:
        page.wait_for_selector(f"tr[data-task-id='{task_id}']")

    shown = shown_states(page)
    assert {task_id: shown[task_id] for task_id in workload} == workload
    screenshot(page, "tasks")


def test_filtering_by_state_and_name_shows_exactly_the_matching_rows(
    page: Page, stack: Stack
) -> None:
    workload = finished_workload(stack, ok=2, failed=2)
    other = send(stack, "demo.long_running_task", total=1, step_seconds=0)
    stack.wait_task(other)
    sign_in(page, stack.tokens["viewer"], "/ui/tasks")
    page.wait_for_selector(f"tr[data-task-id='{other}']")

    page.select_option("select[name=state]", "FAILURE")
    page.wait_for_url("**/ui/tasks?state=FAILURE")
    expect(page.locator(f"tr[data-task-id='{other}']")).to_have_count(0)
    failed = {i for i, s in workload.items() if s == "FAILURE"}
    for task_id in failed:
        page.wait_for_selector(f"tr[data-task-id='{task_id}']")
    assert set(shown_states(page).values()) == {"FAILURE"}

    page.fill("input[name=name]", "demo.long_running_task")
    page.press("input[name=name]", "Enter")
    page.wait_for_url("**/ui/tasks?state=FAILURE&name=demo.long_running_task")
    expect(page.locator("tr.empty")).to_have_count(1)  # no such task failed

    page.select_option("select[name=state]", "")
    page.wait_for_selector(f"tr[data-task-id='{other}']")
    names = page.locator("table.tasks tbody td.name").all_inner_texts()
    assert names
    assert set(names) == {"demo.long_running_task"}

    # The filters live in the URL: Back restores the previous list.
    page.go_back()
    expect(page.locator("tr.empty")).to_have_count(1)
    assert page.locator("select[name=state]").input_value() == "FAILURE"


def test_a_task_sent_through_celery_appears_in_an_open_list_within_two_seconds(
    page: Page, stack: Stack
) -> None:
    sign_in(page, stack.tokens["viewer"], "/ui/tasks")
    expect(page.locator(".live-status")).to_have_attribute("data-status", "live")
    task_id = str(uuid.uuid4())

    celery_app(stack).send_task("demo.test_task", kwargs={"message": "live"}, task_id=task_id,
                                queue="default")

    # The contract: visible without a reload within 2 s of being sent.
    page.wait_for_selector(f"tr[data-task-id='{task_id}']", timeout=2000)
    expect(page.locator(f"tr[data-task-id='{task_id}']")).to_have_attribute(
        "data-state", "SUCCESS", timeout=10_000
    )


def test_paused_live_view_inserts_nothing_until_resumed(page: Page, stack: Stack) -> None:
    sign_in(page, stack.tokens["viewer"], "/ui/tasks")
    expect(page.locator(".live-status")).to_have_attribute("data-status", "live")
    page.click("[data-action=pause]")

    task_id = send(stack, message="while paused")
    stack.wait_task(task_id)
    page.wait_for_timeout(600)  # more than one flush interval
    expect(page.locator(f"tr[data-task-id='{task_id}']")).to_have_count(0)

    page.click("[data-action=pause]")  # resume: the list is read again
    page.wait_for_selector(f"tr[data-task-id='{task_id}'][data-state=SUCCESS]")


def test_older_pages_follow_the_cursor_and_back_returns(page: Page, stack: Stack) -> None:
    ids = [send(stack, message=f"page-{i}") for i in range(4)]
    for task_id in ids:
        stack.wait_task(task_id)
    sign_in(page, stack.tokens["viewer"], "/ui/tasks?limit=2")
    page.wait_for_selector("[data-page=older]")
    first = list(shown_states(page))
    assert len(first) == 2

    page.click("[data-page=older]")
    page.wait_for_url("**cursor=*")
    page.wait_for_function(
        "first => !document.querySelector(`tr[data-task-id='${first}']`)", arg=first[0]
    )
    second = list(shown_states(page))
    assert not set(first) & set(second)

    page.go_back()
    page.wait_for_selector(f"tr[data-task-id='{first[0]}']")
