"""PostgreSQL-only tests: transactional enqueue, query plans, schemas.

They run when UNDERWAY_TEST_POSTGRES_URL names a server (`./run test` and CI set it; under
CI=true the root conftest refuses to run without it). Without it they are not collected at all,
so a run on a machine without PostgreSQL neither fails nor reports skips.

The store fixtures of the root conftest (`database_url`, `make_app`, `make_store`, ...) are
pinned to PostgreSQL here: each test still gets a fresh schema, dropped at teardown.
`new_schema_url()` hands out more schemas for tests that need several; they are dropped too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

POSTGRES_URL = os.environ.get("UNDERWAY_TEST_POSTGRES_URL", "")

if not POSTGRES_URL:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def store_kind() -> str:
    """Every store fixture in this directory is on PostgreSQL."""
    return "postgresql"


def schema_url(schema: str) -> str:
    """The test server's URL with `?schema=` (URL-encoded) for `schema`."""
    from urllib.parse import quote

    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}schema={quote(schema, safe='')}"


def conninfo() -> str:
    """The test server's URL as psycopg takes it (without underway's `schema` parameter)."""
    from underway.stores.postgres.store import _split_url

    return _split_url(POSTGRES_URL)[0]


def drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _schemas() -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(prefix: str = "test_") -> str:
        schema = f"{prefix}{uuid.uuid4().hex[:12]}"
        made.append(schema)
        return schema_url(schema)

    yield make
    for schema in made:
        drop_schema(schema)


@pytest.fixture
def new_schema_url() -> Iterator[Callable[..., str]]:
    """`new_schema_url(prefix="test_")` -> the URL of a fresh schema (random name); every
    schema handed out is dropped at teardown, whether or not anything created it."""
    yield from _schemas()


@pytest.fixture(scope="module")
def module_schema_url() -> Iterator[Callable[..., str]]:
    """`new_schema_url` for module-scoped fixtures: dropped after the module's last test.
    Only for data that the module's tests read and never change."""
    yield from _schemas()


@pytest.fixture(name="conninfo")
def conninfo_fixture() -> str:
    """The server URL for the test's own psycopg connections."""
    return conninfo()


@pytest.fixture
def schema(database_url: str) -> str:
    """The name of this test's schema, for the test's own tables beside underway's."""
    from underway.stores.postgres.store import _split_url

    name = _split_url(database_url)[1]
    assert name is not None
    return name
