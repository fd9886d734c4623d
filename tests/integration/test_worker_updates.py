"""`app.on_update`: a subscriber sees a job's snapshots in order (enqueued, running, progress,
finished); a failing subscriber is logged and changes nothing; unsubscribing stops the calls."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

import underway
from underway import App, Backoff, Job, Status
from underway.testing import RunningWorker

MakeApp = Callable[..., App]
Drain = Callable[..., int]
StartWorker = Callable[..., RunningWorker]


def statuses(snapshots: list[Job], job_id: object) -> list[Status]:
    """The job's statuses in the order seen, repeats (progress snapshots) collapsed."""
    seen: list[Status] = []
    for snapshot in snapshots:
        if snapshot.id == job_id and (not seen or seen[-1] is not snapshot.status):
            seen.append(snapshot.status)
    return seen


def test_a_subscriber_sees_pending_running_and_completed_in_order(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()
    snapshots: list[Job] = []
    app.on_update(snapshots.append)

    @app.task(name="tests.add")
    def add(a: int, b: int) -> int:
        return a + b

    job = add.enqueue(2, 3)
    assert drain(app) == 1

    assert statuses(snapshots, job.id) == [Status.PENDING, Status.RUNNING, Status.COMPLETED]
    mine = [s for s in snapshots if s.id == job.id]
    assert mine[0] == job
    assert mine[1].attempt == 1 and mine[1].started_at is not None
    assert mine[-1].result == 5 and mine[-1].completed_at is not None
    stored = app.get_job(job.id)
    assert stored is not None
    assert (mine[-1].status, mine[-1].result, mine[-1].attempt) == (
        stored.status,
        stored.result,
        stored.attempt,
    )


def test_a_subscriber_sees_progress_between_running_and_the_end(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    app = fast_app()
    snapshots: list[Job] = []
    progress_seen = threading.Event()

    def watch(job: Job) -> None:
        snapshots.append(job)
        if job.progress == 0.5 and job.status is Status.RUNNING:
            progress_seen.set()

    app.on_update(watch)

    @app.task(name="tests.two_halves")
    def two_halves(ctx: underway.Context) -> None:
        ctx.report_progress(0.5, "first half")
        progress_seen.wait(10)  # hold on until the flush was seen
        ctx.report_progress(1.0, "second half")

    job = two_halves.enqueue()
    worker = start_worker(app)
    done = app.wait(job.id, timeout=10)
    worker.stop()
    assert done.status is Status.COMPLETED
    mine = [(s.status, s.progress, s.status_message) for s in snapshots if s.id == job.id]
    assert mine[0] == (Status.PENDING, None, None)
    assert (Status.RUNNING, 0.5, "first half") in mine
    assert mine[-1] == (Status.COMPLETED, 1.0, "second half")
    assert mine.index((Status.RUNNING, 0.5, "first half")) < len(mine) - 1


def test_a_subscriber_sees_retries_failures_and_cancels(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()
    snapshots: list[Job] = []
    app.on_update(snapshots.append)

    @app.task(name="tests.fails", max_attempts=2, retry=Backoff(0.0, jitter=False))
    def fails() -> None:
        raise ValueError("nope")

    @app.task(name="tests.never_runs")
    def never_runs() -> None:
        pass

    failing = fails.enqueue()
    cancelled = never_runs.enqueue()
    app.cancel(cancelled.id)
    assert drain(app) == 2

    assert statuses(snapshots, failing.id) == [
        Status.PENDING,
        Status.RUNNING,
        Status.PENDING,
        Status.RUNNING,
        Status.FAILED,
    ]
    last = [s for s in snapshots if s.id == failing.id][-1]
    assert last.error is not None and "nope" in last.error.message
    assert statuses(snapshots, cancelled.id) == [Status.PENDING, Status.CANCELLED]


def test_a_failing_subscriber_is_logged_and_does_not_affect_the_job(
    fast_app: MakeApp, drain: Drain, caplog: pytest.LogCaptureFixture
) -> None:
    app = fast_app()
    snapshots: list[Job] = []

    def broken(job: Job) -> None:
        raise RuntimeError("subscriber bug")

    app.on_update(broken)
    app.on_update(snapshots.append)

    @app.task(name="tests.double")
    async def double(ctx: underway.Context, n: int) -> int:
        ctx.report_progress(1.0)
        return 2 * n

    with caplog.at_level(logging.ERROR, logger="underway"):
        job = double.enqueue(21)
        assert drain(app) == 1

    done = app.get_job(job.id)
    assert done is not None and done.status is Status.COMPLETED and done.result == 42
    assert statuses(snapshots, job.id) == [Status.PENDING, Status.RUNNING, Status.COMPLETED]
    failures = [r for r in caplog.records if "on_update callback" in r.getMessage()]
    assert len(failures) >= 3, [r.getMessage() for r in caplog.records]
    assert all(str(job.id) in r.getMessage() for r in failures)
    assert all(r.exc_info and "subscriber bug" in str(r.exc_info[1]) for r in failures)


def test_unsubscribing_stops_the_calls(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()
    snapshots: list[Job] = []
    unsubscribe = app.on_update(snapshots.append)

    @app.task(name="tests.noop")
    def noop() -> None:
        pass

    first = noop.enqueue()
    unsubscribe()
    unsubscribe()  # twice is harmless
    second = noop.enqueue()
    assert drain(app) == 2
    assert [s.id for s in snapshots] == [first.id]
    assert getattr(app.get_job(second.id), "status", None) is Status.COMPLETED
