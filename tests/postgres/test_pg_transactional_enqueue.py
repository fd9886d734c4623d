"""Transactional enqueue on PostgreSQL: `task.options(connection=...)` writes the job in the
caller's own transaction, on a sync Connection or Cursor or an AsyncConnection or AsyncCursor.

The guarantee: the job exists only if that transaction commits. Until then no other connection
sees it (another App, a worker); after a rollback nothing is left; after the commit a worker
runs it. Each test has its own schema, and a table of "orders" in it stands for the user's own
rows written in the same transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import underway
from underway import App, ConfigurationError, Job, Task, UnderwayError

MakeApp = Callable[..., App]
WaitFor = Callable[..., Any]


def register(app: App) -> Task[[int], int]:
    @app.task(name="tests.double", max_attempts=1)
    def double(n: int) -> int:
        return n * 2

    return double


def drain(app: App) -> int:
    """Run a burst worker on `app` until no job is due; how many jobs it ran."""
    return asyncio.run(underway.Worker(app, burst=True).drain())


@pytest.fixture
def apps(make_app: MakeApp) -> tuple[App, App]:
    """Two apps on this test's schema: `app` enqueues, `other` looks and works (another
    process, as far as PostgreSQL can tell: its own connections)."""
    app, other = make_app(), make_app()
    register(other)
    app.migrate()
    return app, other


@pytest.fixture
def double(apps: tuple[App, App]) -> Task[[int], int]:
    return register(apps[0])


@pytest.fixture
def conn(conninfo: str, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """The user's own connection (not autocommit: a transaction starts at the first
    statement), with an `orders` table of theirs in the test's schema."""
    with psycopg.connect(conninfo, autocommit=True) as setup:
        setup.execute(
            sql.SQL("CREATE TABLE {}.orders (id integer PRIMARY KEY)").format(
                sql.Identifier(schema)
            )
        )
    connection = psycopg.connect(conninfo)
    try:
        yield connection
    finally:
        connection.close()


def insert_order(conn: psycopg.Connection[Any], schema: str, order_id: int) -> None:
    conn.execute(
        sql.SQL("INSERT INTO {}.orders (id) VALUES (%s)").format(sql.Identifier(schema)),
        (order_id,),
    )


def orders(conninfo: str, schema: str) -> list[int]:
    """The orders committed so far, as a fresh connection sees them."""
    with psycopg.connect(conninfo, autocommit=True) as c:
        rows = c.execute(
            sql.SQL("SELECT id FROM {}.orders ORDER BY id").format(sql.Identifier(schema))
        ).fetchall()
    return [row[0] for row in rows]


def blocked_on_a_lock(conninfo: str, schema: str) -> bool:
    """Some connection waits on a lock of this schema's jobs table (a second producer)."""
    with psycopg.connect(conninfo, autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND query LIKE %s",
            (f"%{schema}%underway_jobs%",),
        ).fetchone()
    return row is not None and row[0] > 0


def assert_invisible(other: App, *jobs: Job) -> None:
    """No job of `jobs` exists for anyone outside the transaction, and a worker finds
    nothing to run."""
    for job in jobs:
        assert other.get_job(job.id) is None
    assert other.list_jobs().jobs == []
    assert other.stats().total == 0
    assert drain(other) == 0


def finished(other: App, job: Job) -> Job:
    current = other.get_job(job.id)
    assert current is not None, f"job {job.id} does not exist"
    return current


# --- sync: Connection and Cursor --------------------------------------------------------------


def test_a_job_enqueued_on_a_connection_exists_only_after_commit(
    apps: tuple[App, App],
    double: Task[[int], int],
    conn: psycopg.Connection[Any],
    schema: str,
    conninfo: str,
) -> None:
    app, other = apps
    insert_order(conn, schema, 1)
    job = double.options(connection=conn).enqueue(21)
    assert (job.status, job.task, job.args) == ("pending", "tests.double", {"n": 21})

    # Inside the transaction the caller sees its own job...
    row = conn.execute(
        sql.SQL("SELECT status FROM {}.underway_jobs WHERE id = %s").format(sql.Identifier(schema)),
        (job.id,),
    ).fetchone()
    assert row == ("pending",)
    # ...nobody else does, not even the app that enqueued it, and no worker runs it.
    assert app.get_job(job.id) is None
    assert_invisible(other, job)

    conn.commit()
    assert orders(conninfo, schema) == [1]
    assert finished(other, job).status == "pending"
    assert drain(other) == 1
    done = finished(other, job)
    assert (done.status, done.result) == ("completed", 42)


