"""A06 the dashboard and the API without auth, both stores. Catalogue: start with defaults;
crawl every OpenAPI and dashboard route without credentials; cross-site mutations; an XSS
corpus; `limit=10**9`.

Pass: `underway serve` binds loopback only by default (its port in /proc/net/tcp*), and with
`--insecure-no-auth` off loopback refuses to start; an unauthenticated
crawl of every OpenAPI route (path parameters filled with real ids and names) and every
dashboard route gets 100 % 401 or 403, except what docs/http.md documents as public (the
schema and FastAPI's docs pages) and the login form and static files a browser needs to log
in; mutations (POST, PUT, DELETE) with a valid admin key but `Origin: https://evil.example`
or a cross-site `Sec-Fetch-Site` get 403 and change nothing, while a bearer client without
Origin still works; the XSS corpus in queue names, titles, keys, args, error messages,
progress and status texts, payloads and reflected query parameters reaches every page as text
(no script, no event-handler attribute, no injected element) under a Content-Security-Policy
without inline script; `limit=10**9` (and minutes=10**9) is refused with 422 or clamped, never
a 5xx or a large answer.

Not asserted here: "a read-only role cannot pause, cancel, retry or delete" (underway has no
read-only role; a tenant key's limits are in tests/web/test_api_tenants.py), `refresh=0` and
regex filters (the dashboard has no refresh parameter and filters match exactly).
CI size = full size: ~30 jobs, every route."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from abuse import WEB, XSS, abuse_verdict, client, row_count, served
from markupsafe import escape
from web_support import Web, free_port

import underway
from underway import testing
from underway.web.dashboard import JOB_PAGE, PAGES, actions, fleet, login, pages
from underway.web.dashboard.csrf import token_for

#: answers that refuse a caller without credentials
REFUSED = (401, 403)
#: what a caller without credentials may read: the schema and docs pages (docs/http.md), and
#: what a browser needs to log in
PUBLIC = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/login"})
#: a cross-site browser request, each way a browser may say so
CROSS_SITE: tuple[dict[str, str], ...] = (
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
)


def fill(path: str, job: str) -> str:
    """A route's path with real ids and names in its parameters."""
    name = "math" if path.startswith(("/api/v1/queues", "/queues")) else "web.hourly"
    verb = "retry" if path.startswith("/dead-letters") else "pause"
    if path.startswith("/jobs/"):
        verb = "cancel"
    return path.format(job_id=job, name=name, verb=verb, id=job)


def openapi_routes(web: Web) -> list[tuple[str, str]]:
    schema = httpx.get(web.url + "/openapi.json").json()
    return [(m.upper(), p) for p, ops in schema["paths"].items() for m in ops]


def dashboard_routes() -> list[tuple[str, str]]:
    found = [
        (method, route.path)
        for router in (login.router, pages.router, fleet.router, actions.router)
        for route in router.routes
        for method in sorted(getattr(route, "methods", ()) or ()) if method != "HEAD"
    ]  # fmt: skip
    return found + [("GET", p) for p in PAGES] + [("GET", "/static/dashboard.js")]


def crawl(web: Web, job: str, credentials: dict[str, Any]) -> list[str]:
    """Every route but the public ones, as a caller holding `credentials` (none, or bad
    ones): the answers that were not 401 or 403."""
    caller = client(web, follow_redirects=False, **credentials)
    wrong = []
    for method, path in openapi_routes(web) + dashboard_routes():
        if path.split("?")[0] in PUBLIC or path.startswith("/static/"):
            continue
        body = {"task": "web.add", "args": {"a": 1}} if path == "/api/v1/jobs" else {}
        kwargs: dict[str, Any] = {"json": body} if method in ("POST", "PUT") else {}
        answer = caller.request(method, fill(path, job), **kwargs)
        if answer.status_code not in REFUSED:
            wrong.append(f"{method} {path}: {answer.status_code} {answer.text[:80]}")
    return wrong


def public_pages_hold_no_data(web: Web) -> list[str]:
    anonymous = client(web, follow_redirects=False)
    wrong = []
    for path in [*PUBLIC, "/static/dashboard.js"]:
        text = anonymous.get(path).text
        if ("web.boom" in text and path != "/openapi.json") or "a secret" in text:
            wrong.append(path)
    return wrong


