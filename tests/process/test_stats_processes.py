"""Stats with real worker processes on every store: the counts kept as jobs change (migration
0007) equal a count of the jobs when two processes finish them at once (on PostgreSQL each
process adds to rows of its own), and stay equal once pruning folds the rows of processes that
are gone; the last hour counts every finish."""

from __future__ import annotations

from datetime import timedelta

import pytest
from process_harness import SETTINGS, Harness, stop

import underway
from underway import Status

pytestmark = pytest.mark.process


def brute(app: underway.App) -> dict[str, dict[str, int]]:
    """Jobs by task and by tenant (those that have one), then status, and all jobs by status,
    counted from the jobs themselves."""
    out: dict[str, dict[str, int]] = {}
    page = app.list_jobs(limit=1000)
    jobs = list(page.jobs)
    while page.next_cursor:
        page = app.list_jobs(limit=1000, cursor=page.next_cursor)
        jobs += page.jobs
    for job in jobs:
        names = [f"task:{job.task}", "all"] + ([f"tenant:{job.tenant}"] if job.tenant else [])
        for name in names:
            counts = out.setdefault(name, {st.value: 0 for st in Status})
            counts[job.status.value] += 1
    return out


def fast(app: underway.App) -> dict[str, dict[str, int]]:
    stats = app.stats()
    out = {f"task:{name}": counts for name, counts in stats.by_task.items()}
    out.update({f"tenant:{name}": counts for name, counts in stats.by_tenant.items()})
    out["all"] = stats.by_status
    return out


def test_two_worker_processes_finishing_at_once_are_counted_exactly(harness: Harness) -> None:
    h = harness
    record = h.task("record")
    workers = [h.start_worker(concurrency=10) for _ in range(2)]
    h.wait_until(lambda: len(h.app.workers()) == 2, "both workers to announce themselves")
    with underway.App(h.url, **SETTINGS) as other:  # a task no worker knows: it fails

        @other.task(name="only_in_another_app")
        def only_in_another_app(n: int) -> int:
            return n

        for n in range(4):
            only_in_another_app.options(tenant="acme").enqueue(n)
    for tenant in ("acme", "globex", None):
        record.options(tenant=tenant).enqueue_many([(n, 0.002) for n in range(150)])
    h.wait_until(
        lambda: h.app.stats().by_status["completed"] == 450,
        "every job to finish",
        timeout=120,
        interval=0.2,
    )
    assert len({r.pid for r in h.records()}) == 2, h.logs()  # both processes did some
    assert fast(h.app) == brute(h.app)
    assert h.app.stats().by_status["failed"] == 4
    history = h.app.stats_history(10)
    assert sum(m.completed for m in history) == 450 and sum(m.failed for m in history) == 4
    assert sum(m.failed for m in h.app.stats_history(10, tenant="acme")) == 4

    stop(h, *workers)  # their connections are gone: pruning folds their rows
    assert h.app.prune(timedelta(0)) == 450
    assert fast(h.app) == brute(h.app)
    assert h.app.stats().by_status == {"pending": 0, "running": 0, "completed": 0, "failed": 4,
                                       "cancelled": 0}  # fmt: skip
    assert sum(m.completed for m in h.app.stats_history(10)) == 450  # pruning keeps minutes
