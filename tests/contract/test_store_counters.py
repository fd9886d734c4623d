"""The store's job counters (migration 0006), on every store: each event counted once, in the
transaction that makes it, whatever path made it; never lower after pruning."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from underway.model import DeliveryStatus, JobError, Status
from underway.stores import Store
from underway.stores.messages import (
    HISTOGRAM_BOUNDS,
    DeliveryCounts,
    DeliveryResult,
    Outcome,
    TaskCounters,
)

Put = Callable[..., Any]
Claim = Callable[..., Any]


def counted(store: Store, task: str = "tests.noop", queue: str = "default") -> TaskCounters:
    found = {(c.task, c.queue): c for c in store.counters()}
    return found.get((task, queue), TaskCounters(task, queue))


def events(c: TaskCounters) -> dict[str, int]:
    return {name: getattr(c, name) for name in
            ("enqueued", "completed", "failed", "retried", "cancelled", "rescued")}  # fmt: skip


def test_a_new_store_counts_nothing(store: Store) -> None:
    assert store.counters() == []


def test_each_event_is_counted_per_task_and_queue(
    store: Store, put: Put, claim_one: Claim, complete: Callable[..., Any],
    fail: Callable[..., Any],
) -> None:  # fmt: skip
    for _ in range(3):
        put(store)
    put(store, queue="bulk")
    complete(store, claim_one(store, ["default"]))
    waiting = claim_one(store, ["default"])
    error = JobError("boom", "ValueError")
    store.finish([Outcome.retry_later(waiting.job.id, waiting.token, error, 60.0)])
    fail(store, claim_one(store, ["default"]))
    doomed = put(store, max_attempts=1)
    store.cancel(doomed.id)  # a pending job cancelled

    assert events(counted(store)) == {
        "enqueued": 4, "completed": 1, "failed": 1, "retried": 1, "cancelled": 1, "rescued": 0,
    }  # fmt: skip
    assert counted(store).duration.count == 3  # completed, retry wait, failed
    assert events(counted(store, queue="bulk")) == {
        "enqueued": 1, "completed": 0, "failed": 0, "retried": 0, "cancelled": 0, "rescued": 0,
    }  # fmt: skip


def test_a_final_failure_and_a_persons_retry_are_counted(
    store: Store, put: Put, claim_one: Claim, fail: Callable[..., Any]
) -> None:
    job = put(store, max_attempts=1)
    fail(store, claim_one(store))
    assert counted(store).failed == 1 and counted(store).retried == 0
    store.retry(job.id)
    assert counted(store).retried == 1
    fail(store, claim_one(store))
    assert counted(store).failed == 2  # each failure is an event, even of the same job


def test_a_cancel_requested_while_running_counts_once_when_the_worker_ends_it(
    store: Store, put: Put, claim_one: Claim
) -> None:
    job = put(store)
    claimed = claim_one(store)
    store.cancel(job.id)
    assert counted(store).cancelled == 0  # a request, not yet an event
    error = JobError("cancelled", "Cancelled")
    store.finish([Outcome.cancelled(job.id, claimed.token, error)])
    assert counted(store).cancelled == 1


def test_a_hand_back_counts_nothing_and_observes_no_duration(
    store: Store, put: Put, claim_one: Claim
) -> None:
    job = put(store)
    claimed = claim_one(store)
    store.finish([Outcome.handed_back(job.id, claimed.token)])
    c = counted(store)
    assert events(c) == {
        "enqueued": 1, "completed": 0, "failed": 0, "retried": 0, "cancelled": 0, "rescued": 0,
    }  # fmt: skip
    assert c.duration.count == 0
    assert c.pickup.count == 1  # it did wait to start


def test_rescues_are_counted(
    short_store: Store, put: Put, claim_one: Claim, rescue_until: Callable[..., Any]
) -> None:
    first = put(short_store)
    last = put(short_store, max_attempts=1)
    claim_one(short_store)
    claim_one(short_store)
    rescued = rescue_until(short_store, first.id, last.id)
    assert rescued[last.id].status is Status.FAILED
    c = counted(short_store)
    assert (c.rescued, c.failed, c.retried) == (2, 1, 0)
    assert c.duration.count == 0  # a rescued attempt's end is unknown
    assert c.pickup.count == 2


def test_durations_land_in_cumulative_buckets(
    store: Store, put: Put, claim_one: Claim, complete: Callable[..., Any]
) -> None:
    put(store)
    claimed = claim_one(store)
    time.sleep(0.03)
    complete(store, claimed)
    histogram = counted(store).duration
    assert histogram.count == 1
    assert 0.03 <= histogram.sum < 3600
    assert len(histogram.buckets) == len(HISTOGRAM_BOUNDS)
    assert list(histogram.buckets) == sorted(histogram.buckets)  # cumulative
    assert histogram.buckets[-1] == 1
    below = [count for bound, count in zip(HISTOGRAM_BOUNDS, histogram.buckets, strict=True)
             if bound < 0.03]  # fmt: skip
    assert set(below) == {0}


def test_pruning_never_takes_a_count_back(
    store: Store, put: Put, claim_one: Claim, complete: Callable[..., Any],
    fail: Callable[..., Any],
) -> None:  # fmt: skip
    for _ in range(4):
        put(store, max_attempts=1)
    complete(store, claim_one(store))
    complete(store, claim_one(store))
    fail(store, claim_one(store))
    store.cancel(put(store).id)
    before = counted(store)

    deleted = store.prune(0.0, [Status.COMPLETED, Status.CANCELLED, Status.FAILED], batch=1)
    assert deleted == 4
    assert store.stats().total == 1
    assert counted(store) == before


def test_counters_of_several_stores_add_up(make_store: Callable[..., Store], put: Put) -> None:
    """Several processes (stores, and on PostgreSQL several connections) count into the
    same totals."""
    stores = [make_store() for _ in range(3)]
    for i, each in enumerate(stores):
        for _ in range(i + 1):
            put(each)
    for each in stores:
        assert counted(each).enqueued == 6
    stores[0].prune(0.0, [Status.COMPLETED])  # folds PostgreSQL's per-connection rows
    assert counted(stores[1]).enqueued == 6


def test_a_batch_enqueue_counts_every_job(store: Store, new_job: Callable[..., Any]) -> None:
    store.enqueue([new_job(task=f"tests.t{i % 2}", args={"i": i}) for i in range(600)])
    assert counted(store, "tests.t0").enqueued == 300
    assert counted(store, "tests.t1").enqueued == 300


def test_a_job_refused_for_its_key_is_not_counted(store: Store, put: Put) -> None:
    put(store, key="only-one")
    put(store, key="only-one")
    assert counted(store).enqueued == 1


def test_queue_depth_counts_unfinished_jobs_per_queue(
    store: Store, put: Put, claim_one: Claim, complete: Callable[..., Any]
) -> None:
    for _ in range(3):
        put(store)
    put(store, queue="bulk")
    claim_one(store, ["default"])
    complete(store, claim_one(store, ["default"]))
    assert store.queue_depth() == {"default": {"pending": 1, "running": 1}, "bulk": {"pending": 1}}


def test_the_finish_result_is_unchanged_by_the_counting(
    store: Store, put: Put, claim_one: Claim
) -> None:
    put(store)
    claimed = claim_one(store)
    landed = store.finish([Outcome.completed(claimed.job.id, claimed.token, json.dumps(5))])
    assert landed == {claimed.job.id}
    assert store.get(claimed.job.id).result == 5  # type: ignore[union-attr]


def test_callback_deliveries_are_counted_and_pruning_takes_nothing_back(
    store: Store, put: Put, claim_one: Claim, complete: Callable[..., Any]
) -> None:
    for _ in range(3):
        put(store, callback_url="https://example.com/hook")
        complete(store, claim_one(store))
    assert store.delivery_counts() == DeliveryCounts(pending=3)
    first, second, third = store.claim_deliveries("sender-1", 3, 30.0)
    for due, status in ((first, "delivered"), (second, "failed"), (third, "pending")):
        result = DeliveryResult(
            due.id, due.token, DeliveryStatus(status), 0.01, status_code=500, retry_in=60
        )
        assert store.record_delivery(result)
    assert store.delivery_counts() == DeliveryCounts(delivered=1, failed=1, attempts=3, pending=1)

    store.prune(0.0, [Status.COMPLETED])
    assert store.delivery_counts() == DeliveryCounts(delivered=1, failed=1, attempts=3, pending=0)
