"""Fixtures of the HTTP API tests: an App served by uvicorn on a free loopback port, in a thread
of the test process, with httpx clients holding an admin key or a tenant's key.

Every fixture here builds on the root conftest's `make_app`, so each test runs on SQLite and on
PostgreSQL, each on a database of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import underway
from underway.web import create_api

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from web_support import Served, Web  # noqa: E402
from webapp import declare  # noqa: E402


@pytest.fixture
def make_web(make_app: Callable[..., underway.App]) -> Iterator[Callable[..., Web]]:
    """`make_web(insecure_no_auth=False, **settings)`: the test app, migrated and served."""
    started: list[tuple[Served, Web]] = []

    def make(insecure_no_auth: bool = False, **settings: Any) -> Web:
        app = declare(make_app(**settings))
        app.migrate()
        served = Served(create_api(app, insecure_no_auth=insecure_no_auth))
        _, admin = app.create_key(name="admin")
        tenants = {t: app.create_key(name=t, tenant=t)[1] for t in ("acme", "globex")}
        web = Web(app, served.url, admin, tenants, served=served)
        started.append((served, web))
        return web

    yield make
    for served, web in started:
        for client in web.clients:
            client.close()
        served.stop()


@pytest.fixture
def web(make_web: Callable[..., Web]) -> Web:
    return make_web()


# --- the dashboard in a browser ----------------------------------------------------------------

from browser_support import Tab, launch, open_tab  # noqa: E402
from web_support import start_process  # noqa: E402


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium (Debian's /usr/bin/chromium) for one test module. Not for the whole
    session: Playwright's sync API keeps an event loop running on the main thread while it is
    open, and every later test that calls asyncio.run would fail."""
    yield from launch()


@pytest.fixture
def live_web(make_web: Callable[..., Web]) -> Iterator[Web]:
    """The served test app with a worker process of its own running its jobs (and firing its
    schedules), quick to notice cancel requests."""
    web = make_web()
    worker = start_process(
        ["worker", "webapp:app", "--concurrency", "4"], web.app.settings.database_url,
        UNDERWAY_HEARTBEAT_SECONDS="0.2", UNDERWAY_POLL_SECONDS="0.05",
        UNDERWAY_PROGRESS_FLUSH_SECONDS="0.05",
    )  # fmt: skip
    yield web
    worker.terminate()
    _, err = worker.communicate(timeout=30)
    assert worker.returncode in (0, -15), err.decode()[-2000:]


@pytest.fixture
def tabs(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Tab]]:
    """`tabs(url, **context options)`: a browser page on the dashboard. At the end of the test
    each is screenshot (the artifacts) and must have logged no console error."""
    opened: list[Tab] = []

    def make(url: str, **options: Any) -> Tab:
        tab = open_tab(chromium, url, f"{request.node.name}-{len(opened)}", **options)
        opened.append(tab)
        return tab

    yield make
    for tab in opened:
        tab.shoot("end")
        errors = tab.unexpected_errors()
        tab.context.close()
        assert not errors, f"the page logged console errors: {errors}"
