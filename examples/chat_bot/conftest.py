"""Fixtures of the chat bot's tests. Every test that asks for `bot` runs twice: on SQLite, and
on PostgreSQL (UNDERWAY_TEST_POSTGRES_URL, which `./run test` sets; under CI=true it must be
there), each time on a database of its own: a file, or a schema dropped after.

- `service`: a critical service of the bot (a local HTTP service) that tests make fail or hang;
- `documents`: the bot's document folder;
- `settings`: maintenance settings as the environment would give them, pointing at both;
- `bot`: a prepared `ChatBot` (its tables made) with quick underway timings, and `manager`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from chat_bot.app import ChatBot
from chat_bot.manager import TaskManager
from chat_bot.services import ServiceDouble
from chat_bot.settings import MaintenanceSettings
from psycopg import sql

POSTGRES = os.environ.get("UNDERWAY_TEST_POSTGRES_URL", "")
if not POSTGRES and os.environ.get("CI") == "true":
    raise RuntimeError("CI=true needs UNDERWAY_TEST_POSTGRES_URL: the PostgreSQL tests must run")

#: quick enough that a worker sees new jobs and cancels within a fraction of a second
QUICK = {"poll_seconds": 0.05, "heartbeat_seconds": 0.2, "progress_flush_seconds": 0.05,
         "shutdown_grace_seconds": 1.0}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"] if POSTGRES else ["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chat_bot.db'}"
        return
    schema = f"chat_bot_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}schema={schema}"
    with psycopg.connect(POSTGRES, autocommit=True) as pg:
        pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def service() -> Iterator[ServiceDouble]:
    running = ServiceDouble({"requests": 42.0, "limited": 3.0}).start()
    yield running
    running.stop()


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    folder = tmp_path / "documents"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(service: ServiceDouble, documents: Path) -> MaintenanceSettings:
    return MaintenanceSettings.from_env({
        "DB_CLEANUP_INTERVAL": "3600", "DB_CLEANUP_DAYS": "30",
        "CACHE_CLEANUP_INTERVAL": "300", "SESSION_CLEANUP_INTERVAL": "600",
        "DOCUMENTS_CLEANUP_INTERVAL_SECONDS": "1800", "DOCUMENTS_CLEANUP_HOURS": "24",
        "DOCUMENTS_STORAGE_QUOTA_MB": "1", "DOCUMENTS_DIR": str(documents),
        "HEALTH_CHECK_TASK_INTERVAL": "60", "METRICS_COLLECTION_INTERVAL": "120",
        "CHAT_BOT_SERVICES": f"rate_limiter={service.url}",
    })  # fmt: skip


@pytest.fixture
def bot(database_url: str, settings: MaintenanceSettings) -> Iterator[ChatBot]:
    made = ChatBot(database_url, settings, **QUICK)
    made.prepare()
    yield made
    made.close()


@pytest.fixture
def manager(bot: ChatBot) -> TaskManager:
    return TaskManager(bot.app)
