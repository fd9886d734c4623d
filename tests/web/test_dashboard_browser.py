"""The dashboard in real headless Chromium, against the served app and a worker process of its
own: what a person sees and does. Every test waits on what the page shows (Playwright's
`expect` retries until it does), never on a sleep; each leaves a screenshot in the test
artifacts (browser_support.py says where) and fails on any console error."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from browser_support import Tab
from playwright.sync_api import Page, expect
from web_support import Served, Web

from underway import Status
from underway.web import create_api

Tabs = Callable[..., Tab]


def log_in(tab: Tab, key: str, path: str = "/") -> Page:
    before = len(tab.errors)
    page = tab.goto(path)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live")).to_have_text("live")
    # The page asked for without a session answered 401 with the login form, and the browser
    # logs that status itself: expected, and only until the login.
    tab.errors[before:] = [e for e in tab.errors[before:] if "status of 401" not in e]
    assert key not in page.url
    return page


def enqueue(web: Web, task: str, key: str | None = None, **body: object) -> str:
    answer = web.client(key or web.admin).post("/api/v1/jobs", json={"task": task, **body})
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def confirm(page: Page, button: str, within: str = "main") -> None:
    """Click an action's button and confirm it in the dialog that asks."""
    page.locator(within).get_by_role("button", name=button, exact=True).first.click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Confirm").click()


def test_log_in_and_watch_a_jobs_progress_bar_move_without_a_reload(
    live_web: Web, tabs: Tabs, tmp_path: Path
) -> None:
    tab = tabs(live_web.url)
    page = log_in(tab, live_web.admin)
    gate = tmp_path / "gate"
    job_id = enqueue(live_web, "web.gated", args={"gate": str(gate)})
    page.goto(f"/jobs/{job_id}")
    bar = page.locator(".progress-panel progress")
    expect(bar).to_have_attribute("value", "0.5")  # set by the stream, or rendered so
    expect(page.locator(".progress-panel .message")).to_have_text("halfway: waiting for the gate")
    page.evaluate("window.__same_document = true")  # gone if the page reloads
    gate.touch()
    expect(page.locator("h1 [data-field=status]")).to_have_text("completed")
    expect(page.locator(".progress-panel [data-field=percent]")).to_have_text("100%")
    assert bar.evaluate("el => el.value") == 1
    expect(page.locator("#outputs")).to_contain_text('"done"')  # the result, refreshed live
    assert page.evaluate("window.__same_document") is True


def test_the_overview_and_job_list_follow_new_jobs_live(live_web: Web, tabs: Tabs) -> None:
    # A tenant's counts: the schedule's jobs (the worker fires one at start) are nobody's.
    acme = live_web.tenants["acme"]
    page = log_in(tabs(live_web.url), acme)
    expect(page.locator("[data-count=completed]")).to_have_text("0")
    enqueue(live_web, "web.add", acme, args={"a": 1, "b": 2})
    expect(page.locator("[data-count=completed]")).to_have_text("1")
    page.get_by_role("link", name="Jobs", exact=True).click()
    job_id = enqueue(live_web, "web.add", acme, args={"a": 2, "b": 3})
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row.locator("[data-field=status]")).to_have_text("completed")


def test_cancel_a_running_job(live_web: Web, tabs: Tabs, tmp_path: Path) -> None:
    page = log_in(tabs(live_web.url), live_web.admin)
    job_id = enqueue(live_web, "web.gated", args={"gate": str(tmp_path / "never")})
    page.goto(f"/jobs/{job_id}")
    status = page.locator("h1 [data-field=status]")
    expect(status).to_have_text("running")
    confirm(page, "Cancel", "#job-actions")
    expect(page.locator(".flash.ok")).to_be_visible()
    expect(status).to_have_text("cancelled")
    assert live_web.app.get_job(job_id).status is Status.CANCELLED  # type: ignore[union-attr]


