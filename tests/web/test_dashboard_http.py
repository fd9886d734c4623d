"""The dashboard over plain HTTP: what its security rests on (the session cookie, the CSRF
token, the Origin check, the Content-Security-Policy), the tenant isolation of its pages, and
that every page renders. The browser tests (test_dashboard_browser.py) show it working in
Chromium; these pin each rule down one by one, on both stores."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from web_support import Web

from underway import Status
from underway.web.dashboard import JOB_PAGE, PAGES


def logged_in(web: Web, key: str) -> httpx.Client:
    """A client holding a session, as a browser does after logging in with `key`."""
    client = web.client(follow_redirects=False)
    answer = client.post("/login", data={"key": key, "next": "/jobs"})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: httpx.Client, path: str = "/jobs") -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(path).text)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def test_every_page_renders_for_an_admin_with_a_job_in_it(web: Web) -> None:
    job = web.app.get_task("web.boom").enqueue(reason="the disk is full")
    client = logged_in(web, web.admin)
    for path in [*PAGES, JOB_PAGE.format(id=job.id)]:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html")
    assert "the disk is full" in client.get(JOB_PAGE.format(id=job.id)).text


def test_a_page_without_a_session_answers_401_with_the_login_form(web: Web) -> None:
    web.app.get_task("web.boom").enqueue(reason="a secret reason")
    answer = web.client(follow_redirects=False).get("/jobs?status=failed")
    assert answer.status_code == 401
    assert 'action="/login"' in answer.text
    assert 'name="next" value="/jobs?status=failed"' in answer.text
    assert "a secret reason" not in answer.text and "web.boom" not in answer.text


def test_logging_in_keeps_the_key_in_an_http_only_same_site_cookie_never_in_the_url(
    web: Web,
) -> None:
    client = web.client(follow_redirects=False)
    answer = client.post("/login", data={"key": web.admin, "next": "/queues"})
    assert answer.status_code == 303 and answer.headers["location"] == "/queues"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("underway_session=")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    assert web.admin not in answer.headers["location"]
    assert client.get("/queues").status_code == 200


def test_a_wrong_key_is_refused_with_no_session(web: Web) -> None:
    answer = web.client(follow_redirects=False).post("/login", data={"key": "uw_nope"})
    assert answer.status_code == 401
    assert "unknown or revoked" in answer.text
    assert "set-cookie" not in answer.headers


def test_a_revoked_key_ends_its_sessions_at_once(web: Web) -> None:
    key, secret = web.app.create_key(name="short-lived")
    client = logged_in(web, secret)
    assert client.get("/jobs").status_code == 200
    web.app.revoke_key(key.id)
    assert client.get("/jobs").status_code == 401  # the login form again


def test_every_response_forbids_inline_script(web: Web) -> None:
    client = logged_in(web, web.admin)
    for path in ["/", "/jobs", "/login", "/static/dashboard.js", "/api/v1/stats", "/nowhere"]:
        policy = client.get(path).headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
        assert "frame-ancestors 'none'" in policy
    # FastAPI's interactive docs are its own page, with an inline script of its own.
    assert "unsafe-inline" in client.get("/docs").headers["content-security-policy"]


def test_no_page_has_inline_script_or_event_handler_attributes(web: Web) -> None:
    job = web.app.get_task("web.add").enqueue(a=1)
    client = logged_in(web, web.admin)
    pages = [*PAGES, JOB_PAGE.format(id=job.id)]
    for html in [client.get(p).text for p in pages] + [web.client().get("/login").text]:
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)
        assert not re.search(r"\sstyle\s*=", html, re.IGNORECASE)


def test_an_action_without_the_pages_csrf_token_is_refused(web: Web) -> None:
    job = web.app.get_task("web.add").enqueue(a=1)
    client = logged_in(web, web.admin)
    answer = client.post(f"/jobs/{job.id}/cancel", data={"csrf": "0" * 64})
    assert answer.status_code == 403 and "security token" in answer.text
    answer = client.post(f"/jobs/{job.id}/cancel", data={})
    assert answer.status_code == 403
    assert web.app.get_job(job.id).status is Status.PENDING  # type: ignore[union-attr]


def test_an_action_from_another_origin_is_refused_even_with_the_token(web: Web) -> None:
    job = web.app.get_task("web.add").enqueue(a=1)
    client = logged_in(web, web.admin)
    token = csrf_of(client)
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = client.post(f"/jobs/{job.id}/cancel", data={"csrf": token}, headers=headers)
        assert answer.status_code == 403 and "another site" in answer.text
    assert web.app.get_job(job.id).status is Status.PENDING  # type: ignore[union-attr]


def test_an_action_with_the_token_from_this_origin_is_done(web: Web) -> None:
    job = web.app.get_task("web.add").enqueue(a=1)
    client = logged_in(web, web.admin)
    answer = client.post(
        f"/jobs/{job.id}/cancel",
        data={"csrf": csrf_of(client), "next": f"/jobs/{job.id}"},
        headers={"Origin": web.url},
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"/jobs/{job.id}"
    assert web.app.get_job(job.id).status is Status.CANCELLED  # type: ignore[union-attr]
    assert "Cancelled." in client.get(f"/jobs/{job.id}").text  # the message, once
    assert "Cancelled." not in client.get(f"/jobs/{job.id}").text


def test_an_action_never_redirects_to_another_site(web: Web) -> None:
    job = web.app.get_task("web.add").enqueue(a=1)
    client = logged_in(web, web.admin)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = client.post(
            f"/jobs/{job.id}/cancel", data={"csrf": csrf_of(client), "next": target}
        )
        assert answer.headers["location"] == "/", target


def test_the_session_cookie_lets_the_json_api_be_read_but_never_changed(web: Web) -> None:
    job = web.app.get_task("web.add").enqueue(a=1)
    client = logged_in(web, web.admin)
    assert client.get(f"/api/v1/jobs/{job.id}").status_code == 200
    assert client.post(f"/api/v1/jobs/{job.id}/cancel").status_code == 401
    assert web.app.get_job(job.id).status is Status.PENDING  # type: ignore[union-attr]


def test_a_tenant_keys_pages_show_its_tenant_only(web: Web) -> None:
    mine = web.app.get_task("web.add").options(tenant="acme", title="acme-job").enqueue(a=1)
    theirs = web.app.get_task("web.add").options(tenant="globex", title="globex-job").enqueue(a=2)
    client = logged_in(web, web.tenants["acme"])
    listed = client.get("/jobs").text
    assert "acme-job" in listed and "globex-job" not in listed
    assert "globex-job" not in client.get("/jobs?tenant=globex").text
    assert client.get(f"/jobs/{theirs.id}").status_code == 404
    assert client.get(f"/jobs?q={theirs.id}").status_code == 200  # no redirect to it
    assert client.get(f"/jobs?q={mine.id}").headers["location"] == f"/jobs/{mine.id}"
    for path in ("/queues", "/schedules", "/workers"):
        assert client.get(path).status_code == 403, path
    answer = client.post(
        f"/jobs/{theirs.id}/cancel", data={"csrf": csrf_of(client)}, follow_redirects=True
    )
    assert f"no job with id {theirs.id}" in answer.text
    assert web.app.get_job(theirs.id).status is Status.PENDING  # type: ignore[union-attr]


def test_a_tenant_key_retries_only_its_own_dead_letters_in_bulk(web: Web) -> None:
    boom = web.app.get_task("web.boom")
    for tenant in ("acme", "globex"):
        boom.options(tenant=tenant).enqueue()
    web.app.run_worker(burst=True)
    client = logged_in(web, web.tenants["acme"])
    answer = client.post(
        "/dead-letters/retry",
        data={"csrf": csrf_of(client), "tenant": "", "next": "/dead-letters"},
        follow_redirects=True,
    )
    assert "1 failed job queued to run again." in answer.text
    failed = web.app.list_jobs(status=Status.FAILED).jobs
    assert [j.tenant for j in failed] == ["globex"]


def test_searching_by_unique_key_lists_the_job_that_holds_it(web: Web) -> None:
    web.app.get_task("web.add").options(key="invoice-42", title="keyed").enqueue(a=1)
    web.app.get_task("web.add").options(title="other").enqueue(a=2)
    client = logged_in(web, web.admin)
    found = client.get("/jobs?q=invoice-42").text
    assert "keyed" in found and "other" not in found
    assert f"No job with id {uuid.UUID(int=7)}" in client.get(f"/jobs?q={uuid.UUID(int=7)}").text


def test_queue_concurrency_is_set_and_cleared_from_its_form(web: Web) -> None:
    web.app.get_task("web.add").enqueue(a=1)
    client = logged_in(web, web.admin)
    for sent, kept in (("3", 3), ("", None)):
        answer = client.post(
            "/queues/math/concurrency", data={"csrf": csrf_of(client), "concurrency": sent}
        )
        assert answer.status_code == 303
        assert {q.name: q.concurrency for q in web.app.queues()}["math"] == kept
    answer = client.post(
        "/queues/math/concurrency",
        data={"csrf": csrf_of(client), "concurrency": "-1", "next": "/queues"},
        follow_redirects=True,
    )
    assert "concurrency must be a whole number" in answer.text


def test_without_auth_there_is_no_login_but_actions_still_need_the_token(
    make_web: Callable[..., Web],
) -> None:
    web = make_web(insecure_no_auth=True)
    job = web.app.get_task("web.add").enqueue(a=1)
    client = web.client(follow_redirects=False)
    assert client.get("/").status_code == 200
    assert client.get("/login").headers["location"] == "/"
    token = csrf_of(client, f"/jobs/{job.id}")
    assert client.post(f"/jobs/{job.id}/cancel", data={}).status_code == 403
    stranger = web.client(follow_redirects=False)  # no session cookie: the token is not its
    assert stranger.post(f"/jobs/{job.id}/cancel", data={"csrf": token}).status_code == 403
    assert client.post(f"/jobs/{job.id}/cancel", data={"csrf": token}).status_code == 303
    assert web.app.get_job(job.id).status is Status.CANCELLED  # type: ignore[union-attr]


def test_mounted_under_a_path_every_link_cookie_and_action_stays_under_it(web: Web) -> None:
    from fastapi import FastAPI
    from web_support import Served

    from underway.web import create_api

    outer = FastAPI()
    outer.mount("/underway", create_api(web.app))
    served = Served(outer)
    try:
        job = web.app.get_task("web.add").enqueue(a=1)
        client = httpx.Client(base_url=served.url, timeout=30)
        unauthenticated = client.get("/underway/jobs")
        assert unauthenticated.status_code == 401
        assert 'action="/underway/login"' in unauthenticated.text
        answer = client.post("/underway/login", data={"key": web.admin, "next": "/underway/"})
        assert "Path=/underway" in answer.headers["set-cookie"]
        page = client.get("/underway/jobs").text
        links = re.findall(r'(?:href|src|action)="(/[^"]*)"', page)
        assert links and all(link.startswith("/underway/") for link in links), links
        assert client.get("/underway/static/dashboard.js").status_code == 200
        token = csrf_of(client, f"/underway/jobs/{job.id}")
        answer = client.post(f"/underway/jobs/{job.id}/cancel", data={"csrf": token})
        assert answer.status_code == 303
        assert web.app.get_job(job.id).status is Status.CANCELLED  # type: ignore[union-attr]
        client.close()
    finally:
        served.stop()


def test_the_workers_page_says_which_job_each_worker_runs(
    live_web: Web, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    job = (
        live_web.app.get_task("web.gated")
        .options(title="held open")
        .enqueue(gate=str(tmp_path / "gate"))
    )
    wait_for(lambda: live_web.app.get_job(job.id).status is Status.RUNNING, timeout=30)  # type: ignore[union-attr]
    worker = wait_for(lambda: live_web.app.workers(), timeout=30)[0]
    page = logged_in(live_web, live_web.admin).get("/workers").text
    row = page[page.index(f'data-worker="{worker.id}"') :]
    row = row[: row.index("</tr>")]
    assert f'href="/jobs/{job.id}"' in row and "held open" in row
    # its clock against the store's: measured on PostgreSQL, none to show on SQLite
    clock = row[row.index('data-label="Clock"') :]
    if worker.clock_skew is None:
        assert clock.startswith('data-label="Clock">-</td>'), clock
    else:  # read again at each beat: close to what app.workers() said, and near 0 here
        shown = float(clock[clock.index("<span>") + 6 : clock.index(" s</span>")])
        assert abs(shown - worker.clock_skew) < 0.05 and abs(shown) < 0.5, clock
    (tmp_path / "gate").touch()
