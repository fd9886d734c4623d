"""Retention, on every store: `prune` deletes finished jobs older than an age, in batches.

Completed and cancelled jobs go after `older_than`; failed ones (the dead letters) only with
`include_failed`; pending and running jobs never. To make jobs old without waiting, the tests
move their `completed_at` back in the database itself (`age_jobs`), the one place where these
tests touch a backend's tables directly.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import pytest

from underway import App, Worker
from underway.model import Job, Status
from underway.stores import Store
from underway.stores.messages import Claimed, NewJob, Outcome

Put = Callable[..., Job]
ClaimOne = Callable[..., Claimed]
Finish = Callable[..., set[uuid.UUID]]
DAY = 24 * 3600.0
DONE = [Status.COMPLETED, Status.CANCELLED]


def age_jobs(database_url: str, ids: Iterable[uuid.UUID], seconds: float) -> None:
    """Move the jobs' finish time `seconds` into the past."""
    ids = list(ids)
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.executemany(
                "UPDATE underway_jobs SET completed_at = completed_at - ? WHERE id = ?",
                [(seconds, str(i)) for i in ids],
            )
        conn.close()
        return
    import psycopg
    from psycopg import sql

    from underway.stores.postgres.store import _split_url

    conninfo, schema = _split_url(database_url)
    assert schema is not None
    with psycopg.connect(conninfo, autocommit=True) as pg:
        pg.execute(
            sql.SQL(
                "UPDATE {}.underway_jobs "
                "SET completed_at = completed_at - %s * interval '1 second' WHERE id = ANY(%s)"
            ).format(sql.Identifier(schema)),
            (seconds, ids),
        )


@pytest.fixture
def finished_jobs(
    store: Store,
    put: Put,
    claim_one: ClaimOne,
    complete: Finish,
    fail: Finish,
    database_url: str,
) -> Callable[..., list[Job]]:
    """`finished_jobs(status, count, age=seconds, queue=...)` -> jobs that ended in `status`
    `age` seconds ago."""

    def make(status: Status, count: int = 1, age: float = 0.0, queue: str = "default") -> list[Job]:
        jobs = []
        for _ in range(count):
            job = put(store, queue=queue, max_attempts=1)
            if status is Status.CANCELLED:
                store.cancel(job.id)
            else:
                claimed = claim_one(store, queues=[queue])
                assert claimed.job.id == job.id
                if status is Status.COMPLETED:
                    assert complete(store, claimed) == {job.id}
                else:
                    assert fail(store, claimed) == {job.id}
            jobs.append(job)
        if age:
            age_jobs(database_url, (j.id for j in jobs), age)
        return jobs

    return make


def remaining(store: Store, jobs: Iterable[Job]) -> set[uuid.UUID]:
    return {j.id for j in jobs if store.get(j.id) is not None}


def test_prune_deletes_only_completed_and_cancelled_jobs_older_than_the_age(
    store: Store, put: Put, claim_one: ClaimOne, finished_jobs: Callable[..., list[Job]]
) -> None:
    old_done = finished_jobs(Status.COMPLETED, 2, age=2 * DAY)
    old_cancelled = finished_jobs(Status.CANCELLED, 2, age=2 * DAY)
    recent_done = finished_jobs(Status.COMPLETED, 2, age=0.5 * DAY)
    recent_cancelled = finished_jobs(Status.CANCELLED, 1)
    old_failed = finished_jobs(Status.FAILED, 2, age=2 * DAY)
    pending = put(store, queue="waiting")
    scheduled = put(store, queue="waiting", delay=3 * DAY)
    running = put(store, queue="busy")
    claim_one(store, queues=["busy"])
    unfinished = [pending, scheduled, running]

    assert store.prune(DAY, DONE) == 4
    assert remaining(store, old_done + old_cancelled) == set()
    kept = recent_done + recent_cancelled + old_failed + unfinished
    assert remaining(store, kept) == {j.id for j in kept}

    # failed jobs only when asked for, and only the old ones
    recent_failed = finished_jobs(Status.FAILED, 1)
    assert store.prune(DAY, [*DONE, Status.FAILED]) == 2
    assert remaining(store, old_failed) == set()
    kept = recent_done + recent_cancelled + recent_failed + unfinished
    assert remaining(store, kept) == {j.id for j in kept}
    assert store.prune(DAY, [*DONE, Status.FAILED]) == 0

    # an age of 0 takes everything finished, still nothing unfinished
    assert store.prune(0, [*DONE, Status.FAILED]) == 4
    assert remaining(store, unfinished) == {j.id for j in unfinished}
    assert store.stats().total == 3


