"""Callback deliveries, on every store: a job with a callback_url that reaches a final state
owes one delivery, written by the store in the same transaction whatever statement ended the
job (a worker's finish, a rescue that gives up, a cancel); deliveries are leased to one sender
at a time, record their attempts, and go when their job is pruned."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from underway.model import DeliveryStatus, Job, JobError, Status
from underway.stores import Store
from underway.stores.messages import Claimed, DeliveryResult, DueDelivery, Outcome

Put = Callable[..., Job]
ClaimOne = Callable[..., Claimed]
Finish = Callable[..., set[uuid.UUID]]
URL = "https://hooks.example.com/underway"
LEASE = 30.0


def finished_with_callback(store: Store, put: Put, claim_one: ClaimOne, complete: Finish) -> Job:
    job = put(store, callback_url=URL)
    assert complete(store, claim_one(store)) == {job.id}
    return job


def record(due: DueDelivery, status: DeliveryStatus, **fields: object) -> DeliveryResult:
    return DeliveryResult(due.id, due.token, status, duration=0.01, **fields)  # type: ignore[arg-type]


def test_a_finished_job_with_a_callback_owes_one_delivery(
    store: Store, put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    job = finished_with_callback(store, put, claim_one, complete)
    [delivery] = store.deliveries(job.id)
    assert delivery.id.startswith("msg_") and len(delivery.id) > 20
    assert (delivery.job_id, delivery.type, delivery.url) == (job.id, "job.completed", URL)
    assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == ()
    assert delivery.next_at is not None


def test_jobs_without_a_callback_or_not_finished_owe_nothing(
    store: Store, put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    plain = put(store)
    complete(store, claim_one(store))
    waiting = put(store, callback_url=URL)
    claimed = claim_one(store)
    error = JobError("try again", "ValueError")
    store.finish([Outcome.retry_later(claimed.job.id, claimed.token, error, 60)])
    assert store.deliveries(plain.id) == [] and store.deliveries(waiting.id) == []
    assert store.claim_deliveries("sender", 10, LEASE) == []


def test_failed_cancelled_and_rescued_jobs_owe_their_delivery(
    make_store: Callable[..., Store], put: Put, claim_one: ClaimOne, fail: Finish
) -> None:
    store = make_store(lease_seconds=0.2, heartbeat_seconds=0.05)
    failed = put(store, callback_url=URL)
    fail(store, claim_one(store))
    cancelled = put(store, callback_url=URL)
    store.cancel(cancelled.id)
    rescued = put(store, callback_url=URL, max_attempts=1)
    claim_one(store)
    time.sleep(0.3)  # the lease runs out; the rescue gives up on the job
    assert [job.status for job in store.rescue(3)] == [Status.FAILED]
    types = {
        job.id: [d.type for d in store.deliveries(job.id)] for job in (failed, cancelled, rescued)
    }
    assert types == {failed.id: ["job.failed"], cancelled.id: ["job.cancelled"],
                     rescued.id: ["job.failed"]}  # fmt: skip


def test_a_job_retried_and_finished_again_owes_a_second_delivery(
    store: Store, put: Put, claim_one: ClaimOne, fail: Finish, complete: Finish
) -> None:
    job = put(store, callback_url=URL)
    fail(store, claim_one(store))
    store.retry(job.id)
    complete(store, claim_one(store))
    assert [d.type for d in store.deliveries(job.id)] == ["job.failed", "job.completed"]


def test_a_claimed_delivery_is_leased_to_one_sender(
    store: Store, put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    job = finished_with_callback(store, put, claim_one, complete)
    [due] = store.claim_deliveries("sender-1", 10, LEASE)
    assert (due.job_id, due.type, due.url, due.attempts) == (job.id, "job.completed", URL, 0)
    assert store.claim_deliveries("sender-2", 10, LEASE) == []


def test_an_expired_lease_lets_another_sender_claim_and_the_old_claim_cannot_record(
    store: Store, put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    job = finished_with_callback(store, put, claim_one, complete)
    [first] = store.claim_deliveries("sender-1", 10, 0.1)
    time.sleep(0.2)
    [second] = store.claim_deliveries("sender-2", 10, LEASE)
    assert second.id == first.id and second.token != first.token
    assert not store.record_delivery(record(first, DeliveryStatus.DELIVERED, status_code=200))
    assert store.record_delivery(record(second, DeliveryStatus.DELIVERED, status_code=204))
    [delivery] = store.deliveries(job.id)
    assert delivery.status is DeliveryStatus.DELIVERED and len(delivery.attempts) == 1


def test_attempts_are_recorded_and_a_retry_waits_for_its_time(
    store: Store, put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    job = finished_with_callback(store, put, claim_one, complete)
    [due] = store.claim_deliveries("sender", 10, LEASE)
    failed = record(due, DeliveryStatus.PENDING, status_code=503, error="HTTP 503", retry_in=0.3)
    assert store.record_delivery(failed)
    assert store.claim_deliveries("sender", 10, LEASE) == []  # not due yet
    time.sleep(0.4)
    [again] = store.claim_deliveries("sender", 10, LEASE)
    assert (again.id, again.attempts) == (due.id, 1)
    assert store.record_delivery(record(again, DeliveryStatus.DELIVERED, status_code=200))
    [delivery] = store.deliveries(job.id)
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.delivered_at is not None
    assert delivery.next_at is None and delivery.last_status_code == 200
    assert [(a.number, a.status_code, a.error) for a in delivery.attempts] == [
        (1, 503, "HTTP 503"),
        (2, 200, None),
    ]
    assert delivery.attempts[0].at <= delivery.attempts[1].at
    assert store.claim_deliveries("sender", 10, LEASE) == []


def test_a_delivery_failed_for_good_is_never_claimed_again(
    store: Store, put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    job = finished_with_callback(store, put, claim_one, complete)
    [due] = store.claim_deliveries("sender", 10, LEASE)
    assert store.record_delivery(record(due, DeliveryStatus.FAILED, error="refused"))
    [delivery] = store.deliveries(job.id)
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.FAILED, "refused")
    assert store.claim_deliveries("sender", 10, 0.0) == []


def test_deliveries_go_with_their_pruned_job(
    store: Store, put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    job = finished_with_callback(store, put, claim_one, complete)
    [due] = store.claim_deliveries("sender", 10, LEASE)
    store.record_delivery(record(due, DeliveryStatus.DELIVERED, status_code=200))
    kept = finished_with_callback(store, put, claim_one, complete)
    time.sleep(0.05)
    assert store.prune(0.0, [Status.COMPLETED]) == 2
    assert store.deliveries(job.id) == [] and store.deliveries(kept.id) == []
    assert store.claim_deliveries("sender", 10, LEASE) == []


def test_senders_claiming_at_once_never_share_a_delivery(
    make_store: Callable[..., Store], put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    store = make_store()
    for _ in range(40):
        finished_with_callback(store, put, claim_one, complete)
    senders = [make_store() for _ in range(4)]

    def claim_all(index: int) -> list[str]:
        got: list[str] = []
        while batch := senders[index].claim_deliveries(f"sender-{index}", 3, LEASE):
            got += [due.id for due in batch]
        return got

    with ThreadPoolExecutor(4) as pool:
        claimed = [d for got in pool.map(claim_all, range(4)) for d in got]
    assert len(claimed) == 40 and len(set(claimed)) == 40