def test_retry_a_failed_job_from_the_dead_letters(
    live_web: Web, tabs: Tabs, tmp_path: Path
) -> None:
    job_id = enqueue(live_web, "web.flaky", args={"flag": str(tmp_path / "flag")})
    assert live_web.app.wait(job_id, timeout=30).status is Status.FAILED
    page = log_in(tabs(live_web.url), live_web.admin, "/dead-letters")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row).to_contain_text("the first run always fails")
    confirm(page, "Retry", f'tr[data-job-id="{job_id}"]')
    expect(page.locator(".flash.ok")).to_have_text("Queued to run again.")
    expect(row).to_have_count(0)  # it left the dead letters (and the list says so live)
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("h1 [data-field=status]")).to_have_text("completed")
    expect(page.locator("#outputs")).to_contain_text("worked the second time")


def test_pause_a_queue_and_resume_it(live_web: Web, tabs: Tabs) -> None:
    enqueue(live_web, "web.add", args={"a": 1})  # the math queue exists once it has a job
    page = log_in(tabs(live_web.url), live_web.admin, "/queues")
    row = page.locator('tr[data-queue="math"]')
    confirm(page, "Pause", 'tr[data-queue="math"]')
    expect(page.locator(".flash.ok")).to_contain_text("Queue math paused")
    expect(row.locator(".status")).to_have_text("paused")
    assert {q.name: q.paused for q in live_web.app.queues()}["math"] is True
    confirm(page, "Resume", 'tr[data-queue="math"]')
    expect(row.locator(".status")).to_have_count(0)
    assert {q.name: q.paused for q in live_web.app.queues()}["math"] is False


def test_trigger_a_schedule_and_see_its_job_run(live_web: Web, tabs: Tabs) -> None:
    page = log_in(tabs(live_web.url), live_web.admin, "/schedules")
    expect(page.locator('tr[data-schedule="web.hourly"]')).to_contain_text("every")
    confirm(page, "Run now", 'tr[data-schedule="web.hourly"]')
    expect(page.locator(".flash.ok")).to_contain_text("Schedule web.hourly triggered")
    page.goto("/jobs?task=web.hourly")
    expect(page.locator("tbody tr [data-field=status]").first).to_have_text("completed")


