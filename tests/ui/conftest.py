"""The web console in a real browser against a real stack.

One stack for the package (a private redis-server, the collector, a Celery worker and the API as
subprocesses, a token per role) and one headless Chromium — Debian's ``chromium`` package driven
by Playwright (its own browser download is not available here). Every test gets a fresh browser
context, so cookies never leak between tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.services import REPO_ROOT
from tests.workflows import conftest as workflows
from tests.workflows.conftest import Stack

CHROMIUM = os.environ.get("TASKPULSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = REPO_ROOT / "docs" / "img"

# The workflow tests' real stack, started once more for this package (it is package-scoped).
stack = workflows.stack


# Package scope: Playwright's sync API runs an event loop in this thread until it stops, and the
# tests of other packages call asyncio.run().
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser, stack: Stack) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=stack.base_url, viewport={"width": 1360, "height": 900})
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, token: str, next_path: str = "/ui/") -> None:
    """Through the sign-in form, as a person would."""
    page.goto(f"/ui/login?next={next_path}")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")
    page.wait_for_selector("#who .role")


def screenshot(page: Page, name: str) -> None:
    """Kept in docs/img when TASKPULSE_UI_SCREENSHOTS=1 (the README shows them)."""
    if os.environ.get("TASKPULSE_UI_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"console-{name}.png"), full_page=False)
