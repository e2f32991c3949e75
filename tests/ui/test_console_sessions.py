"""Console sign-in in a real browser: sessions bound to the token, CSRF, roles, secrecy."""

from __future__ import annotations

import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.ui.conftest import screenshot, sign_in
from tests.ui.workload import send
from tests.workflows.conftest import Stack


def new_token(stack: Stack, role: str, name: str) -> dict[str, str]:
    made = stack.call("POST", "/tokens", "admin", json={"name": name, "role": role})
    assert made.status_code == 201, made.text
    return made.json()


def in_page_post(page: Page, path: str, csrf: str | None = None) -> dict[str, object]:
    """A POST made by script in the signed-in page: the session cookie goes along."""
    return page.evaluate(
        """async ([path, csrf]) => {
            const headers = csrf ? {'X-CSRF-Token': csrf} : {};
            const r = await fetch(path, {method: 'POST', headers, credentials: 'same-origin'});
            return {status: r.status, body: await r.json()};
        }""",
        [path, csrf],
    )


def csrf_of(page: Page) -> str:
    return page.evaluate("fetch('/ui/session').then(r => r.json()).then(s => s.csrf)")


def test_a_bad_token_is_refused_on_the_sign_in_page_with_a_message(
    page: Page, context: BrowserContext
) -> None:
    page.goto("/ui/login")
    screenshot(page, "sign-in")
    page.fill("input[name=token]", "tp_not-a-real-token")
    with page.expect_response("**/ui/login") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 401
    expect(page.locator("#signin-message")).to_contain_text("not valid")
    assert context.cookies() == []


def test_the_session_cookie_is_httponly_strict_and_site_wide(
    page: Page, context: BrowserContext, stack: Stack
) -> None:
    sign_in(page, stack.tokens["viewer"])
    [cookie] = context.cookies()
    assert cookie["name"] == "taskpulse_session"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["secure"] is False  # plain http here; https requests get Secure
    assert page.evaluate("document.cookie") == ""


