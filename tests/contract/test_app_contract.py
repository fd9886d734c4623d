"""The same contract seen through App: what a user's code calls. Plus what a user sees when the
SQLite file is not an underway database."""

from __future__ import annotations

import random
import sqlite3
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from underway import (
    App,
    InvalidTransition,
    JobNotFound,
    Status,
    StoreError,
    Task,
)
from underway.callbacks import new_secret

MakeApp = Callable[..., App]


def add_task(app: App, name: str = "tests.add") -> Task[[int, int], int]:
    @app.task(name=name, queue="math", priority=2, max_attempts=7, title="Add two numbers")
    def add(a: int, b: int = 0) -> int:
        return a + b

    return add


def test_enqueue_returns_the_job_get_job_shows(make_app: MakeApp) -> None:
    app = make_app()
    add = add_task(app)
    job = add.enqueue(1, b=2)
    assert job.task == "tests.add"
    assert job.title == "Add two numbers"
    assert job.args == {"a": 1, "b": 2}
    assert (job.queue, job.priority, job.max_attempts) == ("math", 2, 7)
    assert job.status is Status.PENDING and job.attempt == 0
    assert app.get_job(job.id) == job
    assert app.get_job(str(job.id)) == job


def test_enqueue_options_land_on_the_job(make_app: MakeApp) -> None:
    app = make_app(webhook_secret=new_secret())  # a callback_url needs a signing secret
    add = add_task(app)
    job = add.options(
        queue="bulk",
        priority=-3,
        delay=timedelta(minutes=5),
        tenant="acme",
        callback_url="https://example.com/done",
        key="add:1",
        title="Add for acme",
        status_message="Pending",
        max_attempts=2,
    ).enqueue(a=1)
    assert (job.queue, job.priority, job.max_attempts) == ("bulk", -3, 2)
    assert (job.tenant, job.callback_url, job.key) == ("acme", "https://example.com/done", "add:1")
    assert (job.title, job.status_message) == ("Add for acme", "Pending")
    assert timedelta(minutes=4) < job.run_at - job.created_at <= timedelta(minutes=5, seconds=1)
    assert app.get_job(job.id) == job

    when = datetime.now(UTC) + timedelta(days=1)
    at = add.options(run_at=when).enqueue(a=2)
    assert abs(at.run_at - when) < timedelta(milliseconds=1)
    assert app.get_job(at.id) == at


def test_enqueue_many_takes_dicts_and_tuples(make_app: MakeApp) -> None:
    app = make_app()
    add = add_task(app)
    jobs = add.enqueue_many([{"a": 1}, (2, 3), {"a": 4, "b": 5}])
    assert [j.args for j in jobs] == [{"a": 1}, {"a": 2, "b": 3}, {"a": 4, "b": 5}]
    assert [app.get_job(j.id) for j in jobs] == jobs
    assert add.enqueue_many([]) == []


def test_a_key_through_options_returns_the_unfinished_job(make_app: MakeApp) -> None:
    app = make_app()
    add = add_task(app)
    first = add.options(key="daily").enqueue(a=1)
    second = add.options(key="daily").enqueue(a=2)
    assert second == first
    app.cancel(first.id)
    third = add.options(key="daily").enqueue(a=3)
    assert third.id != first.id and third.args == {"a": 3}


def test_two_apps_on_one_store_see_the_same_jobs(make_app: MakeApp) -> None:
    producer, reader = make_app(), make_app()
    job = add_task(producer).enqueue(1)
    assert reader.get_job(job.id) == job
    assert reader.stats().by_queue["math"]["pending"] == 1


def test_cancel_retry_and_listing_through_the_app(make_app: MakeApp) -> None:
    app = make_app()
    add = add_task(app)
    jobs = [add.enqueue(i) for i in range(5)]
    cancelled = app.cancel(jobs[0].id)
    assert cancelled.status is Status.CANCELLED
    assert app.cancel(str(jobs[0].id)) == cancelled

    assert [j.id for j in app.list_jobs(status="cancelled").jobs] == [jobs[0].id]
    first = app.list_jobs(task="tests.add", queue="math", limit=2)
    assert [j.id for j in first.jobs] == [jobs[4].id, jobs[3].id]
    rest = app.list_jobs(task="tests.add", limit=10, cursor=first.next_cursor)
    assert [j.id for j in rest.jobs] == [jobs[2].id, jobs[1].id, jobs[0].id]
    assert rest.next_cursor is None
    assert app.list_jobs(view="scheduled").jobs == []

    retried = app.retry(jobs[0].id)
    assert retried.status is Status.PENDING and retried.attempt == 0
    with pytest.raises(InvalidTransition):
        app.retry(jobs[1].id)
    stats = app.stats()
    assert stats.by_status["pending"] == 5 and stats.total == 5
    with pytest.raises(ValueError, match="limit"):
        app.list_jobs(limit=0)


def test_unknown_ids_raise_job_not_found(make_app: MakeApp) -> None:
    app = make_app()
    missing = uuid.uuid4()
    assert app.get_job(missing) is None
    for call in (app.cancel, app.retry):
        with pytest.raises(JobNotFound, match=str(missing)):
            call(missing)
        with pytest.raises(JobNotFound, match="not a job id"):
            call("no-such-id")
    with pytest.raises(JobNotFound):
        app.wait(missing, timeout=1)


# --- files that are not underway databases (SQLite only: these are about the file) -----------


def _assert_clear_store_error(path: Path, call: Callable[[], object]) -> StoreError:
    with pytest.raises(StoreError) as info:
        call()
    error = info.value
    assert str(path) in str(error)
    shown = "".join(traceback.format_exception(error))
    assert "sqlite3." not in shown, f"a raw sqlite3 error leaks out:\n{shown}"
    return error


def _open_and_use(path: Path) -> Callable[[], object]:
    def use() -> object:
        with App(f"sqlite:///{path}") as app:
            add = add_task(app)
            return add.enqueue(1)

    return use


def _open_and_read(path: Path) -> Callable[[], object]:
    def read() -> object:
        with App(f"sqlite:///{path}") as app:
            return app.get_job(uuid.uuid4())

    return read


@pytest.mark.parametrize(
    "content",
    [
        random.Random(1).randbytes(8192),
        b"hello, I am a text file\n" * 50,
        b"SQLite format 3\x00" + random.Random(2).randbytes(4080),
    ],
    ids=["random-bytes", "text", "sqlite-header-then-garbage"],
)
def test_a_file_that_is_not_sqlite_gives_a_clear_store_error(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(content)
    error = _assert_clear_store_error(path, _open_and_use(path))
    assert "not a usable SQLite database" in str(error)
    _assert_clear_store_error(path, _open_and_read(path))
    assert path.read_bytes() == content  # underway did not write over someone's file


def test_a_truncated_database_gives_a_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    _open_and_use(path)()
    with path.open("r+b") as f:
        f.truncate(100)
    _assert_clear_store_error(path, _open_and_use(path))


def test_a_foreign_sqlite_database_with_a_clashing_table_gives_a_clear_store_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "other-app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE underway_jobs (something_else TEXT)")
    conn.close()
    error = _assert_clear_store_error(path, _open_and_use(path))
    assert "underway_jobs" in str(error)


def test_a_database_from_a_newer_underway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    _open_and_use(path)()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO underway_migrations VALUES (9999, 'future', 0)")
    conn.close()
    error = _assert_clear_store_error(path, _open_and_use(path))
    assert "upgrade underway" in str(error)


def test_a_directory_as_the_database_gives_a_clear_store_error(tmp_path: Path) -> None:
    _assert_clear_store_error(tmp_path, _open_and_use(tmp_path))
