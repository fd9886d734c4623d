"""App lifecycle around a worker (on_startup, on_shutdown, lifespan) and per-job dependencies
(`@app.task(deps=...)`, reached as `ctx.deps.name`): what opens when, what closes when, and what
a failure to open or close does to the job.

Every test runs once per store kind (SQLite file; PostgreSQL schema when configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import underway
from underway import testing

MakeApp = Callable[..., underway.App]


class Events:
    """An ordered record of what happened, from any thread."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._lock = threading.Lock()

    def add(self, event: str) -> None:
        with self._lock:
            self.items.append(event)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.items))


# --- lifecycle --------------------------------------------------------------------------------


def lifecycle_app(app: underway.App, events: Events) -> underway.Task[Any, Any]:
    @app.lifespan
    @contextlib.asynccontextmanager
    async def resources(app: underway.App) -> AsyncIterator[None]:
        events.add("lifespan:enter")
        app.state.pool = "pool"
        try:
            yield
        finally:
            events.add("lifespan:exit")
            app.state.pool = None

    @app.on_startup
    def open_client(app: underway.App) -> None:
        events.add("startup:sync")

    @app.on_startup
    async def warm_cache() -> None:
        await asyncio.sleep(0)
        events.add("startup:async")

    @app.on_shutdown
    async def close_client() -> None:
        events.add("shutdown:first")

    @app.on_shutdown
    def flush(app: underway.App) -> None:
        events.add("shutdown:second")

    @app.task(name="uses-pool")
    def uses_pool(n: int) -> str:
        events.add(f"job:{n}")
        return str(app.state.pool)

    return uses_pool


def test_startup_and_lifespan_wrap_every_worker_start(fast_app: MakeApp) -> None:
    events = Events()
    app = fast_app()
    task = lifecycle_app(app, events)
    jobs = task.enqueue_many([(1,), (2,), (3,)])
    assert testing.drain(app, concurrency=2) == 3
    assert testing.drain(app) == 0  # a second worker start, with nothing to do

    opening = ["lifespan:enter", "startup:sync", "startup:async"]
    closing = ["shutdown:first", "shutdown:second", "lifespan:exit"]
    run = list(events)
    assert run[:3] == opening
    assert sorted(run[3:6]) == ["job:1", "job:2", "job:3"]
    assert run[6:] == closing + opening + closing
    assert {app.get_job(j.id).result for j in jobs} == {"pool"}  # type: ignore[union-attr]


def test_a_running_worker_opens_before_its_first_job_and_closes_after_its_last(
    fast_app: MakeApp,
) -> None:
    events = Events()
    app = fast_app()
    task = lifecycle_app(app, events)
    with testing.worker(app):  # stopped (gracefully) and joined at the end of the block
        end = time.monotonic() + 10
        while "startup:async" not in events.items:
            assert time.monotonic() < end, "the worker never started"
            time.sleep(0.01)
        job = task.enqueue(7)
        assert app.wait(job.id, timeout=10).result == "pool"
    assert list(events) == [
        "lifespan:enter", "startup:sync", "startup:async", "job:7",
        "shutdown:first", "shutdown:second", "lifespan:exit",
    ]  # fmt: skip


@pytest.mark.parametrize("where", ["startup", "lifespan"])
def test_a_failing_startup_keeps_the_worker_from_taking_jobs(fast_app: MakeApp, where: str) -> None:
    events = Events()
    app = fast_app()
    task = lifecycle_app(app, events)
    if where == "startup":

        @app.on_startup
        def connect() -> None:
            raise ConnectionError("the cache is unreachable")

    else:

        @app.lifespan
        @contextlib.asynccontextmanager
        async def broken(app: underway.App) -> AsyncIterator[None]:
            raise ConnectionError("the cache is unreachable")
            yield

    jobs = task.enqueue_many([(1,), (2,)])
    with pytest.raises(ConnectionError, match="the cache is unreachable"):
        asyncio.run(underway.Worker(app).run(handle_signals=False))
    with pytest.raises(ConnectionError):
        testing.drain(app)
    for job in jobs:
        now = app.get_job(job.id)
        assert now is not None and (now.status, now.attempt) == ("pending", 0)
    assert not [e for e in events if e.startswith("job:")]
    # What had opened was closed again; shutdown hooks of a start that never happened do not run.
    assert list(events).count("lifespan:enter") == list(events).count("lifespan:exit") == 2
    assert "shutdown:first" not in list(events)


