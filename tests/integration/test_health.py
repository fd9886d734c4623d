"""`underway.health.check` on every store: ok with a worker running, and each failure with its
reason: no live worker where jobs are due, a schedule gone overdue, a dead or hanging store;
and its warnings: a worker whose clock is off, a transaction holding the xmin horizon."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import underway
from underway import health, testing

MakeApp = Callable[..., underway.App]


def failing(result: health.Health) -> dict[str, str]:
    return {c.name: c.reason for c in result.checks if not c.ok}


def test_ok_with_a_worker_running_and_the_schedules_fired(
    fast_app: MakeApp, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    app = fast_app()

    @app.periodic(every=0.2, name="tests.beat")
    def beat() -> None: ...

    start_worker(app)  # fires the schedule too
    app.task(name="tests.add")(lambda a, b: a + b).enqueue(1, 2)
    wait_for(lambda: app.workers(), what="the worker to announce itself")
    result = health.check(app, grace=5.0)
    assert result.ok, result.reasons
    assert [c.name for c in result.checks] == [
        "store", "workers", "schedules", "clocks", "horizon",
    ]  # fmt: skip
    assert result.reasons == []
    assert result.warnings == []


def test_due_jobs_and_no_live_worker_fail_the_workers_check(
    fast_app: MakeApp, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    app = fast_app()
    add = app.task(name="tests.add")(lambda a, b: a + b)
    assert health.check(app).ok  # no job is due: nothing for a worker to do
    running = start_worker(app)
    wait_for(lambda: app.workers(), what="the worker to announce itself")
    running.stop()
    add.enqueue(1, 2)

    result = health.check(app)
    assert not result.ok
    assert failing(result) == {
        "workers": "jobs in queue default are due and no live worker serves that queue: start "
        "one (`underway worker APP --queues default`)"
    }


def test_a_worker_serving_other_queues_does_not_count(
    fast_app: MakeApp, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    app = fast_app()
    add = app.task(name="tests.add", queue="bulk")(lambda a, b: a + b)
    start_worker(app, queues=["mail"])
    wait_for(lambda: app.workers(), what="the worker to announce itself")
    add.enqueue(1, 2)
    assert "queue bulk" in failing(health.check(app))["workers"]
    app.pause_queue("bulk")  # nothing due in a paused queue
    assert health.check(app).ok


def test_a_schedule_no_scheduler_fires_goes_overdue(
    fast_app: MakeApp, wait_for: Callable[..., Any]
) -> None:
    app = fast_app()

    @app.periodic(every=0.1, name="tests.beat", schedule_name="beat")
    def beat() -> None: ...

    @app.periodic(every=0.1, name="tests.held", schedule_name="held")
    def held() -> None: ...

    testing.scheduler(app).tick()  # registers both and fires their first slots; then none runs
    app.pause_schedule("held")  # a paused schedule is never late
    app.task(name="tests.noop")(lambda: None)
    for job in app.list_jobs().jobs:  # no worker either, so leave no due job behind
        app.cancel(job.id)

    def unhealthy() -> health.Health | None:
        result = health.check(app, grace=0.3)
        return None if result.ok else result

    result = wait_for(unhealthy, what="the schedule to go overdue")
    reason = failing(result)["schedules"]
    assert list(failing(result)) == ["schedules"]
    assert reason.startswith("schedules are late, so no scheduler is running: beat (its slot at ")
    assert "held" not in reason


def test_a_store_that_cannot_be_opened_fails_the_store_check(
    store_kind: str, tmp_path: Path
) -> None:
    if store_kind == "sqlite":
        path = tmp_path / "not-a-database.db"
        path.write_bytes(b"this is not SQLite" * 100)
        url = f"sqlite:///{path}"
    else:
        url = f"postgresql://postgres@127.0.0.1:{_free_port()}/test?connect_timeout=1"
    with underway.App(url, connect_timeout_seconds=1) as app:
        result = health.check(app, timeout=5.0)
    assert not result.ok
    assert [c.name for c in result.checks] == ["store"]
    assert result.reasons[0].startswith("the store is unreachable: ")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_a_store_that_does_not_answer_fails_within_the_timeout(silent_server: int) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/test"
    app = underway.App(url, connect_timeout_seconds=30)
    result = health.check(app, timeout=0.5)
    assert not result.ok
    assert result.reasons == ["the store did not answer within 0.5 s"]


def test_the_async_check_answers_the_same(fast_app: MakeApp) -> None:
    import asyncio

    app = fast_app()
    assert asyncio.run(health.check_async(app)) == health.check(app)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class _Ahead:
    """The `time` module as the PostgreSQL store sees it, with a clock `by` seconds fast."""

    def __init__(self, by: float) -> None:
        self.by = by

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def time(self) -> float:
        return time.time() + self.by


def test_a_worker_whose_clock_is_off_is_a_warning_naming_it_not_a_failure(
    fast_app: MakeApp,
    start_worker: Callable[..., Any],
    wait_for: Callable[..., Any],
    store_kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from underway.stores.postgres import store as postgres_store

    app = fast_app()
    start_worker(app)
    wait_for(lambda: app.workers(), what="the worker to announce itself")
    [worker] = app.workers()
    if store_kind == "sqlite":
        # every process's clock is the store's: nothing to be off from
        assert worker.clock_skew is None
        assert health.check(app).warnings == []
        return
    assert worker.clock_skew is not None and abs(worker.clock_skew) < 0.1
    monkeypatch.setattr(postgres_store, "time", _Ahead(42.0))
    wait_for(
        lambda: (app.workers()[0].clock_skew or 0.0) > 41.9, what="a beat with the clock ahead"
    )
    assert 41.9 < (app.workers()[0].clock_skew or 0.0) < 42.1
    result = health.check(app)
    assert result.ok, result.reasons  # the store's clock decides: nothing runs early
    [warning] = result.warnings
    assert f"worker {worker.id} on {worker.host} (pid {worker.pid}) is 42.0 s ahead of" in warning
    assert "sync the host's clock" in warning
    monkeypatch.setattr(postgres_store, "time", _Ahead(-3.0))
    wait_for(lambda: (app.workers()[0].clock_skew or 0.0) < -2.9, what="a beat behind")
    assert "is 3.0 s behind the store's clock" in health.check(app).warnings[0]


def test_a_transaction_holding_the_horizon_is_a_warning_naming_its_pid(
    fast_app: MakeApp, database_url: str, store_kind: str, wait_for: Callable[..., Any]
) -> None:
    app = fast_app()
    app.task(name="tests.add")(lambda a, b: a + b)
    app.migrate()
    if store_kind == "sqlite":
        import sqlite3

        path = database_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM underway_jobs").fetchall()
            time.sleep(0.6)
            # a reader holds only the WAL's checkpoint back, which SQLite does not attribute
            assert app.store.horizon_holders(0.5) == []
            assert health.check(app, horizon=0.5).warnings == []
        return
    import psycopg

    from underway.stores.postgres.store import _split_url

    conninfo, _ = _split_url(database_url)
    with psycopg.connect(conninfo, application_name="a long report") as holder:
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        # the snapshot is taken: the horizon is held. The server's pid, not the one the
        # connection was told (behind PgBouncer that is the pooler's own)
        [(pid,)] = holder.execute("SELECT pg_backend_pid()").fetchall()
        assert str(pid) not in " ".join(health.check(app, horizon=60.0).warnings)
        time.sleep(0.6)
        result = health.check(app, horizon=0.5)
        assert result.ok, result.reasons
        [warning] = [w for w in result.warnings if w.startswith("the xmin horizon")]
        assert f"pid {pid} for " in warning
        assert "application a long report" in warning and "pg_backend_pid" in warning
        assert "pg_terminate_backend" in warning
        [mine] = [h for h in app.store.horizon_holders(0.5) if h.name == str(pid)]
        assert mine.kind == "transaction" and mine.seconds is not None and mine.seconds >= 0.5
        holder.rollback()
        held = " ".join(health.check(app, horizon=0.5).warnings)
        assert f"pid {pid} " not in held
