"""Completing a job in the task's own transaction on PostgreSQL (`ctx.complete_in`): the task's
effect and the job's completion commit together or not at all.

Each test has its own schema; a `charges` table in it stands for the task's own rows (a coin
deduction, say), written on the task's own psycopg connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

import underway
from underway import App, ConfigurationError, Context, Job, LeaseLost
from underway.completion import InTransaction
from underway.stores import Store
from underway.stores.messages import Outcome
from underway.testing import drain

MakeApp = Callable[..., App]
WaitFor = Callable[..., Any]


@pytest.fixture
def app(make_app: MakeApp, conninfo: str, schema: str) -> App:
    app = make_app()
    app.migrate()
    with psycopg.connect(conninfo, autocommit=True) as setup:
        setup.execute(
            sql.SQL("CREATE TABLE {}.charges (job_id uuid, amount integer)").format(
                sql.Identifier(schema)
            )
        )
    return app


@pytest.fixture
def connect(conninfo: str) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """`connect()` -> a connection of the task's own (not autocommit), closed at teardown."""
    opened: list[psycopg.Connection[Any]] = []

    def make() -> psycopg.Connection[Any]:
        opened.append(psycopg.connect(conninfo))
        return opened[-1]

    yield make
    for conn in opened:
        conn.close()


def charge(conn: psycopg.Connection[Any], schema: str, ctx: Context, amount: int) -> None:
    conn.execute(
        sql.SQL("INSERT INTO {}.charges (job_id, amount) VALUES (%s, %s)").format(
            sql.Identifier(schema)
        ),
        (ctx.job.id, amount),
    )


def charges(conninfo: str, schema: str) -> list[int]:
    """The charges committed so far, as a fresh connection sees them."""
    with psycopg.connect(conninfo, autocommit=True) as c:
        rows = c.execute(
            sql.SQL("SELECT amount FROM {}.charges ORDER BY amount").format(sql.Identifier(schema))
        ).fetchall()
    return [row[0] for row in rows]


def finished(app: App, job: Job) -> Job:
    current = app.get_job(job.id)
    assert current is not None
    return current


def outcomes(app: App, job: Job) -> list[str | None]:
    return [a.outcome for a in app.attempts(job.id)]


def completed_count(app: App, task: str) -> int:
    return sum(c.completed for c in app.store.counters() if c.task == task)


# --- the effect and the completion commit together ----------------------------------------------


def test_the_completion_commits_with_the_effect_and_the_worker_writes_nothing_more(
    app: App, connect: Callable[[], psycopg.Connection[Any]], conninfo: str, schema: str
) -> None:
    @app.task(name="tests.charge")
    def charge_once(ctx: Context, amount: int) -> str:
        conn = connect()
        ctx.report_progress(1.0, "charged")
        with conn.transaction():
            charge(conn, schema, ctx, amount)
            ctx.complete_in(conn, result={"charged": amount})
        return "the worker's result, never written"

    job = charge_once.enqueue(5)
    assert drain(app) == 1

    done = finished(app, job)
    assert (done.status, done.result, done.attempt) == ("completed", {"charged": 5}, 1)
    assert (done.progress, done.status_message) == (1.0, "charged")
    assert done.completed_at is not None
    assert charges(conninfo, schema) == [5]
    assert outcomes(app, job) == ["completed"]
    assert completed_count(app, "tests.charge") == 1


