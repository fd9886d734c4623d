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
        web = Web(app, served.url, admin, tenants)
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