def test_the_token_never_reaches_a_url_local_storage_or_a_log(
    page: Page, stack: Stack
) -> None:
    token = stack.tokens["operator"]
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.on("framenavigated", lambda f: urls.append(f.url))

    sign_in(page, token)
    for path in ("/ui/tasks", "/ui/workers", "/ui/schedules", "/ui/enqueue"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    storage = page.evaluate(
        "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    history = page.evaluate("history.length")

    assert urls
    assert not [u for u in urls if token in u]
    assert token not in storage
    assert storage == "[[],[]]"
    assert history >= 5
    assert token not in (stack.workdir / "api.log").read_text()
    audit = stack.store().xrevrange("tp:events", count=200)
    assert audit
    assert not [e for e in audit if token.encode() in b"".join(e[1].values())]


def test_a_revoked_tokens_session_is_refused_and_lands_on_sign_in(
    page: Page, context: BrowserContext, stack: Stack
) -> None:
    made = new_token(stack, "viewer", "soon-revoked")
    sign_in(page, made["token"], "/ui/tasks")
    expect(page.locator("table.tasks")).to_be_visible()
    cookie = context.cookies()[0]["value"]

    assert stack.call("DELETE", f"/tokens/{made['id']}", "admin").status_code == 200

    page.reload()
    page.wait_for_url("**/ui/login?reason=revoked*")
    expect(page.locator("#signin-message")).to_contain_text("revoked")
    refused = requests.get(f"{stack.base_url}/api/v1/tasks", cookies={"taskpulse_session": cookie},
                           timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"]["details"]["reason"] == "revoked"


def test_an_expired_session_lands_on_sign_in_with_a_message(page: Page, stack: Stack) -> None:
    sign_in(page, stack.tokens["viewer"], "/ui/schedules")
    store = stack.store()
    sessions = list(store.scan_iter(match="tp:ui:session:*"))
    assert sessions
    store.delete(*sessions)  # what the idle TTL does

    page.goto("/ui/tasks")

    page.wait_for_url("**/ui/login?reason=expired&next=%2Fui%2Ftasks")
    expect(page.locator("#signin-message")).to_contain_text("expired")
    # Signing in again returns to the page that was asked for.
    page.fill("input[name=token]", stack.tokens["viewer"])
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/tasks")


def test_a_post_with_the_session_cookie_but_no_csrf_header_is_refused(
    page: Page, stack: Stack
) -> None:
    task_id = send(stack, message="csrf", fail=True)
    stack.wait_task(task_id)
    sign_in(page, stack.tokens["operator"])

    forged = in_page_post(page, f"/api/v1/tasks/{task_id}/retry")
    wrong = in_page_post(page, f"/api/v1/tasks/{task_id}/retry", "not-the-secret")
    allowed = in_page_post(page, f"/api/v1/tasks/{task_id}/retry", csrf_of(page))

    assert forged["status"] == 403
    assert forged["body"]["error"]["details"]["reason"] == "csrf"
    assert wrong["status"] == 403
    assert allowed["status"] == 202
    # Bearer-token clients are not concerned.
    assert stack.call("POST", f"/tasks/{task_id}/retry", "operator").status_code == 202


def test_a_viewer_sees_no_controls_it_may_not_use_and_a_forged_post_gets_403(
    page: Page, stack: Stack
) -> None:
    task_id = send(stack, message="viewer looks", fail=True)
    stack.wait_task(task_id)
    sign_in(page, stack.tokens["viewer"], f"/ui/tasks/{task_id}")
    expect(page.locator("[data-testid=traceback]")).to_be_visible()

    for action in ("retry", "revoke", "terminate", "delete", "annotate"):
        expect(page.locator(f"[data-action={action}]")).to_have_count(0)
    expect(page.locator("nav a[data-nav='/ui/enqueue']")).to_have_count(0)
    expect(page.locator("nav a[data-nav='/ui/tokens']")).to_have_count(0)
    page.goto("/ui/schedules")
    expect(page.locator("table.schedules")).to_be_visible()
    expect(page.locator("[data-action=pause], [data-action=run-now]")).to_have_count(0)

    # A well-formed POST, CSRF header and all, is still the server's to refuse.
    forged = in_page_post(page, f"/api/v1/tasks/{task_id}/retry", csrf_of(page))
    assert forged["status"] == 403
    assert forged["body"]["error"]["code"] == "forbidden"


def test_an_admin_sees_the_revoke_and_delete_controls(page: Page, stack: Stack) -> None:
    finished = send(stack, message="admin looks")
    stack.wait_task(finished)
    sign_in(page, stack.tokens["admin"], f"/ui/tasks/{finished}")
    expect(page.locator("[data-action=delete]")).to_be_visible()
    expect(page.locator("[data-action=annotate]")).to_be_visible()

    page.locator("[data-action=delete]").click()
    page.locator("[data-action=delete]").click()  # the second click confirms

    page.wait_for_url("**/ui/tasks")
    assert stack.call("GET", f"/tasks/{finished}", "viewer").status_code == 404


def test_a_one_time_sign_in_link_works_once(browser: Browser, stack: Stack) -> None:
    made = stack.call("POST", "/ui/login-links", "admin")
    assert made.status_code == 201, made.text
    link = made.json()["path"]
    first = browser.new_context(base_url=stack.base_url)
    second = browser.new_context(base_url=stack.base_url)
    try:
        page = first.new_page()
        page.goto(link)
        page.wait_for_url("**/ui/")
        expect(page.locator("#who [data-role]")).to_have_attribute("data-role", "admin")

        late = second.new_page()
        answer = late.goto(link)
        assert answer is not None
        assert answer.status == 401
        expect(late.locator("#signin-message")).to_contain_text("already been used")
        assert second.cookies() == []
    finally:
        first.close()
        second.close()


def test_a_link_preview_does_not_use_up_a_sign_in_link(stack: Stack) -> None:
    link = stack.base_url + stack.call("POST", "/ui/login-links", "admin").json()["path"]

    assert requests.head(link, timeout=10).status_code == 200
    used = requests.get(link, allow_redirects=False, timeout=10)

    assert used.status_code == 303
    assert "taskpulse_session" in used.cookies


def test_a_sign_in_link_is_only_made_for_admins(stack: Stack) -> None:
    assert stack.call("POST", "/ui/login-links", "operator").status_code == 403


def test_signing_out_ends_the_session(page: Page, context: BrowserContext, stack: Stack) -> None:
    sign_in(page, stack.tokens["viewer"])
    cookie = context.cookies()[0]["value"]

    page.click("#who button")

    page.wait_for_url("**/ui/login?reason=signed-out")
    gone = requests.get(f"{stack.base_url}/ui/session", cookies={"taskpulse_session": cookie},
                        timeout=10)
    assert gone.status_code == 401


def test_a_sign_in_posted_from_another_site_is_refused(stack: Stack) -> None:
    answer = requests.post(
        f"{stack.base_url}/ui/login", data={"token": stack.tokens["viewer"]},
        headers={"Origin": "http://elsewhere.example"}, allow_redirects=False, timeout=10,
    )
    assert answer.status_code == 403
    assert "Set-Cookie" not in answer.headers


def test_after_sign_in_only_console_paths_are_followed(stack: Stack) -> None:
    answer = requests.post(
        f"{stack.base_url}/ui/login",
        data={"token": stack.tokens["viewer"], "next": "//elsewhere.example/ui/"},
        allow_redirects=False, timeout=10,
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/ui/"
