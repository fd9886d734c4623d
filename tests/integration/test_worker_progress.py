"""Progress, status messages and payloads: coalesced while the task reports in a tight loop,
visible through `app.get_job` while the job runs, and final on the finished job."""

from __future__ import annotations

import threading
from collections.abc import Callable

import underway
from underway import App, Job, Status
from underway.testing import RunningWorker

MakeApp = Callable[..., App]
Drain = Callable[..., int]
StartWorker = Callable[..., RunningWorker]
WaitFor = Callable[..., object]

CALLS = 100_000


def test_a_tight_progress_loop_is_written_once_per_flush_not_per_call(
    fast_app: MakeApp, drain: Drain
) -> None:
    app = fast_app()
    snapshots: list[Job] = []
    app.on_update(snapshots.append)

    @app.task(name="tests.busy")
    def busy(ctx: underway.Context, n: int) -> int:
        for i in range(n):
            ctx.report_progress((i + 1) / n, f"step {i + 1} of {n}")
        ctx.set_payload({"rows": n, "file": "out.csv"})
        return n

    job = busy.enqueue(CALLS)
    assert drain(app) == 1

    done = app.get_job(job.id)
    assert done is not None
    assert done.status is Status.COMPLETED and done.result == CALLS
    assert done.progress == 1.0
    assert done.status_message == f"step {CALLS} of {CALLS}"
    assert done.payload == {"rows": CALLS, "file": "out.csv"}

    mine = [s for s in snapshots if s.id == job.id]
    progress_writes = [s for s in mine if s.status is Status.RUNNING and s.progress is not None]
    # One snapshot per flush (every 0.05 s), however many calls the task made.
    assert len(progress_writes) < CALLS // 100, f"{len(progress_writes)} progress writes"
    assert mine[-1].status is Status.COMPLETED
    assert mine[-1].progress == 1.0 and mine[-1].payload == {"rows": CALLS, "file": "out.csv"}


def test_progress_is_visible_while_the_job_runs(
    fast_app: MakeApp, start_worker: StartWorker, wait_for: WaitFor
) -> None:
    app = fast_app()
    release = threading.Event()

    @app.task(name="tests.halfway", max_attempts=1)
    def halfway(ctx: underway.Context) -> str:
        ctx.report_progress(0.5, "halfway there")
        ctx.set_payload({"seen": 50})
        release.wait(10)
        ctx.report_status("finishing")
        return "done"

    job = halfway.enqueue()
    assert job.progress is None and job.payload is None
    worker = start_worker(app)

    def progress_seen() -> Job | None:
        # The first report is written at once, the payload set just after it with the next
        # write: wait until both have landed.
        current = app.get_job(job.id)
        landed = current is not None and (current.progress or 0) > 0 and current.payload
        return current if landed else None

    running = wait_for(progress_seen, what="progress to show while the job runs")
    assert isinstance(running, Job)
    assert running.status is Status.RUNNING
    assert running.progress == 0.5
    assert running.status_message == "halfway there"
    assert running.payload == {"seen": 50}

    release.set()
    done = app.wait(job.id, timeout=10)
    worker.stop()
    assert done.status is Status.COMPLETED and done.result == "done"
    assert done.progress == 0.5
    assert done.status_message == "finishing"
    assert done.payload == {"seen": 50}


def test_reports_made_just_before_finishing_land_on_the_job(
    fast_app: MakeApp, drain: Drain
) -> None:
    """No flush runs between the last report and the outcome: the outcome carries it."""
    app = fast_app(progress_flush_seconds=60.0)

    @app.task(name="tests.reports_then_fails", max_attempts=1)
    async def reports_then_fails(ctx: underway.Context) -> None:
        ctx.report_progress(0.25, "parsed the header")
        ctx.set_payload({"line": 17})
        raise ValueError("bad row at line 17")

    @app.task(name="tests.reports_then_returns")
    async def reports_then_returns(ctx: underway.Context) -> int:
        ctx.report_progress(1.0, "all rows")
        return 3

    failed_job = reports_then_fails.enqueue()
    done_job = reports_then_returns.enqueue()
    assert drain(app) == 2

    failed = app.get_job(failed_job.id)
    assert failed is not None and failed.status is Status.FAILED
    assert (failed.progress, failed.status_message) == (0.25, "parsed the header")
    assert failed.payload == {"line": 17}
    done = app.get_job(done_job.id)
    assert done is not None and done.status is Status.COMPLETED
    assert (done.progress, done.status_message) == (1.0, "all rows")


def test_invalid_reports_raise_in_the_task(fast_app: MakeApp, drain: Drain) -> None:
    app = fast_app()

    @app.task(name="tests.bad_reports", max_attempts=1)
    def bad_reports(ctx: underway.Context) -> list[str]:
        problems: list[str] = []
        calls: tuple[Callable[[], None], ...] = (
            lambda: ctx.report_progress(1.5),
            lambda: ctx.report_progress(float("nan")),
            lambda: ctx.set_payload({"when": object()}),
        )
        for call in calls:
            try:
                call()
            except (ValueError, underway.InvalidArguments) as exc:
                problems.append(type(exc).__name__)
        return problems

    job = bad_reports.enqueue()
    assert drain(app) == 1
    done = app.get_job(job.id)
    assert done is not None and done.status is Status.COMPLETED
    # Our own error type (the public API raises no bare ValueError), still a ValueError.
    assert done.result == ["InvalidArguments", "InvalidArguments", "InvalidArguments"]
    assert issubclass(underway.InvalidArguments, ValueError)
    assert done.progress is None and done.payload is None