# --- per-job dependencies ---------------------------------------------------------------------


class Session:
    """A stand-in for a database session: commits when the job succeeds, rolls back when not."""

    opened = 0

    def __init__(self, events: Events, job_id: str) -> None:
        Session.opened += 1
        self.number = Session.opened
        self.events = events
        self.job_id = job_id

    def log(self, what: str) -> None:
        self.events.add(f"{what}:{self.job_id}")


def dependency_app(app: underway.App, events: Events) -> dict[str, underway.Task[Any, Any]]:
    def session(ctx: underway.Context) -> Iterator[Session]:
        s = Session(events, str(ctx.job.args["label"]))
        s.log("open")
        try:
            yield s
        except Exception as exc:
            s.log(f"rollback({exc})")
            raise
        else:
            s.log("commit")
        finally:
            s.log("close")

    class Lock:
        """A context manager class used as the factory."""

        def __enter__(self) -> Lock:
            events.add("lock:acquire")
            return self

        def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
            events.add(f"lock:release({kind.__name__ if kind else 'ok'})")

    async def http() -> AsyncIterator[str]:
        events.add("http:open")
        try:
            yield "client"
        finally:
            await asyncio.sleep(0)
            events.add("http:close")

    deps: dict[str, Callable[..., Any]] = {
        "db": session, "lock": Lock, "http": http, "answer": lambda: 42,
    }  # fmt: skip

    @app.task(name="sync-work", deps=deps, max_attempts=1)
    def sync_work(ctx: underway.Context, label: str, fail: bool = False) -> list[Any]:
        s = ctx.deps.db
        s.log("use")
        if fail:
            raise ValueError(f"bad row in {label}")
        return [s.number, ctx.deps["http"], ctx.deps.answer, type(ctx.deps.lock).__name__]

    @app.task(name="async-work", deps=deps, max_attempts=1)
    async def async_work(ctx: underway.Context, label: str, fail: bool = False) -> int:
        ctx.deps.db.log("use")
        await asyncio.sleep(0)
        if fail:
            raise ValueError(f"bad row in {label}")
        return int(ctx.deps.db.number)

    return {"sync": sync_work, "async": async_work}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_dependencies_open_per_job_and_close_after_it(fast_app: MakeApp, kind: str) -> None:
    events = Events()
    app = fast_app()
    task = dependency_app(app, events)[kind]
    a, b = task.enqueue(label="a"), task.enqueue(label="b")
    assert testing.drain(app) == 2

    done_a, done_b = app.get_job(a.id), app.get_job(b.id)
    assert done_a is not None and done_b is not None
    assert (done_a.status, done_b.status) == ("completed", "completed")
    if kind == "sync":
        assert done_a.result[1:] == ["client", 42, "Lock"]
        numbers = {done_a.result[0], done_b.result[0]}
    else:
        numbers = {done_a.result, done_b.result}
    assert len(numbers) == 2  # a session of its own for each job
    for label in ("a", "b"):
        mine = [e for e in events if e.endswith(f":{label}")]
        assert mine == [f"open:{label}", f"use:{label}", f"commit:{label}", f"close:{label}"]
    # opened in declaration order, closed in reverse, once per job
    assert list(events).count("http:open") == list(events).count("http:close") == 2
    assert list(events).count("lock:release(ok)") == 2
    first_job = list(events)[: list(events).index("close:a") + 1]
    assert (
        first_job.index("open:a") < first_job.index("lock:acquire") < first_job.index("http:open")
    )


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_failing_task_rolls_its_dependencies_back_and_still_closes_them(
    fast_app: MakeApp, kind: str
) -> None:
    events = Events()
    app = fast_app()
    task = dependency_app(app, events)[kind]
    job = task.enqueue(label="x", fail=True)
    assert testing.drain(app) == 1

    failed = app.get_job(job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None
    assert failed.error.type == "ValueError"  # the task's own error, not a dependency's
    assert "bad row in x" in failed.error.message
    mine = [e for e in events if e.endswith(":x")]
    assert mine == ["open:x", "use:x", "rollback(bad row in x):x", "close:x"]
    assert "lock:release(ValueError)" in events.items
    assert "http:close" in events.items


@pytest.mark.parametrize("style", ["plain", "generator", "async generator"])
def test_a_dependency_that_fails_to_open_fails_the_job_naming_it(
    fast_app: MakeApp, style: str
) -> None:
    events = Events()
    app = fast_app()

    def first() -> Iterator[str]:
        events.add("first:open")
        yield "first"
        events.add("first:close")

    def plain() -> str:
        raise ConnectionError("database is down")

    def generator() -> Iterator[str]:
        raise ConnectionError("database is down")
        yield "never"

    async def async_generator() -> AsyncIterator[str]:
        raise ConnectionError("database is down")
        yield "never"

    broken = {"plain": plain, "generator": generator, "async generator": async_generator}[style]

    @app.task(name="needs-db", deps={"first": first, "database": broken}, max_attempts=1)
    def needs_db(ctx: underway.Context) -> None:
        events.add("task ran")

    job = needs_db.enqueue()
    assert testing.drain(app) == 1
    failed = app.get_job(job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None
    assert "'database'" in failed.error.message
    assert "failed to open" in failed.error.message
    assert "database is down" in failed.error.message
    assert list(events) == ["first:open", "first:close"]  # opened ones are closed; no task


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_dependency_that_fails_to_close_fails_the_job(fast_app: MakeApp, kind: str) -> None:
    events = Events()
    app = fast_app()

    def buffer() -> Iterator[list[str]]:
        rows: list[str] = []
        yield rows
        events.add(f"flushing {len(rows)}")
        raise OSError("flush failed: disk full")

    if kind == "sync":

        @app.task(name="writer", deps={"out": buffer}, max_attempts=1)
        def writer(ctx: underway.Context) -> str:
            ctx.deps.out.append("row")
            return "written"

    else:

        @app.task(name="writer", deps={"out": buffer}, max_attempts=1)
        async def writer(ctx: underway.Context) -> str:
            ctx.deps.out.append("row")
            return "written"

    job = app.tasks["writer"].enqueue()
    assert testing.drain(app) == 1
    failed = app.get_job(job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None
    assert "failed to close" in failed.error.message
    assert "flush failed: disk full" in failed.error.message
    assert list(events) == ["flushing 1"]


def test_a_failing_dependency_is_retried_like_any_error(fast_app: MakeApp) -> None:
    app = fast_app()
    attempts: list[int] = []

    def flaky(ctx: underway.Context) -> str:
        attempts.append(ctx.job.attempt)
        if ctx.job.attempt < 2:
            raise ConnectionError("not yet")
        return "connected"

    @app.task(name="retrying", deps={"conn": flaky}, retry=underway.Backoff(base=0, jitter=False))
    def retrying(ctx: underway.Context) -> str:
        return str(ctx.deps.conn)

    job = retrying.enqueue()
    testing.drain(app)
    done = app.get_job(job.id)
    assert done is not None and (done.status, done.result, done.attempt) == (
        "completed", "connected", 2,
    )  # fmt: skip
    assert attempts == [1, 2]


def test_an_unknown_dependency_name_says_which_ones_exist(fast_app: MakeApp) -> None:
    app = fast_app()

    @app.task(name="typo", deps={"db": lambda: "db"}, max_attempts=1)
    def typo(ctx: underway.Context) -> Any:
        return ctx.deps.dbb

    job = typo.enqueue()
    testing.drain(app)
    failed = app.get_job(job.id)
    assert failed is not None and failed.error is not None
    assert "no dependency named 'dbb'" in failed.error.message
    assert "db" in failed.error.message
