"""`ctx.complete_in` on SQLite: refused with an error that names the alternative (an
idempotency key in the task's own table), and the job then ends as the task's code decides
(docs/decisions/0019-complete-in-transaction.md). PostgreSQL's behaviour is in
tests/postgres/test_pg_complete_in_transaction.py and tests/process."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import underway
from underway import App, ConfigurationError, Context


@pytest.fixture
def store_kind() -> str:
    """The refusal is SQLite's."""
    return "sqlite"


def test_complete_in_on_sqlite_is_refused_naming_the_idempotency_key(
    make_app: Callable[..., App], tmp_path: Path
) -> None:
    app = make_app()
    app.migrate()
    errors: list[str] = []

    @app.task(name="tests.charge")
    def charge(ctx: Context) -> str:
        conn = sqlite3.connect(tmp_path / "mine.db")
        try:
            ctx.complete_in(conn, result="charged")
        except ConfigurationError as exc:
            errors.append(str(exc))
        finally:
            conn.close()
        return "returned"

    job = charge.enqueue()
    assert asyncio.run(underway.Worker(app, burst=True).drain()) == 1
    done = app.get_job(job.id)
    assert done is not None and (done.status, done.result) == ("completed", "returned")
    assert len(errors) == 1
    assert "needs the PostgreSQL store" in errors[0] and "unique key" in errors[0]
