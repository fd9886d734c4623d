"""Fixtures of the file manager's tests. Every test that asks for `manager` runs twice: on
SQLite, and on PostgreSQL (UNDERWAY_TEST_POSTGRES_URL, which `./run test` sets; under CI=true
it must be there), each time on a database of its own: a file, or a schema dropped after.

- `manager`: a prepared `FileManager` with quick timings (its tables made);
- `folder`: a folder of a few files to scan and copy;
- `site`: the example's site (page, API, worker) served on a free loopback port;
- `chromium`: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from file_manager.app import FileManager
from file_manager.web import create_site
from psycopg import sql

POSTGRES = os.environ.get("UNDERWAY_TEST_POSTGRES_URL", "")
if not POSTGRES and os.environ.get("CI") == "true":
    raise RuntimeError("CI=true needs UNDERWAY_TEST_POSTGRES_URL: the PostgreSQL tests must run")

#: quick enough that a worker sees new jobs, reports and cancels within a fraction of a second
QUICK = {"poll_seconds": 0.05, "heartbeat_seconds": 0.2, "progress_flush_seconds": 0.05,
         "shutdown_grace_seconds": 1.0}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"] if POSTGRES else ["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'file_manager.db'}"
        return
    schema = f"file_manager_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}schema={schema}"
    with psycopg.connect(POSTGRES, autocommit=True) as pg:
        pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def manager(database_url: str) -> Iterator[FileManager]:
    made = FileManager(database_url, **QUICK)
    made.prepare()
    yield made
    made.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """photos/ with three files, one in a subfolder."""
    root = tmp_path / "photos"
    (root / "2024").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"a" * 1000)
    (root / "b.jpg").write_bytes(b"b" * 2000)
    (root / "2024" / "c.jpg").write_bytes(b"c" * 3000)
    return root


@pytest.fixture
def site(manager: FileManager) -> Iterator[str]:
    """The site's URL; its worker runs inside the server, as with `python -m file_manager`."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_site(manager), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the site did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(20)
    sock.close()
    assert not thread.is_alive(), "the site did not stop within 20 s"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser per module: Playwright's sync API holds an event loop on this thread while
    it runs, which later tests calling asyncio.run must not meet."""
    from playwright.sync_api import sync_playwright

    if not Path("/usr/bin/chromium").exists():
        pytest.fail("/usr/bin/chromium is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox"])  # fmt: skip
        yield browser
        browser.close()