def test_a_rollback_leaves_neither_the_job_nor_the_users_rows(
    apps: tuple[App, App],
    double: Task[[int], int],
    conn: psycopg.Connection[Any],
    schema: str,
    conninfo: str,
) -> None:
    _, other = apps
    insert_order(conn, schema, 1)
    job = double.options(connection=conn).enqueue(1)
    conn.rollback()

    assert orders(conninfo, schema) == []
    assert_invisible(other, job)


def test_an_exception_in_a_transaction_block_rolls_the_job_back(
    apps: tuple[App, App], double: Task[[int], int], conn: psycopg.Connection[Any], schema: str
) -> None:
    _, other = apps
    enqueued: list[Job] = []
    with pytest.raises(RuntimeError, match="payment declined"), conn.transaction():
        insert_order(conn, schema, 7)
        enqueued.append(double.options(connection=conn).enqueue(7))
        raise RuntimeError("payment declined")
    assert_invisible(other, *enqueued)

    with conn.transaction():
        insert_order(conn, schema, 8)
        kept = double.options(connection=conn).enqueue(8)
    assert finished(other, kept).status == "pending"
    assert drain(other) == 1
    assert finished(other, kept).result == 16


def test_a_job_enqueued_on_a_cursor_follows_its_connections_transaction(
    apps: tuple[App, App],
    double: Task[[int], int],
    conn: psycopg.Connection[Any],
    schema: str,
    conninfo: str,
) -> None:
    _, other = apps
    with conn.cursor() as cur:
        cur.execute(sql.SQL("INSERT INTO {}.orders (id) VALUES (3)").format(sql.Identifier(schema)))
        job = double.options(connection=cur).enqueue(3)
        # the cursor stays usable for the caller's own statements afterwards
        cur.execute(sql.SQL("SELECT count(*) FROM {}.orders").format(sql.Identifier(schema)))
        assert cur.fetchone() == (1,)
    assert_invisible(other, job)
    conn.commit()

    assert orders(conninfo, schema) == [3]
    assert drain(other) == 1
    assert finished(other, job).result == 6

    with conn.cursor() as cur:
        dropped = double.options(connection=cur).enqueue(4)
    conn.rollback()
    assert other.get_job(dropped.id) is None


def test_enqueue_many_on_a_connection_is_all_or_nothing(
    apps: tuple[App, App], double: Task[[int], int], conn: psycopg.Connection[Any]
) -> None:
    _, other = apps
    jobs = double.options(connection=conn).enqueue_many([(1,), (2,), {"n": 3}])
    assert len(jobs) == 3
    assert_invisible(other, *jobs)
    conn.rollback()
    assert_invisible(other, *jobs)

    jobs = double.options(connection=conn).enqueue_many([(i,) for i in range(250)])
    assert other.stats().total == 0
    conn.commit()
    assert other.stats().by_status["pending"] == 250
    assert drain(other) == 250
    assert sorted(finished(other, j).result for j in jobs) == [i * 2 for i in range(250)]


def test_prepared_items_on_a_connection_are_all_or_nothing_each_with_its_tenant(
    apps: tuple[App, App], double: Task[[int], int], conn: psycopg.Connection[Any]
) -> None:
    _, other = apps
    items = [double.options(tenant=t, key=f"double:{t}").prepare(n) for n, t in enumerate("ab")]
    jobs = double.options(connection=conn).enqueue_many([*items, (7,)])
    assert_invisible(other, *jobs)
    conn.rollback()
    assert_invisible(other, *jobs)
    jobs = double.options(connection=conn).enqueue_many(items)
    conn.commit()
    assert [(j.tenant, j.key) for j in jobs] == [("a", "double:a"), ("b", "double:b")]
    assert [other.get_job(j.id) for j in jobs] == jobs


def test_an_autocommit_connection_commits_the_job_at_once(
    apps: tuple[App, App], double: Task[[int], int], conninfo: str
) -> None:
    _, other = apps
    with psycopg.connect(conninfo, autocommit=True) as auto:
        job = double.options(connection=auto).enqueue(5)
        assert finished(other, job).status == "pending"
    assert drain(other) == 1


def test_a_commit_wakes_a_waiting_worker(
    make_app: MakeApp,
    double: Task[[int], int],
    conn: psycopg.Connection[Any],
    schema: str,
    conninfo: str,
    wait_for: WaitFor,
) -> None:
    """A worker idling in its poll (30 s here, longer than the 15 s the test waits, so only
    the notification sent at commit can wake it in time) picks the job up once the
    transaction commits, not before."""
    worker_app = make_app(poll_seconds=30)
    register(worker_app)
    worker = underway.Worker(worker_app, concurrency=2)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run(handle_signals=False)))
    thread.start()
    try:
        channel = f"underway:{schema}"

        def listening() -> bool:
            with psycopg.connect(conninfo, autocommit=True) as c:
                row = c.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s",
                    (f'LISTEN "{channel}"%',),
                ).fetchone()
            return row is not None and row[0] > 0

        wait_for(listening, timeout=20, what="the worker to listen for new jobs")
        job = double.options(connection=conn).enqueue(50)
        assert worker_app.get_job(job.id) is None
        conn.commit()

        def done() -> Job | None:
            current = worker_app.get_job(job.id)
            return current if current is not None and current.status == "completed" else None

        assert wait_for(done, timeout=15, what="the worker to run the committed job").result == 100
    finally:
        worker.stop()
        # Known worker bug: Worker._wait_for_work clears its wake-up event after awaiting
        # next_due, so a stop that lands during that call waits for the poll to end.
        thread.join(timeout=60)
    assert not thread.is_alive()


