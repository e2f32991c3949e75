"""Failures page, search and exception filters, and bulk retry/revoke in a real browser."""

from __future__ import annotations

import random
import string

from playwright.sync_api import Page, expect

from tests.ui.conftest import screenshot, sign_in
from tests.ui.workload import send
from tests.workflows.conftest import Stack


def word() -> str:
    return "".join(random.choices(string.ascii_lowercase, k=10))


def fail(stack: Stack, message: str) -> str:
    task_id = send(stack, message=message, fail=True)
    stack.wait_task(task_id)
    return task_id


def test_the_failures_page_groups_failures_and_links_to_their_tasks(
    page: Page, stack: Stack
) -> None:
    tag = word()
    failed = [fail(stack, f"{tag} order {n}") for n in range(3)]
    fingerprint = stack.wait_task(failed[0])["fingerprint"]

    sign_in(page, stack.tokens["viewer"], "/ui/failures")
    row = page.locator(f"tr[data-fingerprint='{fingerprint}']")
    expect(row).to_have_attribute("data-count", "3")
    expect(row.locator("svg.sparkline")).to_have_count(1)
    screenshot(page, "failures")

    row.locator("a[data-tasks]").click()
    page.wait_for_url(f"**/ui/tasks?fingerprint={fingerprint}")
    for task_id in failed:
        page.wait_for_selector(f"tr[data-task-id='{task_id}']")
    expect(page.locator("table.tasks tbody tr[data-task-id]")).to_have_count(3)


def test_search_and_exception_filters_narrow_the_task_list(page: Page, stack: Stack) -> None:
    needle = f"needle{word()}"
    wanted = fail(stack, needle)
    other = fail(stack, word())
    sign_in(page, stack.tokens["viewer"], "/ui/tasks")
    page.wait_for_selector(f"tr[data-task-id='{other}']")

    page.fill("input[name=q]", needle)
    page.press("input[name=q]", "Enter")
    page.wait_for_url(f"**/ui/tasks?q={needle}")
    page.wait_for_selector(f"tr[data-task-id='{wanted}']")
    expect(page.locator("table.tasks tbody tr[data-task-id]")).to_have_count(1)

    page.fill("input[name=exception]", "NoSuchError")
    page.press("input[name=exception]", "Enter")
    expect(page.locator("tr.empty")).to_have_count(1)


def test_an_operator_retries_a_filtered_list_after_seeing_the_dry_run_count(
    page: Page, stack: Stack
) -> None:
    tag = word()
    failed = [fail(stack, f"{tag} bill {n}") for n in range(2)]
    fingerprint = stack.wait_task(failed[0])["fingerprint"]
    sign_in(page, stack.tokens["operator"], f"/ui/tasks?fingerprint={fingerprint}")
    page.wait_for_selector(f"tr[data-task-id='{failed[0]}']")
    expect(page.locator("[data-bulk=revoke]")).to_have_count(0)  # admins only

    page.click("[data-bulk=retry]")
    expect(page.locator("[data-dry-run]")).to_have_attribute("data-dry-run", "2")
    page.click("[data-confirm=retry]")
    expect(page.locator("[data-bulk-done]")).to_have_attribute("data-bulk-done", "2")

    children = [stack.call("GET", f"/tasks/{t}", "viewer").json()["children"] for t in failed]
    assert [len(c) for c in children] == [1, 1]
    for original, [child] in zip(failed, children, strict=True):
        assert stack.wait_task(child)["parent_id"] == original


def test_a_viewer_gets_no_bulk_controls_and_an_admin_gets_revoke(page: Page, stack: Stack) -> None:
    failed = fail(stack, word())
    fingerprint = stack.wait_task(failed)["fingerprint"]
    sign_in(page, stack.tokens["viewer"], f"/ui/tasks?fingerprint={fingerprint}")
    page.wait_for_selector(f"tr[data-task-id='{failed}']")
    expect(page.locator("[data-bulk]")).to_have_count(0)

    page.context.clear_cookies()
    sign_in(page, stack.tokens["admin"], f"/ui/tasks?fingerprint={fingerprint}")
    expect(page.locator("[data-bulk=revoke]")).to_have_count(1)
    expect(page.locator("[data-bulk=retry]")).to_have_count(1)