def state(web: Web) -> tuple[Any, ...]:
    admin = web.as_admin()
    jobs = sorted((str(j.id), j.status.value) for j in web.app.list_jobs(limit=1000).jobs)
    queues = [(q["name"], q["paused"]) for q in admin.get("/api/v1/queues").json()]
    schedules = [(s["name"], s["paused"]) for s in admin.get("/api/v1/schedules").json()]
    return tuple(jobs), tuple(queues), tuple(schedules)


def insecure_off_loopback_refused() -> list[str]:
    started = []
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com"):
        done = subprocess.run(
            [sys.executable, "-m", "underway", "serve", "webapp:app", "--host", host,
             "--port", "0", "--insecure-no-auth"],
            cwd=WEB, capture_output=True, timeout=60, text=True,
        )  # fmt: skip
        if done.returncode == 0 or "only allowed on a loopback host" not in done.stderr:
            started.append(f"{host}: exit {done.returncode} {done.stderr[-200:]}")
    return started


def default_bind(url: str) -> list[str]:
    """`underway serve APP` without --host listens on loopback only: the addresses its port
    is bound to, from /proc/net/tcp and tcp6, that are not loopback."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "underway", "serve", "webapp:app", "--port", str(port)],
        cwd=WEB, env={**os.environ, "UNDERWAY_DATABASE_URL": url},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (bound := _listening(port)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(30)
    loopback = {"0100007F", "00000000000000000000000001000000"}
    return [a for a in bound if a not in loopback] if bound else ["it never listened"]


def _listening(port: int) -> list[str]:
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


def cross_site_mutations(web: Web, job: str) -> list[str]:
    """Every mutation with a valid admin key, sent as each kind of cross-site request."""
    wrong = []
    mutations = [(m, p) for m, p in openapi_routes(web) if m in ("POST", "PUT", "DELETE")]
    for headers in CROSS_SITE:
        forger = client(web, web.admin, headers=headers, follow_redirects=False)
        for method, path in mutations:
            body = {"task": "web.add", "args": {"a": 1}} if path == "/api/v1/jobs" else {}
            kwargs: dict[str, Any] = {"json": body} if method in ("POST", "PUT") else {}
            answer = forger.request(method, fill(path, job), **kwargs)
            if answer.status_code != 403:
                wrong.append(f"{headers} {method} {path}: {answer.status_code}")
        login_form = forger.post("/login", data={"key": web.admin})
        if login_form.status_code != 403:
            wrong.append(f"{headers} POST /login: {login_form.status_code}")
        wrong += forged_forms(web, job, headers)
    return wrong


def forged_forms(web: Web, job: str, headers: dict[str, str]) -> list[str]:
    """Every dashboard action from a logged-in admin's browser, with its valid CSRF token,
    sent from another site."""
    browser = client(web, headers=headers, cookies={"underway_session": web.admin})
    wrong = []
    for method, path in dashboard_routes():
        if method == "POST" and path != "/login":
            answer = browser.post(fill(path, job), data={"csrf": token_for(web.admin)})
            if answer.status_code != 403:
                wrong.append(f"{headers} dashboard {path}: {answer.status_code}")
    return wrong


def api_clients_still_work(web: Web) -> list[str]:
    """Bearer clients without Origin, and this server's own pages, may still change things."""
    own = {"Origin": web.url}
    wrong = []
    for headers in ({}, own, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}):
        answer = client(web, web.admin, headers=headers).post(
            "/api/v1/jobs", json={"task": "web.add", "args": {"a": 2}, "queue": "control"}
        )
        if answer.status_code != 201:
            wrong.append(f"{headers}: {answer.status_code} {answer.text[:100]}")
    return wrong