# --- unique keys inside a transaction -------------------------------------------------------


def test_a_key_enqueued_twice_in_one_transaction_is_one_job(
    apps: tuple[App, App], double: Task[[int], int], conn: psycopg.Connection[Any]
) -> None:
    _, other = apps
    first = double.options(connection=conn, key="order:1").enqueue(1)
    second = double.options(connection=conn, key="order:1").enqueue(2)
    assert second.id == first.id and second.args == {"n": 1}
    assert_invisible(other, first)
    conn.commit()

    assert [j.id for j in other.list_jobs().jobs] == [first.id]
    # outside the transaction, the committed job holds the key
    assert double.options(key="order:1").enqueue(3).id == first.id


def test_a_key_held_by_an_open_transaction_waits_for_its_outcome(
    apps: tuple[App, App],
    double: Task[[int], int],
    conn: psycopg.Connection[Any],
    conninfo: str,
    schema: str,
    wait_for: WaitFor,
) -> None:
    """Another producer enqueueing the same key while the transaction is open waits for it:
    after a commit it gets the committed job; after a rollback it inserts its own."""
    app, other = apps

    for outcome in ("commit", "rollback"):
        key = f"order:{outcome}"
        held = double.options(connection=conn, key=key).enqueue(1)
        got: list[Job] = []

        def produce(key: str = key, into: list[Job] = got) -> None:
            into.append(double.options(key=key).enqueue(2))

        producer = threading.Thread(target=produce)
        producer.start()
        wait_for(lambda: blocked_on_a_lock(conninfo, schema), timeout=20,
                 what="the second producer to wait on the key")  # fmt: skip
        conn.commit() if outcome == "commit" else conn.rollback()
        producer.join(timeout=20)
        assert not producer.is_alive()

        [job] = got
        mine = [j for j in other.list_jobs(limit=10).jobs if j.key == key]
        if outcome == "commit":
            assert job.id == held.id and job.args == {"n": 1}
        else:
            assert job.id != held.id and job.args == {"n": 2}
        assert [j.id for j in mine] == [job.id]
    assert app.get_job(held.id) is None  # the rolled-back one


def test_a_chosen_id_an_open_transaction_holds_is_refused_once_it_commits(
    apps: tuple[App, App],
    double: Task[[int], int],
    conn: psycopg.Connection[Any],
    conninfo: str,
    schema: str,
    wait_for: WaitFor,
) -> None:
    """The look-up cannot see an uncommitted job, so the insert waits on the primary key;
    once the holder commits, the second producer gets JobExists, never the driver's error."""
    ident = uuid.uuid4()
    held = double.options(connection=conn, id=ident).enqueue(1)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            double.options(id=ident).enqueue(2)
        except BaseException as exc:
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    wait_for(lambda: blocked_on_a_lock(conninfo, schema), timeout=20,
             what="the second producer to wait on the id")  # fmt: skip
    conn.commit()
    producer.join(timeout=20)
    assert not producer.is_alive()
    [error] = errors
    assert isinstance(error, underway.JobExists), repr(error)
    assert f"a job with id {ident} already exists" in str(error)
    stored = apps[1].get_job(ident)
    assert stored is not None and stored.args == {"n": 1} and held.id == ident


# --- async: AsyncConnection and AsyncCursor ---------------------------------------------------


def test_async_connection_commit_and_rollback(
    apps: tuple[App, App],
    double: Task[[int], int],
    conn: psycopg.Connection[Any],
    conninfo: str,
    schema: str,
) -> None:
    _, other = apps
    insert = sql.SQL("INSERT INTO {}.orders (id) VALUES (%s)").format(sql.Identifier(schema))

    async def scenario() -> tuple[Job, Job]:
        async with await psycopg.AsyncConnection.connect(conninfo) as aconn:
            await aconn.execute(insert, (1,))
            kept = await double.options(connection=aconn).enqueue_async(10)
            assert kept.status == "pending"
            assert await other.get_job_async(kept.id) is None
            assert (await other.stats_async()).total == 0
            assert await underway.Worker(other, burst=True).drain() == 0
            await aconn.commit()
            assert await other.get_job_async(kept.id) is not None

            await aconn.execute(insert, (2,))
            dropped = await double.options(connection=aconn).enqueue_async(11)
            assert await other.get_job_async(dropped.id) is None
            await aconn.rollback()
            assert await underway.Worker(other, burst=True).drain() == 1
        return kept, dropped

    kept, dropped = asyncio.run(scenario())
    assert orders(conninfo, schema) == [1]
    assert finished(other, kept).result == 20
    assert other.get_job(dropped.id) is None
    assert other.stats().total == 1


