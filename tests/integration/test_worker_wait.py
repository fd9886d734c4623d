"""`app.wait` and the async twins (`enqueue_async`, `get_job_async`, `wait_async`, ...), with a
worker in a thread or on the caller's own event loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

import underway
from underway import App, Status
from underway.testing import RunningWorker

MakeApp = Callable[..., App]
Drain = Callable[..., int]
StartWorker = Callable[..., RunningWorker]


def test_wait_returns_the_finished_job(fast_app: MakeApp, start_worker: StartWorker) -> None:
    app = fast_app()

    @app.task(name="tests.square")
    def square(n: int) -> int:
        return n * n

    @app.task(name="tests.fail", max_attempts=1)
    def fail() -> None:
        raise ValueError("no")

    worker = start_worker(app, concurrency=2)
    ok, bad = square.enqueue(7), fail.enqueue()
    done = app.wait(ok.id, timeout=10)
    failed = app.wait(str(bad.id), timeout=10)
    worker.stop()

    assert done.status is Status.COMPLETED and done.result == 49
    assert done == app.get_job(ok.id)
    assert failed.status is Status.FAILED and failed == app.get_job(bad.id)
    assert app.wait(ok.id, timeout=0) == done  # already finished: returns at once


def test_wait_raises_job_timeout_while_the_job_is_unfinished(fast_app: MakeApp) -> None:
    app = fast_app()

    @app.task(name="tests.noop")
    def noop() -> None:
        pass

    job = noop.enqueue()  # no worker runs
    with pytest.raises(underway.JobTimeout, match="pending") as raised:
        app.wait(job.id, timeout=0.2)
    assert str(job.id) in str(raised.value)
    assert isinstance(raised.value, underway.UnderwayError)
    with pytest.raises(underway.JobNotFound):
        app.wait(uuid.uuid4(), timeout=0.2)


def test_async_twins_with_a_worker_on_the_same_event_loop(fast_app: MakeApp) -> None:
    app = fast_app()

    @app.task(name="tests.greet")
    async def greet(ctx: underway.Context, name: str, punctuation: str = "!") -> str:
        ctx.report_progress(1.0, "greeted")
        return f"hello {name}{punctuation}"

    @app.task(name="tests.later")
    def later() -> None:
        pass

    async def main() -> None:
        job = await greet.enqueue_async("ada")
        assert job.status is Status.PENDING and job.args == {"name": "ada"}
        keyed = await greet.options(key="greet:bob", priority=3).enqueue_async("bob", "?")
        assert (keyed.key, keyed.priority) == ("greet:bob", 3)
        fetched = await app.get_job_async(job.id)
        assert fetched == job
        many = await greet.enqueue_many_async([{"name": "x"}, ("y", ".")])
        delayed = await later.options(delay=3600).enqueue_async()

        worker = underway.Worker(app, concurrency=4)
        running = asyncio.create_task(worker.run(handle_signals=False))
        try:
            done = await app.wait_async(job.id, timeout=10)
            done_keyed = await app.wait_async(str(keyed.id), timeout=10)
            done_many = [await app.wait_async(j.id, timeout=10) for j in many]
            with pytest.raises(underway.JobTimeout):
                await app.wait_async(delayed.id, timeout=0.2)
        finally:
            worker.stop()
            await asyncio.wait_for(running, 10)

        assert done.status is Status.COMPLETED and done.result == "hello ada!"
        assert (done.progress, done.status_message) == (1.0, "greeted")
        assert done_keyed.result == "hello bob?"
        assert [j.result for j in done_many] == ["hello x!", "hello y."]

        page = await app.list_jobs_async(status="completed")
        assert {j.id for j in page.jobs} == {job.id, keyed.id, *(j.id for j in many)}
        stats = await app.stats_async()
        assert stats.by_status["completed"] == 4 and stats.by_status["pending"] == 1
        cancelled = await app.cancel_async(delayed.id)
        assert cancelled.status is Status.CANCELLED
        retried = await app.retry_async(delayed.id)
        assert retried.status is Status.PENDING and retried.attempt == 0
        with pytest.raises(underway.JobNotFound):
            await app.wait_async(uuid.uuid4(), timeout=0.2)
        assert await app.get_job_async(uuid.uuid4()) is None

    asyncio.run(main())


def test_drain_returns_how_many_jobs_it_processed(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.noop")
    async def noop(n: int) -> int:
        return n

    assert drain(app) == 0
    noop.enqueue_many([(n,) for n in range(25)])
    assert drain(app, concurrency=5) == 25
    assert app.stats().by_status["completed"] == 25
    assert drain(app) == 0
