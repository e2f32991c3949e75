"""Operating the fleet from the console: worker controls, pause/resume, peek and purge, by role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from playwright.sync_api import Locator, Page, expect

from tests.services import celery_worker, running, wait_until
from tests.ui.conftest import screenshot, sign_in
from tests.workflows.conftest import Stack


@pytest.fixture
def celery(stack: Stack) -> Iterator[Celery]:
    app = Celery(broker=stack.env["TASKPULSE_BROKER_URL"], set_as_current=False)
    yield app
    app.close()


def worker_name(stack: Stack) -> str:
    [worker] = [w["hostname"] for w in stack.call("GET", "/workers", "viewer").json()
                if w["alive"] and w["hostname"].startswith("w1@")]
    return worker


def processes(celery: Celery, hostname: str) -> int:
    stats = celery.control.inspect(destination=[hostname], timeout=2).stats() or {}
    return len(stats[hostname]["pool"]["processes"])


def send(stack: Stack, queue: str, message: str) -> str:
    r = stack.call("POST", "/tasks", "operator", json={
        "name": "demo.test_task", "queue": queue, "kwargs": {"message": message}})
    assert r.status_code == 202, r.text
    return r.json()["id"]


@pytest.mark.parametrize(("role", "worker_controls", "queue_actions"), [
    ("viewer", 0, ["peek"]),
    ("operator", 0, ["peek", "pause"]),
    ("admin", 1, ["peek", "pause", "purge"]),
])
def test_a_role_sees_only_the_controls_it_may_use(
    page: Page, stack: Stack, role: str, worker_controls: int, queue_actions: list[str]
) -> None:
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    sign_in(page, stack.tokens[role], "/ui/workers")
    page.wait_for_selector("tr[data-worker]")
    expect(page.locator("[data-testid=worker-controls]")).to_have_count(worker_controls)
    page.goto("/ui/queues")
    row = page.locator("tr[data-queue='default']")
    expect(row).to_be_visible()
    shown = row.locator("[data-action]").evaluate_all("els => els.map(e => e.dataset.action)")
    assert shown == queue_actions
    assert problems == []


def test_an_admin_grows_and_shrinks_a_pool_from_the_workers_page(
    page: Page, stack: Stack, celery: Celery
) -> None:
    worker = worker_name(stack)
    before = processes(celery, worker)
    sign_in(page, stack.tokens["admin"], "/ui/workers")
    controls = page.locator("[data-testid=worker-controls]")
    expect(controls.locator(f"select[name=worker] option[value='{worker}']")).to_have_count(1)
    controls.locator("select[name=worker]").select_option(worker)

    controls.locator("[data-action=grow]").click()

    reply = page.locator(f"[data-testid=control-result] tr[data-reply-worker='{worker}']")
    expect(reply).to_have_attribute("data-result", "ok")
    expect(reply).to_contain_text("pool will grow")
    wait_until(lambda: processes(celery, worker) == before + 1, timeout=10, what="a grown pool")
    screenshot(page, "workers-control")
    controls.locator("[data-action=shrink]").click()
    expect(reply).to_contain_text("pool will shrink")
    wait_until(lambda: processes(celery, worker) == before, timeout=10, what="a shrunk pool")


def test_pausing_peeking_purging_and_resuming_a_queue_in_the_console(
    page: Page, stack: Stack
) -> None:
    sign_in(page, stack.tokens["admin"], "/ui/queues")
    row = page.locator("tr[data-queue='email']")
    try:
        paused_purged_and_resumed(page, stack, row)
    finally:  # other tests of this stack use the queue
        stack.call("POST", "/queues/email/resume", "operator")


def paused_purged_and_resumed(page: Page, stack: Stack, row: Locator) -> None:
    row.locator("[data-action=pause]").click()
    expect(row).to_have_attribute("data-paused", "true")
    sent = [send(stack, "email", f"ui held {i}") for i in range(2)]

    row.locator("[data-action=peek]").click()
    peek = page.locator("[data-testid=peek]")
    for task_id in sent:
        expect(peek.locator(f"tr[data-message-id='{task_id}']")).to_be_visible()
    screenshot(page, "queues-peek")

    purge = row.locator("[data-action=purge]")
    purge.click()
    expect(purge).to_have_text("Delete 2 waiting? Click again")
    purge.click()
    expect(page.locator(".toast", has_text="email: 2 messages purged")).to_be_visible()
    assert stack.call("GET", "/queues/email/messages", "viewer").json()["length"] == 0

    row.locator("[data-action=resume]").click()
    expect(row).to_have_attribute("data-paused", "false")
    assert [stack.call("GET", f"/tasks/{t}", "viewer").json()["state"] for t in sent] == [
        "PENDING", "PENDING"]


def test_shutting_a_worker_down_asks_first(page: Page, stack: Stack) -> None:
    spare = "spare@ui"
    with running(celery_worker(stack.env, stack.workdir / "spare.log", concurrency=1,
                               hostname=spare, queues="email")) as proc:
        sign_in(page, stack.tokens["admin"], "/ui/workers")
        controls = page.locator("[data-testid=worker-controls]")
        expect(controls.locator(f"select[name=worker] option[value='{spare}']")).to_have_count(
            1, timeout=20_000)
        controls.locator("select[name=worker]").select_option(spare)
        shutdown = controls.locator("[data-action=shutdown]")

        shutdown.click()
        expect(shutdown).to_have_text("Click again: shut down")
        assert proc.process.poll() is None  # one click only arms it
        shutdown.click()

        expect(page.locator(f"tr[data-reply-worker='{spare}']")).to_contain_text(
            "shutdown requested")
        wait_until(lambda: proc.process.poll() is not None, timeout=30, what="the spare to exit")