def test_async_cursor_follows_its_connections_transaction(
    apps: tuple[App, App], double: Task[[int], int], conninfo: str
) -> None:
    _, other = apps

    async def scenario() -> list[Job]:
        async with await psycopg.AsyncConnection.connect(conninfo) as aconn:
            async with aconn.cursor() as acur:
                kept = await double.options(connection=acur).enqueue_async(1)
                assert await other.get_job_async(kept.id) is None
                assert await underway.Worker(other, burst=True).drain() == 0
            await aconn.commit()
            async with aconn.cursor() as acur:
                dropped = await double.options(connection=acur).enqueue_async(2)
            await aconn.rollback()
            async with aconn.transaction():
                also = await double.options(connection=aconn).enqueue_async(3)
                assert await other.get_job_async(also.id) is None
        return [kept, dropped, also]

    kept, dropped, also = asyncio.run(scenario())
    assert other.get_job(dropped.id) is None
    assert drain(other) == 2
    assert (finished(other, kept).result, finished(other, also).result) == (2, 6)


def test_async_key_in_a_transaction(
    apps: tuple[App, App], double: Task[[int], int], conninfo: str
) -> None:
    _, other = apps

    async def scenario() -> tuple[Job, Job, Job]:
        async with await psycopg.AsyncConnection.connect(conninfo) as aconn:
            first = await double.options(connection=aconn, key="k").enqueue_async(1)
            again = await double.options(connection=aconn, key="k").enqueue_async(2)
            await aconn.commit()
            later = await double.options(connection=aconn, key="k").enqueue_async(3)
            await aconn.rollback()
        return first, again, later

    first, again, later = asyncio.run(scenario())
    assert again.id == first.id and later.id == first.id
    assert [j.id for j in other.list_jobs().jobs] == [first.id]
    assert finished(other, first).args == {"n": 1}


# --- clear errors ---------------------------------------------------------------------------


def test_connection_needs_the_postgresql_store(tmp_path: Path, conninfo: str) -> None:
    app = App(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        double = register(app)
        with psycopg.connect(conninfo) as pg, sqlite3.connect(tmp_path / "mine.db") as lite:
            for connection in (pg, lite):
                with pytest.raises(ConfigurationError, match="needs the PostgreSQL store"):
                    double.options(connection=connection).enqueue(1)
                with pytest.raises(ConfigurationError, match="needs the PostgreSQL store"):
                    double.options(connection=connection).enqueue_many([(1,)])

        async def in_async_code() -> None:
            aconn = await psycopg.AsyncConnection.connect(conninfo)
            try:
                with pytest.raises(ConfigurationError, match="needs the PostgreSQL store"):
                    await double.options(connection=aconn).enqueue_async(1)
            finally:
                await aconn.close()

        asyncio.run(in_async_code())
        assert app.stats().total == 0
    finally:
        app.close()


def test_an_object_that_is_not_a_psycopg_connection_is_refused(
    apps: tuple[App, App], double: Task[[int], int], conninfo: str, tmp_path: Path
) -> None:
    _, other = apps
    with sqlite3.connect(tmp_path / "mine.db") as lite:
        for wrong in (object(), "postgresql://localhost/db", lite):
            with pytest.raises(UnderwayError, match="psycopg Connection or Cursor") as caught:
                double.options(connection=wrong).enqueue(1)
            assert type(wrong).__name__ in str(caught.value)

    async def mixed_up() -> None:
        aconn = await psycopg.AsyncConnection.connect(conninfo)
        try:
            # an async connection handed to the blocking enqueue: use enqueue_async
            with pytest.raises(UnderwayError, match="enqueue_async"):
                double.options(connection=aconn).enqueue(1)
        finally:
            await aconn.close()
        with psycopg.connect(conninfo) as sync_conn:
            with pytest.raises(UnderwayError, match="AsyncConnection or AsyncCursor"):
                await double.options(connection=sync_conn).enqueue_async(1)
            with pytest.raises(UnderwayError, match="AsyncConnection or AsyncCursor"):
                await double.options(connection=object()).enqueue_async(1)

    asyncio.run(mixed_up())
    assert other.stats().total == 0