def huge_limits(web: Web, job: str) -> list[str]:
    """`limit` and `minutes` of 10**9 on every GET route of the API and the dashboard: 422,
    or an answer of at most 1,000 items and 1 MiB."""
    api = client(web, web.admin)
    browser = client(web, cookies={"underway_session": web.admin})
    wrong = []
    gets = [p for m, p in openapi_routes(web) if m == "GET" and p != "/api/v1/events"]
    for path in [*gets, *PAGES, "/dead-letters"]:
        sep = "&" if "?" in path else "?"
        url = f"{fill(path, job)}{sep}limit={10**9}&minutes={10**9}&cursor_limit={10**9}"
        answer = (api if path.startswith("/api/") else browser).get(url)
        size = len(answer.content)
        many = answer.status_code == 200 and _listed(answer) > 1000
        # /health answers 503 by design here: due jobs in queues no worker serves
        fine = (200, 422, 503) if path == "/health" else (200, 422)
        if answer.status_code not in fine or size > 1 << 20:
            wrong.append(f"{path}: {answer.status_code}, {size} bytes")
        elif many:
            wrong.append(f"{path}: {_listed(answer)} items")
    return wrong


def _listed(answer: httpx.Response) -> int:
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return 0
    body = answer.json()
    return len(body.get("jobs", [])) if isinstance(body, dict) else len(body)


def test_a06_without_auth_nothing_but_the_login_is_served(
    make_app: Callable[..., underway.App], store_kind: str
) -> None:
    with served(make_app) as web:
        job = str(web.app.get_task("web.add").enqueue(a=1).id)
        web.app.get_task("web.boom").enqueue(reason="a secret reason")
        testing.drain(web.app, queues=["default"])
        for _ in range(20):
            web.app.get_task("web.add").enqueue(a=1)
        before, jobs = state(web), row_count(web)
        anonymous = crawl(web, job, {})
        bad_key = crawl(web, job, {"key": "uw_not_a_key"})
        bad_cookie = crawl(web, job, {"cookies": {"underway_session": "uw_not_a_key"}})
        leaks = public_pages_hold_no_data(web)
        changed_by_crawl = state(web) != before
        forged = cross_site_mutations(web, job)
        changed_by_forgery = state(web) != before
        clients = api_clients_still_work(web)
        limits = huge_limits(web, job)
        started = insecure_off_loopback_refused()
        exposed = default_bind(web.app.settings.database_url)
        routes = len(openapi_routes(web) + dashboard_routes())
    (
        abuse_verdict("A06 dashboard and API without auth", store_kind, jobs, [
            f"unauthenticated crawl of {routes} routes (no key, a bad key, a bad cookie)",
            f"{len(CROSS_SITE)} kinds of cross-site request on every mutation, admin key",
            "limit=10**9 on every GET route", "--insecure-no-auth on 4 non-loopback hosts",
            "underway serve with its defaults",
        ])
        .require("every route refuses a caller without a key (401/403)", not anonymous,
                 f"{anonymous[:5]}")
        .require("every route refuses a bad key (401/403)", not bad_key, f"{bad_key[:5]}")
        .require("every route refuses a bad session cookie", not bad_cookie, f"{bad_cookie[:5]}")
        .require("the public pages show no job data", not leaks, f"{leaks}")
        .require("cross-site mutations with an admin key are 403", not forged, f"{forged[:5]}")
        .require("nothing changed by refused requests", not (changed_by_crawl or
                 changed_by_forgery), f"crawl {changed_by_crawl}, forgery {changed_by_forgery}")
        .require("bearer clients without Origin still work", not clients, f"{clients}")
        .require("limit=10**9 is 422 or clamped, never 5xx", not limits, f"{limits[:5]}")
        .require("--insecure-no-auth off loopback refuses to start", not started, f"{started}")
        .require("underway serve binds loopback only by default", not exposed, f"{exposed}")
        .check()
    )  # fmt: skip


# --- the XSS corpus ----------------------------------------------------------------------------


class Markup(HTMLParser):
    """What a page makes a browser run or load: script elements without a source, event
    handler attributes, `javascript:` links, and elements the corpus would inject."""

    INJECTED = frozenset({"iframe", "svg", "object", "embed"})
    URLS = frozenset({"href", "src", "action", "formaction", "srcdoc", "xlink:href"})

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if (tag == "script" and not names.get("src")) or tag in self.INJECTED:
            self.found.append(f"<{tag} {attrs}>")
        if tag == "img" and names.get("src") == "x":
            self.found.append(f"<img {attrs}>")
        for name, value in attrs:
            link = name in self.URLS and (value or "").strip().lower().startswith("javascript:")
            if name.startswith("on") or link:
                self.found.append(f"<{tag} {name}={value!r}>")


