"""Task timeouts: an async task is cancelled, a sync task sees `ctx.cancelled`; either way the
attempt counts as a failure of type "Timeout" that names the timeout."""

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


def test_an_async_task_over_its_timeout_fails_with_a_timeout_error(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()
    interrupted = threading.Event()

    @app.task(name="tests.slow_async", timeout=0.2, max_attempts=1)
    async def slow_async() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            interrupted.set()
            raise
        return "too late"

    job = slow_async.enqueue()
    assert drain(app) == 1

    failed = app.get_job(job.id)
    assert failed is not None
    assert failed.status is Status.FAILED
    assert failed.result is None
    assert failed.error is not None
    assert failed.error.type == "Timeout"
    assert "timed out after 0.2 s" in failed.error.message
    assert "timeout" in failed.error.message
    assert interrupted.is_set(), "the task was not cancelled at its timeout"


def test_a_timed_out_attempt_is_retried_like_any_failure(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()
    attempts: list[int] = []

    @app.task(name="tests.slow_once", timeout=0.2, max_attempts=3, retry=Backoff(0.0, jitter=False))
    async def slow_once(ctx: underway.Context) -> int:
        attempts.append(ctx.job.attempt)
        if ctx.job.attempt == 1:
            await asyncio.sleep(5)
        return ctx.job.attempt

    job = slow_once.enqueue()
    assert drain(app) == 2

    done = app.get_job(job.id)
    assert done is not None
    assert done.status is Status.COMPLETED and done.result == 2
    assert attempts == [1, 2]


def test_a_sync_task_over_its_timeout_sees_cancelled_and_the_failure_is_recorded(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    app = fast_app()
    saw_cancel = threading.Event()
    reasons: list[str | None] = []

    @app.task(name="tests.slow_sync", timeout=0.2, max_attempts=1)
    def slow_sync(ctx: underway.Context) -> str:
        deadline = time.monotonic() + 10  # only bounds a hang
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        if ctx.cancelled:
            reasons.append(ctx.cancel_reason)
            saw_cancel.set()
        return "stopped early"

    job = slow_sync.enqueue()
    worker = start_worker(app)
    failed = app.wait(job.id, timeout=15)
    assert saw_cancel.wait(10), "the sync task never saw ctx.cancelled"
    worker.stop()

    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error.type == "Timeout"
    assert "timed out after 0.2 s" in failed.error.message
    assert reasons == ["timeout"]
    again = app.get_job(job.id)
    assert again is not None and again.status is Status.FAILED and again.result is None


def test_a_sync_task_that_ignores_its_timeout_keeps_its_slot_until_it_returns(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    """The failure is recorded at the timeout; with concurrency 1 the next job waits until the
    stubborn thread has really returned."""
    app = fast_app()
    release = threading.Event()
    order: list[str] = []

    @app.task(name="tests.stubborn", timeout=0.2, max_attempts=1)
    def stubborn() -> None:
        release.wait(10)
        order.append("stubborn returned")

    @app.task(name="tests.next_one")
    def next_one() -> None:
        order.append("next ran")

    slow = stubborn.enqueue()
    following = next_one.enqueue()
    worker = start_worker(app, concurrency=1)
    failed = app.wait(slow.id, timeout=15)
    assert failed.status is Status.FAILED
    assert failed.error is not None and failed.error.type == "Timeout"
    pending = app.get_job(following.id)
    assert pending is not None and pending.status is Status.PENDING
    release.set()
    done = app.wait(following.id, timeout=15)
    worker.stop()
    assert done.status is Status.COMPLETED
    assert order == ["stubborn returned", "next ran"]
