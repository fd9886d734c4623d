"""Retries as a user sees them on the job: attempts, errors, the retry wait as a pending job,
Backoff and `Retry(delay=...)` delays, and the errors and signals that end a job at once."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import underway
from underway import App, Backoff, Status
from underway.testing import RunningWorker

MakeApp = Callable[..., App]
Drain = Callable[..., int]
StartWorker = Callable[..., RunningWorker]
WaitFor = Callable[..., object]

NO_WAIT = Backoff(base=0.0, jitter=False)


class Flaky(Exception):
    pass


def test_failing_twice_then_succeeding_ends_completed_on_attempt_three(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()
    attempts: list[int] = []

    @app.task(name="tests.flaky", max_attempts=5, retry=NO_WAIT)
    def flaky(ctx: underway.Context) -> str:
        attempts.append(ctx.job.attempt)
        if ctx.job.attempt < 3:
            raise Flaky(f"attempt {ctx.job.attempt} failed")
        return "third time lucky"

    job = flaky.enqueue()
    assert drain(app) == 3
    assert attempts == [1, 2, 3]

    done = app.get_job(job.id)
    assert done is not None
    assert done.status is Status.COMPLETED
    assert done.result == "third time lucky"
    assert done.attempt == 3
    assert done.error is None, f"a completed job still shows an old error: {done.error}"


def test_always_failing_ends_failed_after_max_attempts_with_the_error(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()
    runs: list[int] = []

    @app.task(name="tests.broken", max_attempts=3, retry=NO_WAIT)
    def broken(ctx: underway.Context, path: str) -> None:
        runs.append(ctx.job.attempt)
        raise ValueError(f"cannot read {path}")

    job = broken.enqueue("/nowhere")
    assert drain(app) == 3
    assert runs == [1, 2, 3]

    failed = app.get_job(job.id)
    assert failed is not None
    assert failed.status is Status.FAILED
    assert failed.attempt == 3 and failed.max_attempts == 3
    assert failed.completed_at is not None
    assert failed.error is not None
    assert failed.error.type == "ValueError"
    assert "cannot read /nowhere" in failed.error.message
    assert "Traceback" in failed.error.traceback
    assert 'raise ValueError(f"cannot read {path}")' in failed.error.traceback
    assert [j.id for j in app.list_jobs(status="failed").jobs] == [job.id]


def test_a_job_waiting_for_its_retry_is_pending_and_listed_as_retrying(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()

    @app.task(
        name="tests.later", max_attempts=3, retry=Backoff(base=3600.0, max=7200.0, jitter=False)
    )
    def later() -> None:
        raise Flaky("not yet")

    job = later.enqueue()
    other = later.options(delay=3600).enqueue()
    assert drain(app) == 1  # the retry is an hour away: the burst worker stops

    waiting = app.get_job(job.id)
    assert waiting is not None
    assert waiting.status is Status.PENDING
    assert waiting.attempt == 1
    assert waiting.error is not None and "not yet" in waiting.error.message
    assert waiting.started_at is None and waiting.completed_at is None
    assert waiting.run_at > app.store.now() + timedelta(minutes=55)
    assert [j.id for j in app.list_jobs(view="retrying").jobs] == [job.id]
    assert {j.id for j in app.list_jobs(view="scheduled").jobs} == {job.id, other.id}
    assert app.stats().retrying == 1


def test_backoff_delays_are_applied_between_attempts(
    fast_app: MakeApp, start_worker: StartWorker
) -> None:
    app = fast_app()
    seen: list[tuple[int, datetime, datetime | None]] = []  # attempt, run_at, started_at

    @app.task(name="tests.backing_off", max_attempts=3, retry=Backoff(0.3, 2.0, jitter=False))
    def backing_off(ctx: underway.Context) -> None:
        seen.append((ctx.job.attempt, ctx.job.run_at, ctx.job.started_at))
        raise Flaky(f"attempt {ctx.job.attempt}")

    job = backing_off.enqueue()
    worker = start_worker(app)
    failed = app.wait(job.id, timeout=20)
    worker.stop()

    assert failed.status is Status.FAILED and failed.attempt == 3
    assert [attempt for attempt, _, _ in seen] == [1, 2, 3]
    for attempt, run_at, started_at in seen:
        assert started_at is not None and started_at >= run_at, f"attempt {attempt} ran early"
    # Each retry was due no sooner than the Backoff delay after the failed attempt started.
    for (attempt, _, started), (_, next_run_at, _) in itertools.pairwise(seen):
        assert started is not None
        delay = Backoff(0.3, 2.0, jitter=False).delay(attempt)
        assert next_run_at - started >= timedelta(seconds=delay), (attempt, next_run_at, started)


def test_raise_retry_uses_its_own_delay(fast_app: MakeApp, start_worker: StartWorker) -> None:
    app = fast_app()
    seen: list[tuple[int, datetime, datetime | None]] = []

    # The task's own backoff is an hour: only Retry's delay lets the test finish.
    @app.task(
        name="tests.rate_limited", max_attempts=3, retry=Backoff(3600.0, max=7200.0, jitter=False)
    )
    def rate_limited(ctx: underway.Context) -> str:
        seen.append((ctx.job.attempt, ctx.job.run_at, ctx.job.started_at))
        if ctx.job.attempt == 1:
            raise underway.Retry(delay=timedelta(seconds=0.4), reason="rate limited")
        return "through"

    job = rate_limited.enqueue()
    worker = start_worker(app)
    done = app.wait(job.id, timeout=20)
    worker.stop()

    assert done.status is Status.COMPLETED and done.result == "through"
    assert done.attempt == 2
    [(_, _, first_start), (_, second_due, second_start)] = seen
    assert first_start is not None and second_start is not None
    assert second_due - first_start >= timedelta(seconds=0.4)
    assert second_due - first_start < timedelta(minutes=30)
    assert second_start >= second_due


def test_retry_error_is_shown_while_waiting(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.retry_later", max_attempts=2)
    def retry_later() -> None:
        raise underway.Retry(delay=3600, reason="the API said 429")

    job = retry_later.enqueue()
    assert drain(app) == 1
    waiting = app.get_job(job.id)
    assert waiting is not None
    assert waiting.status is Status.PENDING and waiting.attempt == 1
    assert waiting.error is not None and "the API said 429" in waiting.error.message
    assert waiting.run_at > app.store.now() + timedelta(minutes=55)


class BadInput(underway.PermanentError):
    pass


def test_permanent_errors_and_no_retry_on_fail_at_once(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.bad_input", max_attempts=4, retry=NO_WAIT)
    def bad_input() -> None:
        raise BadInput("the file is not a CSV")

    @app.task(name="tests.plain_permanent", max_attempts=4, retry=NO_WAIT)
    async def plain_permanent() -> None:
        raise underway.PermanentError("give up")

    @app.task(name="tests.missing_key", max_attempts=4, retry=NO_WAIT, no_retry_on=(KeyError,))
    def missing_key() -> None:
        raise KeyError("user 42")

    @app.task(name="tests.retried", max_attempts=2, retry=NO_WAIT, no_retry_on=(KeyError,))
    def retried() -> None:
        raise ValueError("retryable")

    jobs = [bad_input.enqueue(), plain_permanent.enqueue(), missing_key.enqueue()]
    other = retried.enqueue()
    assert drain(app) == 5

    expected = [
        ("BadInput", "the file is not a CSV"),
        ("PermanentError", "give up"),
        ("KeyError", "user 42"),
    ]
    for job, (error_type, text) in zip(jobs, expected, strict=True):
        failed = app.get_job(job.id)
        assert failed is not None
        assert failed.status is Status.FAILED
        assert failed.attempt == 1, f"{job.task} was retried"
        assert failed.error is not None
        assert failed.error.type == error_type
        assert text in failed.error.message
    retried_job = app.get_job(other.id)
    assert retried_job is not None
    assert retried_job.status is Status.FAILED and retried_job.attempt == 2


def test_raise_cancel_ends_the_job_cancelled(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.gives_up", max_attempts=4, retry=NO_WAIT)
    async def gives_up() -> None:
        raise underway.Cancel("the user deleted the campaign")

    job = gives_up.enqueue()
    assert drain(app) == 1
    cancelled = app.get_job(job.id)
    assert cancelled is not None
    assert cancelled.status is Status.CANCELLED
    assert cancelled.attempt == 1
    assert cancelled.completed_at is not None
    assert cancelled.error is not None
    assert cancelled.error.message == "the user deleted the campaign"


def test_the_worker_goes_on_after_failures(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()
    done = threading.Event()

    @app.task(name="tests.explodes", max_attempts=1)
    def explodes() -> None:
        raise RuntimeError("boom")

    @app.task(name="tests.fine")
    def fine() -> None:
        done.set()

    bad = explodes.enqueue()
    good = fine.enqueue()
    assert drain(app) == 2
    assert done.is_set()
    assert getattr(app.get_job(bad.id), "status", None) is Status.FAILED
    assert getattr(app.get_job(good.id), "status", None) is Status.COMPLETED
