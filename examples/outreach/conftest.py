"""Fixtures of the outreach example's tests.

Every test that asks for `database_url` runs on SQLite and, when UNDERWAY_TEST_POSTGRES_URL is
set (`./run test` sets it), on PostgreSQL in a schema of its own, dropped afterwards. Under
CI=true a missing server is an error, never a skip.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from outreach.oauth import add_workspace_account
from outreach.outside import OutsideServices

from outreach import Config, Outreach, create_app
from underway import testing
from underway.callbacks import new_secret
from underway.web import create_api

POSTGRES_URL = os.environ.get("UNDERWAY_TEST_POSTGRES_URL", "")
if not POSTGRES_URL and os.environ.get("CI") == "true":
    raise RuntimeError("CI=true but UNDERWAY_TEST_POSTGRES_URL is not set: PostgreSQL must run")

#: one secret for the whole run: the caller verifies callbacks with it
SECRET = new_secret()
#: quick polls and leases, callbacks signed and allowed to the caller on loopback
SETTINGS: dict[str, Any] = {
    "poll_seconds": 0.05,
    "lease_seconds": 2.0,
    "heartbeat_seconds": 0.3,
    "shutdown_grace_seconds": 2.0,
    "webhook_secret": SECRET,
    "callback_allow": ["127.0.0.1/32"],
    "callback_backoff_base_seconds": 0.05,
    "callback_backoff_max_seconds": 0.2,
}


@pytest.fixture(autouse=True)
def _no_underway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("UNDERWAY_", "OUTREACH_"))]:
        if name != "UNDERWAY_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outreach.db'}"
        return
    schema = f"outreach_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema={schema}"
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def outside() -> Iterator[OutsideServices]:
    """Multilogin, Selenium, Google, Smartlead and the caller's callback receiver."""
    with OutsideServices() as services:
        services.browsers.accounts["ann@workspace.example"] = "correct horse"
        yield services


@pytest.fixture
def make_outreach(database_url: str, outside: OutsideServices) -> Iterator[Callable[..., Outreach]]:
    """`make_outreach(**settings)` -> the example on this test's database, its tables made."""
    made: list[Outreach] = []

    def make(**settings: Any) -> Outreach:
        config = Config(database_url=database_url, services_url=outside.url)
        outreach = create_app(config, **{**SETTINGS, **settings})
        outreach.database.create_tables()
        with outreach.database.connect() as conn:
            add_workspace_account(conn, "ann@workspace.example", "correct horse")
        made.append(outreach)
        return outreach

    yield make
    for outreach in made:
        outreach.app.close()


@pytest.fixture
def outreach(make_outreach: Callable[..., Outreach]) -> Outreach:
    return make_outreach()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def api_url(outreach: Outreach) -> Iterator[str]:
    """underway's HTTP API for the example's app, served by uvicorn on loopback."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_api(outreach.app), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    testing.wait_for(lambda: server.started, what="the HTTP API to listen")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def secret() -> str:
    return SECRET