def test_a_tenant_key_sees_only_its_tenants_jobs(live_web: Web, tabs: Tabs) -> None:
    mine = enqueue(live_web, "web.add", args={"a": 1}, tenant="acme", title="acme's job")
    theirs = enqueue(live_web, "web.add", args={"a": 2}, tenant="globex", title="globex's job")
    tab = tabs(live_web.url)
    tab.allowed.append("status of 404")  # the other tenant's job answers 404, as none would
    page = log_in(tab, live_web.tenants["acme"], "/jobs")
    expect(page.locator(".who .chip")).to_have_text("tenant acme")
    expect(page.locator(f'tr[data-job-id="{mine}"]')).to_be_visible()
    expect(page.locator(f'tr[data-job-id="{theirs}"]')).to_have_count(0)
    expect(page.get_by_role("link", name="Queues")).to_have_count(0)
    page.goto(f"/jobs/{theirs}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.goto(f"/jobs?q={theirs}")
    expect(page.locator("#list")).to_contain_text(f"No job with id {theirs}")
    page.goto("/jobs?tenant=globex")
    expect(page.locator(f'tr[data-job-id="{theirs}"]')).to_have_count(0)


class _Attacker(BaseHTTPRequestHandler):
    """Another site: its page posts a form to the dashboard as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        page = (
            f'<html><body><form id="f" method="post" action="{self.target}">'
            '<input name="next" value="/"></form>'
            "<script>document.getElementById('f').submit()</script></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def attacker() -> Iterator[Callable[[str], str]]:
    """`attacker(target)`: the address of another site (localhost, not 127.0.0.1) whose page
    posts a form to `target`."""
    servers: list[ThreadingHTTPServer] = []

    def serve(target: str) -> str:
        handler = type("Handler", (_Attacker,), {"target": target})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://localhost:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_forged_cross_site_post_is_refused(
    live_web: Web, tabs: Tabs, tmp_path: Path, attacker: Callable[[str], str]
) -> None:
    tab = tabs(live_web.url)
    page = log_in(tab, live_web.admin)
    job_id = enqueue(live_web, "web.gated", args={"gate": str(tmp_path / "never")})
    expect(page.locator("#running")).to_contain_text("Gated job")
    evil = attacker(f"{live_web.url}/jobs/{job_id}/cancel")
    with page.expect_response(f"{live_web.url}/jobs/{job_id}/cancel") as posted:
        page.goto(evil)
    assert posted.value.status == 403
    expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    expect(page.locator(".flash.error")).to_contain_text("another site")
    job = live_web.app.get_job(job_id)
    assert job is not None and job.status is Status.RUNNING and not job.cancel_requested
    tab.allowed.append("status of 403")  # the browser logs the refused post itself


def test_the_stream_reconnects_after_the_server_restarts(
    live_web: Web, tabs: Tabs, tmp_path: Path
) -> None:
    served_port = int(live_web.url.rsplit(":", 1)[1])
    tab = tabs(live_web.url)
    # While the server is down the browser logs each reconnect it tries.
    tab.allowed += [r"net::ERR_", r"Failed to load resource", r"EventSource"]
    page = log_in(tab, live_web.admin)
    gate = tmp_path / "gate"
    job_id = enqueue(live_web, "web.gated", args={"gate": str(gate)})
    page.goto(f"/jobs/{job_id}")
    expect(page.locator(".progress-panel progress")).to_have_attribute("value", "0.5")
    page.evaluate("window.__same_document = true")
    assert live_web.served is not None
    live_web.served.stop()
    expect(page.locator("#live")).to_have_attribute("data-state", "reconnecting")
    again = Served(create_api(live_web.app), port=served_port)
    try:
        expect(page.locator("#live")).to_have_text("live")
        gate.touch()
        expect(page.locator("h1 [data-field=status]")).to_have_text("completed")
        assert page.evaluate("window.__same_document") is True
    finally:
        again.stop()


def test_every_page_at_phone_width_in_dark_mode_without_errors(live_web: Web, tabs: Tabs) -> None:
    from underway.web.dashboard import PAGES

    job_id = enqueue(live_web, "web.boom", args={"reason": "a failure to look at"})
    live_web.app.wait(job_id, timeout=30)
    tab = tabs(live_web.url, viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = log_in(tab, live_web.admin)
    for path in [*PAGES, f"/jobs/{job_id}"]:
        page.goto(path)
        expect(page.locator("#live")).to_have_text("live")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        tab.shoot(path)


def test_the_dashboard_works_from_the_keyboard(live_web: Web, tabs: Tabs, tmp_path: Path) -> None:
    job_id = enqueue(live_web, "web.gated", args={"gate": str(tmp_path / "never")})
    page = log_in(tabs(live_web.url), live_web.admin)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(3):  # the brand, Overview, Jobs
        page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Jobs", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_web.url}/jobs")
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("h1 [data-field=status]")).to_have_text("running")
    page.locator("#job-actions").get_by_role("button", name="Cancel").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Confirm")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("h1 [data-field=status]")).to_have_text("cancelled")


def test_the_overview_draws_the_last_hour_from_the_history_endpoint(
    make_web: Callable[..., Web], tabs: Tabs
) -> None:
    web = make_web()
    admin = web.as_admin()
    for a in range(3):
        admin.post("/api/v1/jobs", json={"task": "web.add", "args": {"a": a}})
    admin.post("/api/v1/jobs", json={"task": "web.boom", "args": {}})
    # On a thread: this test's own thread runs the browser's event loop.
    worker = threading.Thread(target=web.app.run_worker,
                              kwargs={"burst": True, "handle_signals": False})  # fmt: skip
    worker.start()
    worker.join()
    history = admin.get(HISTORY, params={"minutes": 60}).json()["minutes"]
    completed = sum(m["completed"] for m in history)
    failed = sum(m["failed"] for m in history)
    page = log_in(tabs(web.url), web.admin)
    chart = page.locator("#history svg")
    expect(chart).to_have_attribute(
        "aria-label", f"{completed} completed and {failed} failed in the last hour"
    )
    assert chart.locator("g").count() == len(history)
    expect(page.locator("#failure-rate")).to_contain_text("failure rate")


HISTORY = "/api/v1/stats/history"
