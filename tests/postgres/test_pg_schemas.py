"""Schemas on PostgreSQL: apps on two schemas of one database share nothing, the schema can be
named in the URL or by the `schema` setting (any valid name, quoted), and migrating is
idempotent and safe when several processes do it at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

import underway
from underway import App, JobNotFound, StoreError, Task
from underway.stores.postgres.store import MIGRATIONS, _split_url

#: every migration this underway knows, by number (numbers need not be contiguous)
KNOWN = [version for version, _, _ in MIGRATIONS]

NewSchemaUrl = Callable[..., str]


def register(app: App) -> Task[[int], int]:
    @app.task(name="tests.square", queue="maths")
    def square(n: int) -> int:
        return n * n

    return square


def drain(app: App) -> int:
    return asyncio.run(underway.Worker(app, burst=True).drain())


def open_app(url: str, **settings: Any) -> App:
    app = App(url, **settings)
    register(app)
    return app


def schema_of(url: str) -> str:
    schema = _split_url(url)[1]
    assert schema is not None
    return schema


def test_apps_on_two_schemas_never_see_each_others_jobs(new_schema_url: NewSchemaUrl) -> None:
    with open_app(new_schema_url()) as a, open_app(new_schema_url()) as b:
        square_a, square_b = a.tasks["tests.square"], b.tasks["tests.square"]
        a_jobs = [square_a.enqueue(i) for i in range(3)]
        b_job = square_b.enqueue(10)
        # the same unique key in both schemas: two different jobs
        a_keyed = square_a.options(key="nightly").enqueue(4)
        b_keyed = square_b.options(key="nightly").enqueue(5)
        assert a_keyed.id != b_keyed.id

        assert {j.id for j in a.list_jobs().jobs} == {j.id for j in [*a_jobs, a_keyed]}
        assert {j.id for j in b.list_jobs().jobs} == {b_job.id, b_keyed.id}
        assert a.get_job(b_job.id) is None and b.get_job(a_jobs[0].id) is None
        assert (a.stats().total, b.stats().total) == (4, 2)
        with pytest.raises(JobNotFound):
            a.cancel(b_job.id)

        # queue controls are per schema
        b.pause_queue("maths")
        assert [(q.name, q.paused) for q in a.queues()] == [("maths", False)]
        assert [(q.name, q.paused) for q in b.queues()] == [("maths", True)]

        # a worker on one schema runs only that schema's jobs
        assert drain(a) == 4
        assert b.stats().by_status == {
            "pending": 2,
            "running": 0,
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
        }
        b.resume_queue("maths")
        assert drain(b) == 2
        assert (job := b.get_job(b_job.id)) is not None and job.result == 100

        # pruning one schema leaves the other alone
        assert a.prune(older_than=0) == 4
        assert b.stats().by_status["completed"] == 2


def test_the_schema_setting_and_the_url_parameter_name_the_same_schema(
    new_schema_url: NewSchemaUrl,
) -> None:
    url = new_schema_url()
    schema = schema_of(url)
    bare = url.split("?schema=")[0] if "&schema=" not in url else url.split("&schema=")[0]
    with open_app(url) as by_url, open_app(bare, schema=schema) as by_setting:
        job = by_url.tasks["tests.square"].enqueue(3)
        seen = by_setting.get_job(job.id)
        assert seen is not None and seen.args == {"n": 3}
        assert drain(by_setting) == 1
        assert (done := by_url.get_job(job.id)) is not None and done.result == 9


@pytest.mark.parametrize(
    "prefix",
    ['Odd "Schema"-', "ünïcode schema ", "a" * 50],
    ids=["quotes-and-case", "unicode-and-space", "longest-name"],
)
def test_any_valid_schema_name_works(new_schema_url: NewSchemaUrl, prefix: str) -> None:
    """Names that need quoting, and names up to PostgreSQL's limit of 63 bytes, work for
    everything: migrate, enqueue (which notifies workers on a channel named after the schema),
    a worker's wake-ups, claims and pruning."""
    url = new_schema_url(prefix)
    schema = schema_of(url)
    assert len(schema.encode()) <= 63, "the test itself must use a valid name"
    with open_app(url, poll_seconds=0.05) as app:
        assert app.migrate() >= 1
        job = app.tasks["tests.square"].enqueue(7)
        assert app.get_job(job.id) is not None
        assert drain(app) == 1
        assert (done := app.get_job(job.id)) is not None and done.result == 49
        with psycopg.connect(_split_url(url)[0], autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchone()
        assert row is not None and row[0] >= 2


def test_migrate_is_idempotent_and_keeps_jobs(new_schema_url: NewSchemaUrl) -> None:
    url = new_schema_url()
    with open_app(url) as app:
        version = app.migrate()
        job = app.tasks["tests.square"].enqueue(2)
        assert app.migrate() == version
    with open_app(url) as again:
        assert again.migrate() == version
        assert again.get_job(job.id) is not None
        with psycopg.connect(_split_url(url)[0], autocommit=True) as conn:
            rows = conn.execute(
                sql.SQL("SELECT version FROM {}.underway_migrations ORDER BY version").format(
                    sql.Identifier(schema_of(url))
                )
            ).fetchall()
        assert [r[0] for r in rows] == KNOWN and version == KNOWN[-1]


@pytest.mark.parametrize("round_", range(4))
def test_migrating_from_two_threads_at_once_is_safe(
    new_schema_url: NewSchemaUrl, round_: int
) -> None:
    """Two processes starting together on an empty schema (here: two apps, each with its own
    connections, in two threads released at the same moment) both end up on the latest
    version, each migration applied once."""
    url = new_schema_url()
    apps = [open_app(url), open_app(url)]
    start = threading.Barrier(len(apps))
    results: list[int | BaseException] = []

    def migrate(app: App) -> None:
        start.wait()
        try:
            results.append(app.migrate())
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=migrate, args=(app,)) for app in apps]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert len(results) == 2 and all(isinstance(r, int) for r in results), results
        assert results[0] == results[1]
        with psycopg.connect(_split_url(url)[0], autocommit=True) as conn:
            rows = conn.execute(
                sql.SQL("SELECT version FROM {}.underway_migrations").format(
                    sql.Identifier(schema_of(url))
                )
            ).fetchall()
        assert sorted(r[0] for r in rows) == KNOWN and results[0] == KNOWN[-1]
        job = apps[0].tasks["tests.square"].enqueue(round_)
        assert apps[1].get_job(job.id) is not None
    finally:
        for app in apps:
            app.close()


def test_a_schema_dropped_under_a_running_app_is_a_clear_error(
    new_schema_url: NewSchemaUrl,
) -> None:
    url = new_schema_url()
    with open_app(url) as app:
        app.tasks["tests.square"].enqueue(1)
        with psycopg.connect(_split_url(url)[0], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema_of(url))))
        with pytest.raises(StoreError, match="underway migrate"):
            app.stats()
        assert app.migrate() >= 1  # migrate brings it back, empty
        assert app.stats().total == 0
