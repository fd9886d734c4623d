"""A job's `updated_at` never goes back: each change of a job carries an `updated_at` no older
than the one before it, so whoever keeps "the newer snapshot" of a job by that field (a page
fed by both the list and the event stream does) never throws away the finish.

A worker writes a job's last progress report and its finish on two connections, and the two
writes can overlap: on PostgreSQL `now()` is the start of each transaction, so the finish,
begun first, used to land after the report with an older time (the file manager's page then
showed a completed scan as still running, once in forty tries)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import underway
from underway import App, Change
from underway.testing import RunningWorker

JOBS = 300


def test_every_change_of_a_job_is_at_least_as_new_as_the_one_before(
    fast_app: Callable[..., App], start_worker: Callable[..., RunningWorker]
) -> None:
    # A flush interval shorter than a task, so reports and finishes are written side by side.
    app = fast_app(progress_flush_seconds=0.001)

    @app.task(name="tests.report_then_finish")
    def report_then_finish(ctx: underway.Context, n: int) -> int:
        ctx.report_progress(0.5, "half way")
        time.sleep(0.002)
        ctx.report_progress(1.0, "done")
        return n

    since = app.store.change_head()
    jobs = report_then_finish.enqueue_many([{"n": n} for n in range(JOBS)])
    start_worker(app, concurrency=8)
    waiting = {job.id for job in jobs}
    last: dict[Any, Change] = {}
    for change in app.watch(since=since, task="tests.report_then_finish", timeout=60):
        before = last.get(change.job.id)
        assert before is None or change.job.updated_at >= before.job.updated_at, (
            f"job {change.job.id}: {change.kind} at {change.job.updated_at} came after "
            f"{before.kind} at {before.job.updated_at}"
        )
        last[change.job.id] = change
        if change.job.finished:
            waiting.discard(change.job.id)
            if not waiting:
                break
    assert not waiting, f"{len(waiting)} jobs never finished"
