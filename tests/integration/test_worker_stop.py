"""Stopping a worker in-process: running jobs finish within the grace period or are handed
back as pending without spending an attempt; `stop(now=True)` hands them back at once. Also: a
job of a task this worker does not know fails clearly and the worker goes on."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import underway
from underway import App, Status
from underway.testing import RunningWorker

MakeApp = Callable[..., App]
Drain = Callable[..., int]
StartWorker = Callable[..., RunningWorker]


def long_async_task(
    app: App, started: threading.Event, interrupted: threading.Event
) -> underway.Task[..., Any]:
    @app.task(name="tests.long_async", max_attempts=3)
    async def long_async() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.set()
            raise
        return "finished"

    return long_async


def assert_handed_back(app: App, job_id: uuid.UUID) -> None:
    job = app.get_job(job_id)
    assert job is not None
    assert job.status is Status.PENDING, job
    assert job.attempt == 0, "a hand-back must not spend an attempt"
    assert job.started_at is None and job.completed_at is None
    assert job.error is None
    assert job.run_at <= app.store.now()  # due again at once


def test_stop_hands_a_long_job_back_after_the_grace_period(
    fast_app: MakeApp, start_worker: StartWorker, drain: Drain
) -> None:
    app = fast_app(shutdown_grace_seconds=0.2)
    started, interrupted = threading.Event(), threading.Event()
    task = long_async_task(app, started, interrupted)
    job = task.enqueue()

    worker = start_worker(app)
    assert started.wait(10)
    worker.stop()  # graceful: 0.2 s for the job, then it is handed back
    assert interrupted.is_set()
    assert_handed_back(app, job.id)

    # Another worker picks it up again as its first attempt (and the test ends it quickly).
    started.clear()
    other = start_worker(app)
    assert started.wait(10)
    running = app.get_job(job.id)
    assert running is not None and running.status is Status.RUNNING and running.attempt == 1
    other.stop(now=True)
    assert_handed_back(app, job.id)


def test_stop_now_hands_running_jobs_back_without_waiting_for_the_grace(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    # A grace far longer than the join timeout below: only stop(now=True) can end it in time.
    app = fast_app(shutdown_grace_seconds=120.0)
    started, interrupted = threading.Event(), threading.Event()
    task = long_async_task(app, started, interrupted)
    job = task.enqueue()

    worker = start_worker(app)
    assert started.wait(10)
    worker.stop(now=True, timeout=10)
    assert interrupted.is_set()
    assert_handed_back(app, job.id)


def test_a_second_stop_with_now_cuts_the_grace_short(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    app = fast_app(shutdown_grace_seconds=120.0)
    started, interrupted = threading.Event(), threading.Event()
    task = long_async_task(app, started, interrupted)
    job = task.enqueue()

    worker = start_worker(app)
    assert started.wait(10)
    worker.worker.stop()  # graceful, with two minutes to go
    worker.stop(now=True, timeout=10)  # like a second SIGTERM
    assert_handed_back(app, job.id)


def test_a_job_that_finishes_within_the_grace_period_completes(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    app = fast_app(shutdown_grace_seconds=30.0)
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    @app.task(name="tests.finishing")
    async def finishing() -> str:
        started.set()
        deadline = time.monotonic() + 10  # only bounds a hang
        while not release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return "made it"

    @app.task(name="tests.not_started")
    def not_started() -> None:
        ran.append("not started")

    job = finishing.enqueue()
    worker = start_worker(app, concurrency=1)
    assert started.wait(10)
    waiting = not_started.enqueue()
    worker.worker.stop()
    release.set()
    worker.join(timeout=10)

    done = app.get_job(job.id)
    assert done is not None and done.status is Status.COMPLETED and done.result == "made it"
    untouched = app.get_job(waiting.id)
    assert untouched is not None and untouched.status is Status.PENDING, "claimed while stopping"
    assert ran == []


def test_stop_now_tells_a_sync_job_to_stop_and_hands_it_back(
    fast_app: MakeApp, start_worker: StartWorker, drain: Drain
) -> None:
    app = fast_app(shutdown_grace_seconds=120.0)
    started = threading.Event()
    reasons: list[str | None] = []
    returned = threading.Event()

    @app.task(name="tests.long_sync")
    def long_sync(ctx: underway.Context) -> str:
        if ctx.job.attempt > 1 or returned.is_set():
            return "second run"
        started.set()
        ctx.wait_cancelled(10)
        reasons.append(ctx.cancel_reason)
        returned.set()
        return "stopped"

    job = long_sync.enqueue()
    worker = start_worker(app)
    assert started.wait(10)
    worker.stop(now=True, timeout=10)
    assert returned.wait(10)
    assert reasons == ["shutdown"]
    assert_handed_back(app, job.id)

    assert drain(app) == 1
    done = app.get_job(job.id)
    assert done is not None and done.status is Status.COMPLETED
    assert done.result == "second run" and done.attempt == 1


def test_stop_before_the_worker_started_ends_it_at_once(fast_app: MakeApp) -> None:
    app = fast_app()

    @app.task(name="tests.noop")
    def noop() -> None:
        pass

    job = noop.enqueue()
    worker = underway.Worker(app)
    worker.stop()
    asyncio.run(worker.run(handle_signals=False))
    assert worker.processed == 0
    assert getattr(app.get_job(job.id), "status", None) is Status.PENDING


def test_an_unregistered_task_fails_clearly_and_the_worker_goes_on(
    fast_app: MakeApp, drain: Drain
) -> None:
    producer = fast_app()
    consumer = fast_app()

    def register_known(app: App) -> underway.Task[[int], int]:
        @app.task(name="tests.known")
        def known(n: int) -> int:
            return n * 10

        return known

    producer_known = register_known(producer)
    register_known(consumer)

    @producer.task(name="tests.only_in_the_producer", max_attempts=5)
    def only_in_the_producer() -> None:
        pass

    unknown_job = only_in_the_producer.enqueue()
    known_job = producer_known.enqueue(4)
    assert drain(consumer, concurrency=1) == 2

    failed = consumer.get_job(unknown_job.id)
    assert failed is not None
    assert failed.status is Status.FAILED
    assert failed.attempt == 1, "retrying cannot help a worker that lacks the task"
    assert failed.error is not None
    assert "not registered" in failed.error.message
    assert "tests.only_in_the_producer" in failed.error.message
    assert "tests.known" in failed.error.message  # what this worker does have
    done = consumer.get_job(known_job.id)
    assert done is not None and done.status is Status.COMPLETED and done.result == 40

    # Once a worker that has the task runs, a retry succeeds.
    producer.retry(unknown_job.id)
    assert drain(producer) == 1
    assert getattr(producer.get_job(unknown_job.id), "status", None) is Status.COMPLETED


def test_stored_arguments_that_no_longer_fit_fail_clearly(fast_app: MakeApp, drain: Drain) -> None:
    old = fast_app()
    new = fast_app()

    @old.task(name="tests.resize")
    def resize_v1(path: str, width: int) -> None:
        pass

    @new.task(name="tests.resize")
    def resize_v2(path: str, size: tuple[int, int]) -> None:
        pass

    job = resize_v1.enqueue("a.png", 100)
    assert drain(new) == 1
    failed = new.get_job(job.id)
    assert failed is not None and failed.status is Status.FAILED and failed.attempt == 1
    assert failed.error is not None
    assert "no longer fit" in failed.error.message and "tests.resize" in failed.error.message
