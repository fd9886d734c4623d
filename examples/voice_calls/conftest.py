"""Fixtures of example 002's tests: each test gets a database of its own on each store
(a SQLite file; a PostgreSQL schema when UNDERWAY_TEST_POSTGRES_URL names a server, which
`./run test` sets), holding the example's tables and underway's, and a cache service of its
own on a local port."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from voice_calls.cache import CacheService  # noqa: E402
from voice_calls.config import Services  # noqa: E402
from voice_calls.jobs import make_app  # noqa: E402

import underway  # noqa: E402
from voice_calls import config  # noqa: E402

POSTGRES_URL = os.environ.get("UNDERWAY_TEST_POSTGRES_URL", "")
if not POSTGRES_URL and os.environ.get("CI") == "true":
    raise RuntimeError("CI=true but UNDERWAY_TEST_POSTGRES_URL is not set: PostgreSQL must run")
KINDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]

#: short timings, so that a killed worker's job is rescued within seconds
FAST: dict[str, float] = {
    "lease_seconds": 2.0,
    "heartbeat_seconds": 0.3,
    "poll_seconds": 0.1,
    "progress_flush_seconds": 0.1,
    "shutdown_grace_seconds": 1.0,
}


@pytest.fixture(params=KINDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'voice_calls.db'}"
        return
    import psycopg
    from psycopg import sql

    schema = f"voice_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}schema={schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def cache() -> Iterator[CacheService]:
    service = CacheService().start()
    yield service
    service.stop()


@pytest.fixture
def services(database_url: str, cache: CacheService) -> Services:
    """The service API pointed at this test's database and cache."""
    return config.configure(database_url, cache.url)


@pytest.fixture
def app(services: Services) -> Iterator[underway.App]:
    """The example's underway app on the test's database, migrated."""
    app = make_app(**FAST)
    app.migrate()
    yield app
    app.close()


@pytest.fixture
def worker_env(services: Services, cache: CacheService) -> dict[str, Any]:
    """The environment of a `python -m voice_calls worker` process on this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNDERWAY_", "VOICE_"))}
    env.update({f"UNDERWAY_{name.upper()}": str(value) for name, value in FAST.items()})
    env[config.DATABASE_VAR] = services.db.url
    env[config.CACHE_VAR] = cache.url
    src = HERE.parents[1] / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(src), env.get("PYTHONPATH", "")])
    return env