def say(app: underway.App) -> None:
    @app.task(name="abuse.say", queue="default")
    def say_it(ctx: underway.Context, text: str) -> str:
        ctx.report_progress(0.5, text)
        ctx.report_status(text)
        ctx.set_payload({"note": text})
        return text


def hostile_jobs(web: Web) -> list[str]:
    """A job per corpus entry in every text a page shows: queue, title, key, args, error,
    progress and status text, payload and result. Returns their ids."""
    admin = client(web, web.admin)
    ids = []
    for n, text in enumerate(XSS):
        for body in (
            {"task": "web.greet", "args": {"name": text, "tags": list(XSS)}, "queue": text,
             "title": text, "key": f"{text}{n}"},
            {"task": "web.boom", "args": {"reason": text}, "title": text},
            {"task": "abuse.say", "args": {"text": text}},
        ):  # fmt: skip
            answer = admin.post("/api/v1/jobs", json=body)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
    testing.drain(web.app, queues=["default"])
    return ids


def rendered(web: Web, ids: list[str]) -> dict[str, httpx.Response]:
    browser = client(web, cookies={"underway_session": web.admin})
    reflected = [f"/jobs?{field}={quote(t)}" for t in XSS for field in ("q", "task", "queue")]
    paths = [*PAGES, "/dead-letters", *(JOB_PAGE.format(id=i) for i in ids), *reflected]
    pages = {path: browser.get(path) for path in paths}
    anonymous = client(web, follow_redirects=False)
    for t in XSS:  # the login form reflects where to go back to
        pages[f"/login?next={t}"] = anonymous.get("/login", params={"next": t})
        pages[f"/jobs?q={t} (no session)"] = anonymous.get("/jobs", params={"q": t})
    return pages


def unescaped(pages: dict[str, httpx.Response]) -> list[str]:
    wrong = []
    for path, answer in pages.items():
        if answer.status_code not in (200, 401):
            wrong.append(f"{path}: {answer.status_code}")
        parser = Markup()
        parser.feed(answer.text)
        wrong += [f"{path}: {found}" for found in parser.found]
        wrong += [f"{path}: raw {t!r}" for t in XSS if "<" in t and t in answer.text]
    return wrong


def without_csp(pages: dict[str, httpx.Response]) -> list[str]:
    wrong = []
    for path, answer in pages.items():
        policy = answer.headers.get("content-security-policy", "")
        script = next((d for d in policy.split(";") if d.strip().startswith("script-src")), "")
        if "'self'" not in script or "unsafe-inline" in policy or "unsafe-eval" in policy:
            wrong.append(f"{path}: {policy!r}")
    return wrong


def test_a06_an_xss_corpus_renders_as_text_under_a_strict_csp(
    make_app: Callable[..., underway.App], store_kind: str
) -> None:
    with served(make_app, extra=say) as web:
        ids = hostile_jobs(web)
        stored = [web.app.get_job(i) for i in ids]
        texts = " ".join(
            f"{j.queue} {j.title} {j.key} {j.args} {j.error and j.error.message} "
            f"{j.status_message} {j.payload}" for j in stored if j is not None
        )  # fmt: skip
        in_store = all(t in texts for t in XSS)
        pages = rendered(web, ids)
        markup, policies = unescaped(pages), without_csp(pages)
        shown = all(any(str(escape(t)) in p.text for p in pages.values()) for t in XSS)
    (
        abuse_verdict("A06 XSS corpus and CSP", store_kind, len(ids), [
            f"{len(XSS)} XSS strings in queue, title, key, args, error, progress, status, "
            f"payload and reflected queries; {len(pages)} pages rendered",
        ])
        .require("the corpus reached the store (so the pages had it to show)", in_store, "")
        .require("every page shows it as text: no script, handler or injected element",
                 not markup, f"{markup[:5]}")
        .require("the pages do show the corpus, escaped", shown, "")
        .require("every page's CSP forbids inline script", not policies, f"{policies[:3]}")
        .check()
    )  # fmt: skip
