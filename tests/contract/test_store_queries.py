"""Store contract: get, list_jobs (paging, filters, views), stats, next_due, change hints,
migrations and the clock."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from underway.model import Job, JobError, Status, View
from underway.stores import Store
from underway.stores.messages import Claimed, JobFilter, NewJob, Outcome

Put = Callable[..., Job]
ClaimOne = Callable[..., Claimed]


def all_pages(store: Store, where: JobFilter, limit: int) -> list[list[Job]]:
    pages, cursor = [], None
    while True:
        page = store.list_jobs(where, limit, cursor)
        pages.append(page.jobs)
        if page.next_cursor is None:
            return pages
        assert len(pages) < 1000, "paging never ends"
        cursor = page.next_cursor


def test_get_of_an_unknown_id_is_none(store: Store) -> None:
    assert store.get(uuid.uuid4()) is None


@pytest.mark.parametrize(("count", "limit", "sizes"), [(25, 7, [7, 7, 7, 4]), (21, 7, [7, 7, 7])])
def test_paging_visits_every_job_once_newest_first(
    store: Store, new_job: Callable[..., NewJob], count: int, limit: int, sizes: list[int]
) -> None:
    jobs: list[Job] = []
    for start in range(0, count, 5):  # several enqueue calls, several jobs per call
        jobs += store.enqueue([new_job(args={"i": i}) for i in range(start, min(start + 5, count))])

    pages = all_pages(store, JobFilter(), limit)
    assert [len(p) for p in pages] == sizes
    seen = [j.id for p in pages for j in p]
    assert seen == [j.id for j in reversed(jobs)]  # newest first, no gaps, no repeats


def test_paging_does_not_show_jobs_added_after_the_first_page(store: Store, put: Put) -> None:
    old = [put(store) for _ in range(6)]
    first = store.list_jobs(JobFilter(), 3, None)
    newer = [put(store) for _ in range(3)]
    assert first.next_cursor is not None
    rest = store.list_jobs(JobFilter(), 100, first.next_cursor)
    assert [j.id for j in first.jobs + rest.jobs] == [j.id for j in reversed(old)]
    assert not {j.id for j in rest.jobs} & {j.id for j in newer}


def test_an_empty_store_lists_one_empty_page(store: Store) -> None:
    page = store.list_jobs(JobFilter(), 10, None)
    assert page.jobs == [] and page.next_cursor is None


def test_list_filters_by_status_task_queue_and_tenant(
    store: Store, put: Put, claim_one: ClaimOne, complete: Callable[..., Any]
) -> None:
    a1 = put(store, task="a", queue="q1", tenant="acme")
    a2 = put(store, task="a", queue="q2", tenant="globex")
    b1 = put(store, task="b", queue="q1")
    complete(store, claim_one(store, queues=["q2"]))  # a2, q2's only job
    b2 = put(store, task="b", queue="q2", tenant="acme")

    def ids(**where: Any) -> set[uuid.UUID]:
        return {j.id for p in all_pages(store, JobFilter(**where), 2) for j in p}

    assert ids() == {a1.id, a2.id, b1.id, b2.id}
    assert ids(status=Status.COMPLETED) == {a2.id}
    assert ids(status=Status.PENDING) == {a1.id, b1.id, b2.id}
    assert ids(task="a") == {a1.id, a2.id}
    assert ids(queue="q1") == {a1.id, b1.id}
    assert ids(tenant="acme") == {a1.id, b2.id}
    assert ids(task="b", queue="q2", tenant="acme", status=Status.PENDING) == {b2.id}
    assert ids(task="nope") == set()


def test_paging_with_a_filter_skips_other_jobs(store: Store, put: Put) -> None:
    wanted = []
    for i in range(20):
        job = put(store, task="wanted" if i % 3 == 0 else "other")
        if job.task == "wanted":
            wanted.append(job.id)
    pages = all_pages(store, JobFilter(task="wanted"), 2)
    assert [j.id for p in pages for j in p] == wanted[::-1]


def make_one_job_of_each_kind(store: Store, put: Put, claim_one: ClaimOne) -> dict[str, Job]:
    """One job in each situation the views tell apart; each in its own queue so the claims
    below take exactly the job meant."""
    jobs = {
        "due": put(store, queue="due"),
        "scheduled": put(store, queue="scheduled", delay=3600.0),
        "retry_wait": put(store, queue="retry_wait"),
        "retry_now": put(store, queue="retry_now"),
        "handed_back": put(store, queue="handed_back"),
        "running": put(store, queue="running"),
        "failed": put(store, queue="failed"),
    }
    error = JobError("boom", "ValueError")
    endings: dict[str, Callable[[uuid.UUID, str], Outcome]] = {
        "retry_wait": lambda i, t: Outcome.retry_later(i, t, error, 3600.0),
        "retry_now": lambda i, t: Outcome.retry_later(i, t, error, 0.0),
        "handed_back": Outcome.handed_back,
        "failed": lambda i, t: Outcome.failed(i, t, error),
    }
    for name, ending in endings.items():
        claimed = claim_one(store, queues=[name])
        outcome = ending(claimed.job.id, claimed.token)
        assert store.finish([outcome]) == {claimed.job.id}
    claim_one(store, queues=["running"])
    return jobs


def test_views_scheduled_and_retrying(store: Store, put: Put, claim_one: ClaimOne) -> None:
    jobs = make_one_job_of_each_kind(store, put, claim_one)

    def ids(**where: Any) -> set[uuid.UUID]:
        return {j.id for j in store.list_jobs(JobFilter(**where), 100, None).jobs}

    assert ids(view=View.SCHEDULED) == {jobs["scheduled"].id, jobs["retry_wait"].id}
    assert ids(view=View.RETRYING) == {jobs["retry_wait"].id, jobs["retry_now"].id}
    assert ids(view=View.RETRYING, queue="retry_now") == {jobs["retry_now"].id}
    assert ids(status=Status.PENDING) == {
        jobs[n].id for n in ("due", "scheduled", "retry_wait", "retry_now", "handed_back")
    }


def test_stats_count_by_status_task_and_queue(store: Store, put: Put, claim_one: ClaimOne) -> None:
    empty = store.stats()
    assert empty.by_status == {s.value: 0 for s in Status}
    assert empty.total == 0 and empty.by_task == {} and empty.by_queue == {}

    make_one_job_of_each_kind(store, put, claim_one)
    put(store, task="other", queue="due")
    stats = store.stats()
    assert stats.by_status == {
        "pending": 6,
        "running": 1,
        "completed": 0,
        "failed": 1,
        "cancelled": 0,
    }
    assert stats.total == 8
    assert stats.scheduled == 2
    assert stats.retrying == 2
    assert stats.by_task["other"] == {**empty.by_status, "pending": 1}
    assert stats.by_task["tests.noop"] == {
        **empty.by_status,
        "pending": 5,
        "running": 1,
        "failed": 1,
    }
    assert stats.by_queue["due"] == {**empty.by_status, "pending": 2}
    assert stats.by_queue["failed"] == {**empty.by_status, "failed": 1}
    assert stats.by_queue["running"] == {**empty.by_status, "running": 1}
    assert set(stats.by_queue) == {
        "due",
        "scheduled",
        "retry_wait",
        "retry_now",
        "handed_back",
        "running",
        "failed",
    }


def test_next_due(store: Store, put: Put, claim_one: ClaimOne) -> None:
    assert store.next_due(None) is None
    put(store, queue="later", delay=3600.0)
    later = store.next_due(None)
    assert later is not None and 3500 < later <= 3600

    put(store, queue="now")
    due = store.next_due(None)
    assert due is not None and due <= 0
    assert store.next_due(["later"]) == pytest.approx(later, abs=60)
    now_only = store.next_due(["now"])
    assert now_only is not None and now_only <= 0
    assert store.next_due(["elsewhere"]) is None

    claim_one(store, queues=["now"])  # running jobs are not due
    after = store.next_due(None)
    assert after is not None and after > 3500


def test_wait_for_change_sees_a_write_from_another_store(
    make_store: Callable[..., Store], put: Put
) -> None:
    watcher, writer = make_store(), make_store()
    watcher.wait_for_change(0.0)  # take this thread's first reading
    assert isinstance(watcher.wait_for_change(0.01), bool)  # nothing new: may say either
    put(writer)
    assert watcher.wait_for_change(30.0) is True

    # Blocking in another thread, woken by a write made while it waits.
    ready = threading.Event()
    seen: list[bool] = []

    def watch() -> None:
        watcher.wait_for_change(0.0)  # this thread's first reading
        ready.set()
        seen.append(watcher.wait_for_change(30.0))

    thread = threading.Thread(target=watch)
    thread.start()
    assert ready.wait(30)
    put(writer)
    thread.join(timeout=60)
    assert seen == [True]


def test_migrate_is_idempotent_and_keeps_jobs(store: Store, put: Put) -> None:
    job = put(store)
    version = store.migrate()
    assert isinstance(version, int) and version >= 1
    assert store.migrate() == version
    assert store.get(job.id) == job


def test_now_is_an_aware_utc_time(store: Store) -> None:
    now = store.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)
