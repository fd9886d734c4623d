"""Fixtures shared by every test directory.

Every store-backed fixture is parametrized over `STORE_KINDS`, so a test that asks for `store`,
`settings` or `make_app` runs once per backend.

PostgreSQL tests take the server from UNDERWAY_TEST_POSTGRES_URL (`./run test` sets it to the
local server when unset). Each test gets a schema of its own, dropped afterwards, so tests and
concurrent runs never see each other's jobs. Under CI=true a missing or unreachable server is an
error, never a skip.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from underway import App, Settings, testing
from underway.stores import Store, open_store

if TYPE_CHECKING:
    from pgproxy import Proxy

POSTGRES_URL = os.environ.get("UNDERWAY_TEST_POSTGRES_URL", "")
if not POSTGRES_URL and os.environ.get("CI") == "true":
    raise RuntimeError(
        "CI=true but UNDERWAY_TEST_POSTGRES_URL is not set: PostgreSQL tests must run"
    )

#: The backends the contract suite (and every fixture below) runs on.
STORE_KINDS: list[str] = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]

T = TypeVar("T")


def database_url_for(kind: str, tmp_path: Path) -> str:
    """A URL naming a fresh, empty database of `kind` for one test.

    PostgreSQL goes here: read the server from an environment variable (for example
    UNDERWAY_TEST_POSTGRES_URL), create a database or schema unique to this test, and return
    its URL. If it needs dropping afterwards, do that in the `database_url` fixture below.
    """
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'underway.db'}"
    if kind == "postgresql":
        return postgres_url_with_schema(f"test_{uuid.uuid4().hex[:16]}")
    raise ValueError(f"no test database for store kind {kind!r}; add it in database_url_for")


@pytest.fixture(autouse=True)
def _no_underway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's UNDERWAY_* variables from changing what the tests see."""
    for field in dataclasses.fields(Settings):
        monkeypatch.delenv(f"UNDERWAY_{field.name.upper()}", raising=False)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def postgres_url_with_schema(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}schema={schema}"


def drop_postgres_schema(url: str) -> None:
    import psycopg
    from psycopg import sql

    from underway.stores.postgres.store import _split_url

    conninfo, schema = _split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def database_url(store_kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of this test's database (one per test, shared by every store and app in it)."""
    url = database_url_for(store_kind, tmp_path)
    yield url
    if store_kind == "postgresql":
        drop_postgres_schema(url)


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """`make_settings(lease_seconds=0.2, ...)` -> Settings on this test's database."""

    def make(**overrides: Any) -> Settings:
        return Settings.load({}, database_url=database_url, **overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def make_store(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Store]]:
    """`make_store(**settings)` -> an opened, migrated Store on this test's database.

    Each call opens a separate store on the same database, as separate processes would.
    All of them are closed at teardown.
    """
    opened: list[Store] = []

    def make(**overrides: Any) -> Store:
        store = open_store(make_settings(**overrides))
        opened.append(store)
        store.migrate()
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., App]]:
    """`make_app(**settings)` -> a fresh App on this test's database; closed at teardown.

    Several apps made in one test share the database, like processes on one store.
    """
    apps: list[App] = []

    def make(**settings: Any) -> App:
        app = App(database_url, **settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def wait_for(
    probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Call `probe` until it returns something truthy, and return that; fail after `timeout`.

    The deadline only bounds a hang: tests never assert how long something took.
    """
    return testing.wait_for(probe, timeout=timeout, what=what, interval=interval)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    """`wait_for(probe, timeout=10, what="...")`: poll until `probe()` is truthy."""
    return wait_for


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/faults/conftest.py: pytest reads options only from the conftest files
    # it loads at startup.
    group = parser.getgroup("faults", "the fault and abuse suite (tests/faults)")
    group.addoption(
        "--full", action="store_true", help="fault scenarios at the catalogue's full sizes"
    )
    group.addoption(
        "--faults-table", metavar="PATH", help="write the fault suite's table (Markdown) to PATH"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "restarts_postgres: restarts the PostgreSQL server; runs after every other test"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that restart PostgreSQL last, so no other test sees the restart."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_postgres") is not None)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """A TCP proxy in front of PostgreSQL in this process (tests/pgproxy.py), closed after the
    test: it can hold a connection's bytes, or partition all of them, and let them go."""
    from pgproxy import Proxy

    proxy = Proxy()
    yield proxy
    proxy.close()