def test_an_error_after_the_commit_leaves_the_job_completed(
    app: App, connect: Callable[[], psycopg.Connection[Any]], conninfo: str, schema: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    @app.task(name="tests.charge_then_crash", max_attempts=3)
    def charge_then_crash(ctx: Context) -> None:
        conn = connect()
        with conn.transaction():
            charge(conn, schema, ctx, 7)
            ctx.complete_in(conn, result="charged")
        raise RuntimeError("crashed after the commit")

    job = charge_then_crash.enqueue()
    assert drain(app) == 1
    done = finished(app, job)
    assert (done.status, done.result, done.error) == ("completed", "charged", None)
    assert charges(conninfo, schema) == [7]
    assert outcomes(app, job) == ["completed"]
    assert "failed after its transaction completed the job" in caplog.text
    assert "crashed after the commit" in caplog.text


def test_a_rolled_back_transaction_leaves_the_normal_path(
    app: App, connect: Callable[[], psycopg.Connection[Any]], conninfo: str, schema: str
) -> None:
    @app.task(name="tests.declined", max_attempts=2)
    def declined(ctx: Context) -> str:
        conn = connect()
        try:
            with conn.transaction():
                charge(conn, schema, ctx, ctx.job.attempt)
                ctx.complete_in(conn, result="charged")
                if ctx.job.attempt == 1:
                    raise RuntimeError("card declined")
        except RuntimeError:
            raise underway.Retry(delay=0) from None
        return "unused: the second attempt's transaction completed the job"

    job = declined.enqueue()
    assert drain(app) == 2
    done = finished(app, job)
    assert (done.status, done.result, done.attempt) == ("completed", "charged", 2)
    assert charges(conninfo, schema) == [2]  # the first attempt's charge rolled back
    assert outcomes(app, job) == ["retry", "completed"]


def test_without_complete_in_the_task_s_return_value_completes_it_as_ever(
    app: App, connect: Callable[[], psycopg.Connection[Any]], conninfo: str, schema: str
) -> None:
    @app.task(name="tests.rolled_back")
    def rolled_back(ctx: Context) -> str:
        conn = connect()
        with conn.transaction(force_rollback=True):
            ctx.complete_in(conn, result="charged")
        return "returned"

    job = rolled_back.enqueue()
    assert drain(app) == 1
    done = finished(app, job)
    assert (done.status, done.result) == ("completed", "returned")
    assert outcomes(app, job) == ["completed"]


def test_an_async_task_completes_on_its_async_connection(
    app: App, conninfo: str, schema: str
) -> None:
    @app.task(name="tests.async_charge")
    async def async_charge(ctx: Context, amount: int) -> None:
        async with await psycopg.AsyncConnection.connect(conninfo) as conn, conn.transaction():
            await conn.execute(
                sql.SQL("INSERT INTO {}.charges (job_id, amount) VALUES (%s, %s)").format(
                    sql.Identifier(schema)
                ),
                (ctx.job.id, amount),
            )
            async with conn.cursor() as cur:
                await ctx.complete_in_async(cur, result=amount)

    job = async_charge.enqueue(3)
    assert drain(app) == 1
    done = finished(app, job)
    assert (done.status, done.result) == ("completed", 3)
    assert charges(conninfo, schema) == [3]
    assert outcomes(app, job) == ["completed"]


# --- refusals ----------------------------------------------------------------------------------


def test_an_autocommit_connection_outside_a_transaction_is_refused(
    app: App, conninfo: str, schema: str
) -> None:
    errors: list[str] = []

    @app.task(name="tests.autocommit")
    def autocommit(ctx: Context) -> str:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            try:
                ctx.complete_in(conn, result="x")
            except ConfigurationError as exc:
                errors.append(str(exc))
        return "normal"

    job = autocommit.enqueue()
    assert drain(app) == 1
    assert finished(app, job).result == "normal"
    assert len(errors) == 1 and "conn.transaction()" in errors[0]


def test_a_connection_that_is_not_psycopg_is_refused(app: App) -> None:
    @app.task(name="tests.wrong_connection", max_attempts=1)
    def wrong(ctx: Context) -> None:
        ctx.complete_in(object(), result=1)

    job = wrong.enqueue()
    drain(app)
    done = finished(app, job)
    assert done.status == "failed"
    assert (
        done.error is not None and "takes a psycopg Connection or its cursor" in done.error.message
    )


def lost_lease(store: Store, wait_for: WaitFor) -> tuple[Job, str]:
    """A job whose first lease ran out and was rescued and claimed again: the first token."""
    first = store.claim("w1", None, 1)[0]
    # No heartbeat comes (the worker "died"): the 0.2 s lease runs out and a rescue takes it.
    rescued = wait_for(lambda: store.rescue(max_rescues=5), what="the lease to run out")
    assert [j.id for j in rescued] == [first.job.id]
    again = store.claim("w2", None, 1, suspects=True)[0]  # a rescued job is a suspect
    assert again.token != first.token
    return first.job, first.token


def test_a_lost_lease_raises_and_the_effect_rolls_back(
    make_app: MakeApp, connect: Callable[[], psycopg.Connection[Any]], conninfo: str, schema: str,
    app: App, wait_for: WaitFor,
) -> None:  # fmt: skip
    short = make_app(lease_seconds=0.2, heartbeat_seconds=0.05)

    @short.task(name="tests.lease")
    def lease() -> None: ...

    enqueued = lease.enqueue()
    job, token = lost_lease(short.store, wait_for)
    ctx = Context(job, completion=InTransaction(short.store, job.id, token))
    conn = connect()
    with pytest.raises(LeaseLost, match="roll back"), conn.transaction():
        charge(conn, schema, ctx, 9)
        ctx.complete_in(conn, result="late")
    assert charges(conninfo, schema) == []
    current = finished(short, enqueued)
    assert (current.status, current.attempt) == ("running", 2)
    # the store verb itself says so without raising
    assert not short.store.complete_on(conn, Outcome.completed(job.id, token, "1"))  # type: ignore[attr-defined]


def test_a_context_without_a_worker_cannot_complete(app: App, connect: Callable[[], Any]) -> None:
    @app.task(name="tests.direct")
    def direct(ctx: Context) -> None: ...

    job = direct.enqueue()
    with pytest.raises(ConfigurationError, match="no worker behind it"):
        Context(job).complete_in(connect(), result=None)
