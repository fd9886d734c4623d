"""Store contract: cancel, retry and unique keys."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from underway import DuplicateKey, InvalidTransition, JobNotFound
from underway.model import Job, JobError, Status
from underway.stores import Store
from underway.stores.messages import Claimed, JobFilter, Lease, NewJob, Outcome

Put = Callable[..., Job]
ClaimOne = Callable[..., Claimed]
Finish = Callable[..., Any]


# --- cancel ------------------------------------------------------------------------------------


def test_cancel_pending_job_cancels_it_at_once(store: Store, put: Put) -> None:
    job = put(store)
    cancelled = store.cancel(job.id)
    assert cancelled.id == job.id
    assert cancelled.status is Status.CANCELLED
    assert cancelled.completed_at is not None
    assert store.get(job.id) == cancelled
    assert store.claim("worker-1", None, 10) == []  # it never runs


def test_cancel_scheduled_job_cancels_it(store: Store, put: Put) -> None:
    job = put(store, delay=3600.0)
    assert store.cancel(job.id).status is Status.CANCELLED
    assert store.next_due(None) is None


def test_cancel_running_job_sets_the_request_flag(
    store: Store, put: Put, claim_one: ClaimOne
) -> None:
    job = put(store)
    claimed = claim_one(store)
    requested = store.cancel(job.id)
    assert requested.status is Status.RUNNING
    assert requested.cancel_requested
    assert store.get(job.id) == requested
    # Asking twice is harmless.
    assert store.cancel(job.id).cancel_requested
    result = store.heartbeat("worker-1", [Lease(job.id, claimed.token)])
    assert result.cancel_requested == {job.id}


def test_cancel_of_a_cancelled_job_returns_it(store: Store, put: Put) -> None:
    job = put(store)
    first = store.cancel(job.id)
    assert store.cancel(job.id) == first


@pytest.mark.parametrize("end", ["complete", "fail"])
def test_cancel_of_a_finished_job_is_an_invalid_transition(
    store: Store, put: Put, claim_one: ClaimOne, end: str, request: pytest.FixtureRequest
) -> None:
    job = put(store)
    claimed = claim_one(store)
    request.getfixturevalue(end)(store, claimed)
    before = store.get(job.id)
    with pytest.raises(InvalidTransition, match=str(job.id)):
        store.cancel(job.id)
    assert store.get(job.id) == before


def test_cancel_and_retry_of_an_unknown_id_raise_job_not_found(store: Store) -> None:
    missing = uuid.uuid4()
    with pytest.raises(JobNotFound, match=str(missing)):
        store.cancel(missing)
    with pytest.raises(JobNotFound, match=str(missing)):
        store.retry(missing)
    assert store.get(missing) is None


# --- retry -------------------------------------------------------------------------------------


def test_retry_of_a_failed_job_makes_it_pending_with_attempts_reset(
    store: Store, put: Put, claim_one: ClaimOne, fail: Finish
) -> None:
    job = put(store, max_attempts=1)
    fail(store, claim_one(store))
    retried = store.retry(job.id)

    assert retried.id == job.id
    assert retried.status is Status.PENDING
    assert retried.attempt == 0 and retried.rescues == 0
    assert retried.completed_at is None and retried.started_at is None
    assert retried.result is None and retried.progress is None
    assert retried.run_at <= store.now()
    assert store.get(job.id) == retried
    again = claim_one(store)
    assert again.job.id == job.id and again.job.attempt == 1


def test_retry_of_a_cancelled_job_makes_it_pending(store: Store, put: Put) -> None:
    job = put(store)
    store.cancel(job.id)
    retried = store.retry(job.id)
    assert retried.status is Status.PENDING and retried.attempt == 0
    assert [c.job.id for c in store.claim("worker-1", None, 10)] == [job.id]


def test_retry_of_a_rescued_and_failed_job_resets_rescues(
    short_store: Store,
    put: Put,
    claim_one: ClaimOne,
    rescue_until: Callable[..., dict[uuid.UUID, Job]],
) -> None:
    job = put(short_store, max_attempts=1)
    claim_one(short_store)
    assert rescue_until(short_store, job.id)[job.id].status is Status.FAILED
    retried = short_store.retry(job.id)
    assert (retried.status, retried.attempt, retried.rescues) == (Status.PENDING, 0, 0)


def test_retry_of_completed_pending_or_running_is_an_invalid_transition(
    store: Store, put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    done = put(store)
    complete(store, claim_one(store))
    running = put(store)
    claim_one(store)
    pending = put(store)
    for job in (done, running, pending):
        before = store.get(job.id)
        with pytest.raises(InvalidTransition, match=str(job.id)):
            store.retry(job.id)
        assert store.get(job.id) == before


# --- unique keys -------------------------------------------------------------------------------


def test_a_key_held_by_an_unfinished_job_returns_that_job(
    store: Store, put: Put, claim_one: ClaimOne
) -> None:
    first = put(store, key="report:acme", args={"n": 1})
    again = put(store, key="report:acme", args={"n": 2})
    assert again == first
    assert store.stats().total == 1

    running = claim_one(store).job
    while_running = put(store, key="report:acme", args={"n": 3})
    assert while_running.id == first.id
    assert while_running.status is Status.RUNNING
    assert while_running == running


def test_a_key_is_free_again_once_its_job_finished(
    store: Store, put: Put, claim_one: ClaimOne, complete: Finish
) -> None:
    first = put(store, key="k")
    complete(store, claim_one(store))
    second = put(store, key="k")
    assert second.id != first.id and second.status is Status.PENDING

    store.cancel(second.id)
    third = put(store, key="k")
    assert third.id not in (first.id, second.id)
    assert {j.id for j in store.list_jobs(JobFilter(), 10, None).jobs} == {
        first.id,
        second.id,
        third.id,
    }


def test_a_key_in_a_batch_and_mixed_with_keyless_jobs(
    store: Store, new_job: Callable[..., NewJob]
) -> None:
    held = store.enqueue([new_job(key="k1")])[0]
    batch = [new_job(), new_job(key="k1"), new_job(key="k2"), new_job(key="k2"), new_job()]
    jobs = store.enqueue(batch)
    assert len(jobs) == 5
    assert jobs[0].id == batch[0].id
    assert jobs[1] == held
    assert jobs[2].id == batch[2].id
    assert jobs[3].id == batch[2].id  # same key earlier in the same batch
    assert jobs[4].id == batch[4].id
    assert store.stats().total == 4


def test_retry_is_refused_while_another_unfinished_job_holds_the_key(
    store: Store, put: Put, claim_one: ClaimOne, fail: Finish
) -> None:
    old = put(store, key="sync:acme", max_attempts=1)
    fail(store, claim_one(store))
    new = put(store, key="sync:acme")
    assert new.id != old.id

    with pytest.raises(DuplicateKey, match="sync:acme"):
        store.retry(old.id)
    failed = store.get(old.id)
    assert failed is not None and failed.status is Status.FAILED

    store.cancel(new.id)
    assert store.retry(old.id).status is Status.PENDING


# --- a cancel request is not lost --------------------------------------------------------------


def test_a_cancel_request_survives_the_worker_dying(
    short_store: Store,
    put: Put,
    claim_one: ClaimOne,
    rescue_until: Callable[..., dict[uuid.UUID, Job]],
) -> None:
    # The user cancelled a running job; its worker died before it could stop the job. The
    # rescue must not put the job back in line to run again.
    job = put(short_store, max_attempts=5)
    claim_one(short_store)
    assert short_store.cancel(job.id).cancel_requested
    rescued = rescue_until(short_store, job.id)[job.id]
    assert rescued.status is Status.CANCELLED
    assert short_store.claim("worker-2", None, 10) == []


@pytest.mark.parametrize("spend_attempt", [True, False], ids=["retry-later", "hand-back"])
def test_a_cancel_request_is_not_undone_by_a_retry_or_hand_back(
    store: Store,
    put: Put,
    claim_one: ClaimOne,
    spend_attempt: bool,
) -> None:
    # The request came in after the worker's last heartbeat, while the task was failing (or
    # the worker was shutting down): the job must not run again.
    job = put(store, max_attempts=5)
    claimed = claim_one(store)
    store.cancel(job.id)
    held = (claimed.job.id, claimed.token)
    if spend_attempt:
        back = Outcome.retry_later(*held, JobError("flaky"), 0.0)
    else:
        back = Outcome.handed_back(*held)
    assert store.finish([back]) == {job.id}
    final = store.get(job.id)
    assert final is not None and final.status is Status.CANCELLED
    assert store.claim("worker-2", None, 10) == []
