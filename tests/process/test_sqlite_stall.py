"""A SQLite store that stalls for longer than the lease, with every worker alive: the write
lock held by another process for 2.5 leases while two workers run jobs. No job may run twice:
a rescue right after the stall would take the live holders' jobs (issue 11's report: 17 of
20 jobs ran twice with the lock held 8 s over a 5 s lease)."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from contextlib import closing

import pytest
from process_harness import SETTINGS, Harness, stop

pytestmark = pytest.mark.process


@pytest.fixture
def store_kind() -> str:
    """SQLite only (overrides the root conftest's parameter): the write lock is SQLite's."""
    return "sqlite"


def test_a_write_lock_held_past_the_lease_reruns_no_job_of_a_live_worker(
    harness: Harness,
) -> None:
    h = harness
    jobs = h.task("record").enqueue_many([{"n": n, "sleep": 1.0} for n in range(20)])
    workers = [h.start_worker(concurrency=5) for _ in range(2)]
    h.wait_until(
        lambda: h.app.stats().by_status["running"] >= 6, "both workers to run jobs", interval=0.05
    )
    hold = 2.5 * SETTINGS["lease_seconds"]
    path = h.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path, timeout=60, isolation_level=None)) as lock:
        lock.execute("BEGIN IMMEDIATE")  # every other writer now waits
        time.sleep(hold)
        lock.execute("COMMIT")

    finished = [h.wait_job(job, timeout=60) for job in jobs]
    stop(h, *workers)
    runs = Counter(r.job_id for r in h.records() if r.event == "done")
    twice = {job_id: n for job_id, n in runs.items() if n > 1}
    assert not twice, f"{len(twice)} of {len(jobs)} jobs ran more than once\n{h.logs()}"
    assert [(j.status, j.attempt, j.rescues) for j in finished] == [("completed", 1, 0)] * 20
    assert sorted(j.result for j in finished) == list(range(20))
