"""Store contract: leases, heartbeats, outcomes guarded by the attempt token, reports, rescues."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from underway.model import Job, JobError, Status
from underway.stores import Store
from underway.stores.messages import Claimed, Lease, Outcome, Report

Put = Callable[..., Job]
ClaimOne = Callable[..., Claimed]
RescueUntil = Callable[..., dict[uuid.UUID, Job]]


def lease(claimed: Claimed, token: str | None = None) -> Lease:
    return Lease(claimed.job.id, claimed.token if token is None else token)


# --- heartbeats --------------------------------------------------------------------------------


def test_heartbeat_extends_the_lease(
    make_store: Callable[..., Store],
    short_store: Store,
    put: Put,
    claim_one: ClaimOne,
    rescue_until: RescueUntil,
) -> None:
    # Both jobs are claimed with a 0.2 s lease. The heartbeat goes through a store whose lease
    # is an hour, so once renewed that job cannot expire during the test, however slow it runs.
    kept_alive, abandoned = put(short_store), put(short_store)
    kept = claim_one(short_store)
    dropped = claim_one(short_store)
    assert {kept.job.id, dropped.job.id} == {kept_alive.id, abandoned.id}
    long_store = make_store(lease_seconds=3600)
    result = long_store.heartbeat("worker-1", [lease(kept)])
    assert result.lost == frozenset() and result.cancel_requested == frozenset()

    rescued = rescue_until(short_store, dropped.job.id)
    assert set(rescued) == {dropped.job.id}
    assert short_store.get(kept.job.id) == kept.job  # still running, same attempt and lease


def test_heartbeat_reports_cancel_requests_and_lost_leases(
    store: Store,
    put: Put,
    claim_one: ClaimOne,
    complete: Callable[..., Any],
) -> None:
    for _ in range(4):
        put(store)
    to_cancel, to_finish, healthy, other = (claim_one(store) for _ in range(4))
    store.cancel(to_cancel.job.id)
    complete(store, to_finish)
    never_existed = Lease(uuid.uuid4(), "not-a-token")
    wrong_token = lease(other, token="f" * 16)

    result = store.heartbeat(
        "worker-1",
        [lease(to_cancel), lease(to_finish), lease(healthy), never_existed, wrong_token],
    )
    assert result.cancel_requested == {to_cancel.job.id}
    assert result.lost == {to_finish.job.id, never_existed.job_id, other.job.id}


def test_heartbeat_with_a_good_token_keeps_the_job_and_nothing_else(
    store: Store, put: Put, claim_one: ClaimOne
) -> None:
    put(store)
    claimed = claim_one(store)
    result = store.heartbeat("worker-1", [lease(claimed)])
    assert result.lost == frozenset() and result.cancel_requested == frozenset()
    assert store.heartbeat("worker-1", []).lost == frozenset()


# --- outcomes ----------------------------------------------------------------------------------


def test_complete_lands_with_the_matching_token(
    store: Store, put: Put, claim_one: ClaimOne
) -> None:
    job = put(store)
    claimed = claim_one(store)
    landed = store.finish([Outcome.completed(claimed.job.id, claimed.token, '{"n": 3}')])
    assert landed == {job.id}

    done = store.get(job.id)
    assert done is not None
    assert done.status is Status.COMPLETED
    assert done.result == {"n": 3}
    assert done.attempt == 1
    assert done.completed_at is not None and done.started_at is not None
    assert done.completed_at >= done.started_at
    assert done.finished
    # The lease is gone: the token cannot be used again.
    assert store.heartbeat("worker-1", [lease(claimed)]).lost == {job.id}
    assert store.finish([Outcome.failed(claimed.job.id, claimed.token, JobError("late"))]) == set()
    assert store.get(job.id) == done


def test_finish_with_a_wrong_token_is_refused(store: Store, put: Put, claim_one: ClaimOne) -> None:
    job = put(store)
    claimed = claim_one(store)
    forged = Outcome.completed(job.id, "0" * 16, "1")
    assert store.finish([forged]) == set()
    assert store.get(job.id) == claimed.job
    unknown = Outcome.completed(uuid.uuid4(), claimed.token, "1")
    assert store.finish([unknown]) == set()


def test_a_stale_token_cannot_overwrite_the_newer_attempt(
    short_store: Store,
    put: Put,
    claim_one: ClaimOne,
    rescue_until: RescueUntil,
) -> None:
    job = put(short_store)
    first = claim_one(short_store, worker="slow-worker")
    rescue_until(short_store, job.id)  # the slow worker "died": its lease expired
    second = claim_one(short_store, worker="new-worker", suspects=True)
    assert second.job.id == job.id and second.job.attempt == 2
    assert second.token != first.token

    # The first worker wakes up and reports: refused, the newer attempt is untouched.
    late = Outcome.completed(first.job.id, first.token, '"stale"')
    assert short_store.finish([late]) == set()
    assert short_store.get(job.id) == second.job
    assert short_store.heartbeat("slow-worker", [lease(first)]).lost == {job.id}

    landed = short_store.finish([Outcome.completed(second.job.id, second.token, '"fresh"')])
    assert landed == {job.id}
    final = short_store.get(job.id)
    assert final is not None and final.status is Status.COMPLETED and final.result == "fresh"


def test_a_batch_lands_only_the_outcomes_whose_token_matches(
    store: Store, put: Put, claim_one: ClaimOne
) -> None:
    jobs = [put(store) for _ in range(3)]
    claims = [claim_one(store) for _ in jobs]
    batch = [
        Outcome.completed(claims[0].job.id, claims[0].token, "0"),
        Outcome.completed(claims[1].job.id, "bad-token", "1"),
        Outcome.completed(claims[2].job.id, claims[2].token, "2"),
    ]
    assert store.finish(batch) == {claims[0].job.id, claims[2].job.id}
    statuses = [store.get(c.job.id).status for c in claims]  # type: ignore[union-attr]
    assert statuses == [Status.COMPLETED, Status.RUNNING, Status.COMPLETED]
    assert store.finish([]) == set()


def test_fail_records_the_error_and_ends_the_job(
    store: Store, put: Put, claim_one: ClaimOne
) -> None:
    job = put(store)
    claimed = claim_one(store)
    error = JobError("division by zero", "ZeroDivisionError", "Traceback (most recent call last)")
    assert store.finish([Outcome.failed(claimed.job.id, claimed.token, error)]) == {job.id}
    failed = store.get(job.id)
    assert failed is not None
    assert failed.status is Status.FAILED
    assert failed.error == error
    assert failed.attempt == 1
    assert failed.completed_at is not None
    assert store.claim("worker-1", None, 10) == []


def test_cancelled_outcome_ends_the_job_cancelled(
    store: Store, put: Put, claim_one: ClaimOne
) -> None:
    job = put(store)
    claimed = claim_one(store)
    store.cancel(job.id)
    error = JobError("cancelled while running", "Cancelled")
    assert store.finish([Outcome.cancelled(claimed.job.id, claimed.token, error)]) == {job.id}
    cancelled = store.get(job.id)
    assert cancelled is not None
    assert cancelled.status is Status.CANCELLED
    assert cancelled.error == error
    assert cancelled.completed_at is not None
    assert not cancelled.cancel_requested


def test_retry_later_is_pending_with_a_future_run_at_and_keeps_the_attempt(
    store: Store, put: Put, claim_one: ClaimOne
) -> None:
    job = put(store, max_attempts=3)
    claimed = claim_one(store)
    error = JobError("rate limited", "Retry")
    retry = Outcome.retry_later(claimed.job.id, claimed.token, error, 600.0)
    assert store.finish([retry]) == {job.id}

    waiting = store.get(job.id)
    assert waiting is not None
    assert waiting.status is Status.PENDING
    assert waiting.attempt == 1
    assert waiting.error == error
    assert waiting.run_at > store.now() + timedelta(minutes=9)
    assert waiting.completed_at is None and waiting.started_at is None
    assert store.claim("worker-1", None, 10) == []  # not due yet
    due_in = store.next_due(None)
    assert due_in is not None and 540 < due_in <= 600


def test_retry_later_with_no_wait_is_claimed_again_as_the_next_attempt(
    store: Store, put: Put, claim_one: ClaimOne
) -> None:
    job = put(store)
    first = claim_one(store)
    store.finish([Outcome.retry_later(first.job.id, first.token, JobError("flaky"), 0.0)])
    second = claim_one(store)
    assert second.job.id == job.id
    assert second.job.attempt == 2


def test_hand_back_refunds_the_attempt(store: Store, put: Put, claim_one: ClaimOne) -> None:
    job = put(store)
    claimed = claim_one(store)
    hand_back = Outcome.handed_back(claimed.job.id, claimed.token)
    assert store.finish([hand_back]) == {job.id}

    back = store.get(job.id)
    assert back is not None
    assert back.status is Status.PENDING
    assert back.attempt == 0
    assert back.run_at <= store.now()
    again = claim_one(store)
    assert again.job.id == job.id and again.job.attempt == 1


def test_outcome_carries_the_last_reports(store: Store, put: Put, claim_one: ClaimOne) -> None:
    job = put(store)
    claimed = claim_one(store)
    done = Outcome.completed(claimed.job.id, claimed.token, "true").with_reports(
        progress=1.0, status_message="all done", payload_json='{"rows": 10}'
    )
    store.finish([done])
    final = store.get(job.id)
    assert final is not None
    assert (final.progress, final.status_message, final.payload) == (1.0, "all done", {"rows": 10})


# --- reports -----------------------------------------------------------------------------------


def test_report_writes_progress_only_while_the_lease_is_held(
    store: Store, put: Put, claim_one: ClaimOne, complete: Callable[..., Any]
) -> None:
    job = put(store, status_message="queued")
    claimed = claim_one(store)
    store.report([Report(job.id, claimed.token, 0.25, "page 1", json.dumps({"seen": 1}))])
    now = store.get(job.id)
    assert now is not None
    assert (now.progress, now.status_message, now.payload) == (0.25, "page 1", {"seen": 1})

    # No new payload in this report: the previous one stays.
    store.report([Report(job.id, claimed.token, 0.5, "page 2", None)])
    now = store.get(job.id)
    assert now is not None
    assert (now.progress, now.status_message, now.payload) == (0.5, "page 2", {"seen": 1})

    # A report with another token is dropped.
    store.report([Report(job.id, "not-the-token", 0.9, "forged", '"forged"')])
    after_forged = store.get(job.id)
    assert after_forged == now

    # Once finished, the old lease can no longer write.
    complete(store, claimed, result=1)
    finished = store.get(job.id)
    store.report([Report(job.id, claimed.token, 0.99, "late", '"late"')])
    assert store.get(job.id) == finished
    store.report([])


def test_report_for_a_pending_job_is_dropped(store: Store, put: Put) -> None:
    job = put(store)
    store.report([Report(job.id, "any", 0.5, "nope", '"nope"')])
    assert store.get(job.id) == job


# --- rescues -----------------------------------------------------------------------------------


def test_an_expired_lease_is_rescued_back_to_pending(
    short_store: Store, put: Put, claim_one: ClaimOne, rescue_until: RescueUntil
) -> None:
    job = put(short_store, max_attempts=3)
    claimed = claim_one(short_store)
    rescued = rescue_until(short_store, job.id)[job.id]

    assert rescued.status is Status.PENDING
    assert rescued.rescues == 1
    assert rescued.attempt == 1  # the lost attempt counts
    assert rescued.error is not None and rescued.error.type == "LeaseExpired"
    assert rescued.run_at <= short_store.now()
    assert short_store.get(job.id) == rescued
    assert short_store.heartbeat("worker-1", [lease(claimed)]).lost == {job.id}

    again = claim_one(short_store, suspects=True)
    assert again.job.id == job.id and again.job.attempt == 2


def test_rescue_leaves_live_leases_alone(
    make_store: Callable[..., Store],
    short_store: Store,
    put: Put,
    claim_one: ClaimOne,
    rescue_until: RescueUntil,
) -> None:
    long_store = make_store(lease_seconds=3600)
    live = put(long_store)
    live_claim = claim_one(long_store)
    expiring = put(short_store)
    claim_one(short_store)
    rescued = rescue_until(short_store, expiring.id)
    assert set(rescued) == {expiring.id}
    assert long_store.get(live.id) == live_claim.job
    assert short_store.rescue(3) == []


def test_rescue_fails_the_job_when_no_attempts_are_left(
    short_store: Store, put: Put, claim_one: ClaimOne, rescue_until: RescueUntil
) -> None:
    job = put(short_store, max_attempts=1)
    claim_one(short_store)
    rescued = rescue_until(short_store, job.id)[job.id]
    assert rescued.status is Status.FAILED
    assert rescued.error is not None and rescued.error.type == "LeaseExpired"
    assert rescued.completed_at is not None
    assert short_store.get(job.id) == rescued
    assert short_store.claim("worker-1", None, 10) == []


def test_rescue_fails_the_job_when_rescues_are_exhausted(
    short_store: Store, put: Put, claim_one: ClaimOne, rescue_until: RescueUntil
) -> None:
    job = put(short_store, max_attempts=10)
    claim_one(short_store)
    first = rescue_until(short_store, job.id, max_rescues=1)[job.id]
    assert first.status is Status.PENDING and first.rescues == 1

    claim_one(short_store, suspects=True)
    second = rescue_until(short_store, job.id, max_rescues=1)[job.id]
    assert second.status is Status.FAILED
    assert second.error is not None and second.error.type == "LeaseExpired"
    assert second.attempt == 2


def test_rescue_with_max_rescues_zero_fails_at_once(
    short_store: Store, put: Put, claim_one: ClaimOne, rescue_until: RescueUntil
) -> None:
    job = put(short_store, max_attempts=10)
    claim_one(short_store)
    rescued = rescue_until(short_store, job.id, max_rescues=0)[job.id]
    assert rescued.status is Status.FAILED
    assert rescued.error is not None and rescued.error.type == "LeaseExpired"