@pytest.mark.parametrize(("count", "batch"), [(35, 10), (30, 10), (5, 10), (1, 1)])
def test_prune_works_in_batches_and_deletes_them_all(
    store: Store,
    new_job: Callable[..., NewJob],
    database_url: str,
    count: int,
    batch: int,
) -> None:
    jobs = store.enqueue([new_job(args={"i": i}) for i in range(count)])
    claimed = store.claim("worker-1", None, count)
    landed = store.finish([Outcome.completed(c.job.id, c.token, "null") for c in claimed])
    assert len(landed) == count
    keep = store.enqueue([new_job(args={"keep": True})])
    age_jobs(database_url, (j.id for j in jobs), 2 * DAY)

    assert store.prune(DAY, DONE, batch=batch) == count
    assert remaining(store, jobs) == set()
    assert remaining(store, keep) == {keep[0].id}


def test_two_pruners_at_once_delete_each_job_once(
    make_store: Callable[..., Store], new_job: Callable[..., NewJob], database_url: str
) -> None:
    first, second = make_store(), make_store()
    jobs = first.enqueue([new_job(args={"i": i}) for i in range(120)])
    for job in jobs[::2]:
        first.cancel(job.id)
    claimed = first.claim("worker-1", None, 200)
    first.finish([Outcome.completed(c.job.id, c.token, "1") for c in claimed])
    age_jobs(database_url, (j.id for j in jobs), DAY)

    counts: list[int] = []
    start = threading.Barrier(2)

    def prune(store: Store) -> None:
        start.wait()
        counts.append(store.prune(60, DONE, batch=7))

    threads = [threading.Thread(target=prune, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(counts) == 120 and len(counts) == 2
    assert first.stats().total == 0


def test_a_failed_job_retried_is_not_pruned(
    store: Store, finished_jobs: Callable[..., list[Job]]
) -> None:
    [job] = finished_jobs(Status.FAILED, age=2 * DAY)
    store.retry(job.id)
    assert store.prune(0, [*DONE, Status.FAILED]) == 0
    assert (current := store.get(job.id)) is not None and current.status == "pending"


# --- through the App ------------------------------------------------------------------------


def test_app_prune_defaults_to_the_retention_setting(
    make_app: Callable[..., App], database_url: str
) -> None:
    app = make_app(retention_seconds=3 * DAY)

    @app.task(name="tests.noop", max_attempts=1)
    def noop(fail: bool = False) -> None:
        if fail:
            raise RuntimeError("no")

    jobs = {age: noop.enqueue() for age in (1, 2, 4, 5)}
    failed = noop.enqueue(fail=True)
    app.run_worker(burst=True, handle_signals=False)
    for age, job in jobs.items():
        age_jobs(database_url, [job.id], age * DAY)
    age_jobs(database_url, [failed.id], 10 * DAY)

    assert app.prune() == 2  # the 4- and 5-day-old ones
    assert {age for age, job in jobs.items() if app.get_job(job.id)} == {1, 2}
    assert app.prune(older_than=timedelta(days=1, hours=12)) == 1  # the 2-day-old one
    assert app.prune(older_than=0.5 * DAY) == 1
    assert app.get_job(failed.id) is not None
    assert app.prune(include_failed=True) == 1
    assert app.stats().total == 0


@pytest.mark.parametrize("failed_retention", [0, DAY], ids=["keep-failed", "prune-failed"])
def test_a_worker_prunes_by_the_retention_settings(
    make_app: Callable[..., App],
    database_url: str,
    wait_for: Callable[..., Any],
    failed_retention: float,
) -> None:
    """`prune_interval_seconds`: each worker prunes jobs past `retention_seconds`, and failed
    ones past `failed_retention_seconds` (0 keeps them)."""
    app = make_app(
        retention_seconds=DAY,
        failed_retention_seconds=failed_retention,
        prune_interval_seconds=0.05,
    )

    @app.task(name="tests.noop", max_attempts=1)
    def noop(fail: bool = False) -> None:
        if fail:
            raise RuntimeError("no")

    old, new = noop.enqueue(), noop.enqueue()
    failed = noop.enqueue(fail=True)
    app.run_worker(burst=True, handle_signals=False)
    age_jobs(database_url, [old.id, failed.id], 2 * DAY)

    worker = Worker(app)

    def run() -> None:
        asyncio.run(worker.run(handle_signals=False))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: app.get_job(old.id) is None, what="the worker to prune the old job")
        if failed_retention:
            wait_for(lambda: app.get_job(failed.id) is None, what="the old failed job to go")
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert app.get_job(new.id) is not None
    assert (app.get_job(failed.id) is None) == bool(failed_retention)
