"""Cancelling jobs in-process: a pending job never runs; a running async job is cancelled; a
running sync job that polls `ctx.cancelled` ends cancelled, not failed; a cancel that arrives
while the job would otherwise be retried still ends it cancelled."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import underway
from underway import App, Backoff, Status
from underway.testing import RunningWorker

MakeApp = Callable[..., App]
Drain = Callable[..., int]
StartWorker = Callable[..., RunningWorker]
WaitFor = Callable[..., object]


def test_a_cancelled_pending_job_never_runs(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()
    ran: list[int] = []

    @app.task(name="tests.record")
    def record(n: int) -> None:
        ran.append(n)

    doomed = record.enqueue(1)
    kept = record.enqueue(2)
    assert app.cancel(doomed.id).status is Status.CANCELLED
    assert drain(app) == 1
    assert ran == [2]

    cancelled = app.get_job(doomed.id)
    assert cancelled is not None
    assert cancelled.status is Status.CANCELLED
    assert cancelled.started_at is None and cancelled.attempt == 0
    assert getattr(app.get_job(kept.id), "status", None) is Status.COMPLETED


def test_a_running_async_job_is_cancelled(fast_app: MakeApp, start_worker: StartWorker) -> None:
    app = fast_app()
    started = threading.Event()
    interrupted = threading.Event()

    @app.task(name="tests.long_async", max_attempts=3)
    async def long_async() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.set()
            raise
        return "finished"

    job = long_async.enqueue()
    worker = start_worker(app)
    assert started.wait(10), "the job never started"
    assert getattr(app.get_job(job.id), "status", None) is Status.RUNNING
    app.cancel(job.id)

    cancelled = app.wait(job.id, timeout=10)
    assert worker.alive, "the worker stopped after a cancel"
    worker.stop()
    assert interrupted.is_set()
    assert cancelled.status is Status.CANCELLED
    assert cancelled.attempt == 1 and cancelled.result is None
    assert cancelled.started_at is not None and cancelled.completed_at is not None


def test_a_running_sync_job_that_polls_cancelled_ends_cancelled(
    fast_app: MakeApp, start_worker: StartWorker, wait_for: WaitFor
) -> None:
    app = fast_app()
    started = threading.Event()
    steps: list[int] = []

    @app.task(name="tests.long_sync", max_attempts=3)
    def long_sync(ctx: underway.Context) -> int:
        started.set()
        deadline = time.monotonic() + 10  # only bounds a hang
        step = 0
        while not ctx.cancelled and time.monotonic() < deadline:
            step += 1
            time.sleep(0.01)
        steps.append(step)
        return step  # returning normally after a cancel must not count as completed

    job = long_sync.enqueue()
    worker = start_worker(app)
    assert started.wait(10)
    app.cancel(job.id)

    cancelled = app.wait(job.id, timeout=10)
    assert cancelled.status is Status.CANCELLED, cancelled
    assert cancelled.result is None
    assert cancelled.attempt == 1
    wait_for(lambda: steps, what="the sync task to return after seeing ctx.cancelled")
    worker.stop()


def test_a_cancelled_sync_job_shows_cancelled_only_once_its_cleanup_is_done(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    """As an async task's `finally` runs before its outcome: whoever sees the job cancelled
    (a browser, a caller checking for a partial file) finds the task's cleanup done, within
    the grace a stopping job gets (shutdown_grace_seconds)."""
    app = fast_app(shutdown_grace_seconds=5.0)
    started = threading.Event()
    cleaned: list[str] = []

    @app.task(name="tests.cleans_up")
    def cleans_up(ctx: underway.Context) -> None:
        started.set()
        ctx.wait_cancelled(10)
        time.sleep(0.5)  # removing a partial file, say
        cleaned.append("done")

    job = cleans_up.enqueue()
    worker = start_worker(app)
    assert started.wait(10)
    app.cancel(job.id)
    assert app.wait(job.id, timeout=10).status is Status.CANCELLED
    assert cleaned == ["done"]
    worker.stop()


def test_a_cancelled_sync_job_keeps_its_slot_until_its_thread_returns(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    """As with a timeout: the thread cannot be killed, so once the cancel's grace has run out
    and the job is recorded cancelled, with concurrency 1 the next job must still not start
    while the cancelled task is winding down."""
    app = fast_app(shutdown_grace_seconds=0.2)
    started = threading.Event()
    release = threading.Event()
    order: list[str] = []

    @app.task(name="tests.slow_to_stop")
    def slow_to_stop(ctx: underway.Context) -> None:
        started.set()
        ctx.wait_cancelled(10)
        release.wait(10)  # cleaning up after the cancel takes longer than the grace
        order.append("cancelled task returned")

    @app.task(name="tests.next_job")
    async def next_job() -> None:
        order.append("next job ran")

    first = slow_to_stop.enqueue()
    worker = start_worker(app, concurrency=1)
    assert started.wait(10)
    second = next_job.enqueue()
    app.cancel(first.id)
    assert app.wait(first.id, timeout=10).status is Status.CANCELLED
    release.set()
    assert app.wait(second.id, timeout=10).status is Status.COMPLETED
    worker.stop()
    assert order == ["cancelled task returned", "next job ran"]


def test_a_sync_job_that_raises_after_seeing_cancelled_ends_cancelled(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    app = fast_app()
    started = threading.Event()

    @app.task(name="tests.raises_on_cancel", max_attempts=5, retry=Backoff(0.0, jitter=False))
    def raises_on_cancel(ctx: underway.Context) -> None:
        started.set()
        if ctx.wait_cancelled(10):
            raise RuntimeError("interrupted half way")

    job = raises_on_cancel.enqueue()
    worker = start_worker(app)
    assert started.wait(10)
    app.cancel(job.id)

    cancelled = app.wait(job.id, timeout=10)
    worker.stop()
    assert cancelled.status is Status.CANCELLED, cancelled
    assert cancelled.attempt == 1


def test_a_cancel_arriving_while_the_job_would_be_retried_ends_it_cancelled(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    """The task fails right after the cancel request, possibly before the worker's heartbeat
    has seen it: the retry must not undo the cancel."""
    app = fast_app(heartbeat_seconds=0.5, lease_seconds=2.0)
    started = threading.Event()
    go = threading.Event()
    attempts: list[int] = []

    @app.task(name="tests.fails_after_cancel", max_attempts=5, retry=Backoff(0.0, jitter=False))
    def fails_after_cancel(ctx: underway.Context) -> None:
        attempts.append(ctx.job.attempt)
        started.set()
        go.wait(10)
        raise ConnectionError("the upstream went away")

    job = fails_after_cancel.enqueue()
    worker = start_worker(app)
    assert started.wait(10)
    app.cancel(job.id)
    go.set()

    cancelled = app.wait(job.id, timeout=10)
    worker.stop()
    assert cancelled.status is Status.CANCELLED, cancelled
    assert attempts == [1], "the job ran again after it was cancelled"
    assert cancelled.completed_at is not None


def test_cancelling_a_job_waiting_for_its_retry(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()
    attempts: list[int] = []

    @app.task(
        name="tests.retry_soon", max_attempts=5, retry=Backoff(3600.0, max=7200.0, jitter=False)
    )
    def retry_soon(ctx: underway.Context) -> None:
        attempts.append(ctx.job.attempt)
        raise ConnectionError("later")

    job = retry_soon.enqueue()
    assert drain(app) == 1
    waiting = app.get_job(job.id)
    assert waiting is not None and waiting.status is Status.PENDING and waiting.attempt == 1

    assert app.cancel(job.id).status is Status.CANCELLED
    assert drain(app) == 0
    cancelled = app.get_job(job.id)
    assert cancelled is not None and cancelled.status is Status.CANCELLED
    assert attempts == [1]


def test_the_worker_goes_on_after_a_cancel(fast_app: MakeApp, start_worker: StartWorker) -> None:
    app = fast_app()
    started = threading.Event()

    @app.task(name="tests.blocker")
    async def blocker() -> None:
        started.set()
        await asyncio.sleep(30)

    @app.task(name="tests.quick")
    def quick(n: int) -> int:
        return n + 1

    long_job = blocker.enqueue()
    worker = start_worker(app, concurrency=1)
    assert started.wait(10)
    follow_up = quick.enqueue(41)
    app.cancel(long_job.id)
    done = app.wait(follow_up.id, timeout=10)
    worker.stop()
    assert done.status is Status.COMPLETED and done.result == 42
    assert getattr(app.get_job(long_job.id), "status", None) is Status.CANCELLED
