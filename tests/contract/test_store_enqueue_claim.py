"""Store contract: enqueueing jobs and claiming them (order, due times, queues, limits)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, timedelta

from underway.model import Job, Status
from underway.stores import Store
from underway.stores.messages import Claimed, NewJob, Outcome

Put = Callable[..., Job]


def test_enqueue_returns_the_pending_job_as_stored(
    store: Store, new_job: Callable[..., NewJob]
) -> None:
    request = new_job(
        "mail.send",
        {"to": "a@example.com", "n": [1, 2.5, None, True]},
        queue="mail",
        priority=3,
        max_attempts=5,
        tenant="acme",
        callback_url="https://example.com/hook",
        key="mail:a",
        title="Send a mail",
        status_message="Waiting",
    )
    [job] = store.enqueue([request])

    assert job.id == request.id
    assert job.task == "mail.send"
    assert job.title == "Send a mail"
    assert job.args == {"to": "a@example.com", "n": [1, 2.5, None, True]}
    assert (job.queue, job.priority, job.max_attempts) == ("mail", 3, 5)
    assert (job.tenant, job.callback_url, job.key) == ("acme", "https://example.com/hook", "mail:a")
    assert job.status is Status.PENDING
    assert job.status_message == "Waiting"
    assert job.attempt == 0 and job.rescues == 0
    assert job.progress is None and job.payload is None and job.result is None
    assert job.error is None and not job.cancel_requested
    assert job.started_at is None and job.completed_at is None
    assert job.created_at.tzinfo is not None and job.run_at.tzinfo is not None
    assert abs(job.created_at - store.now()) < timedelta(minutes=1)
    assert job.run_at <= store.now()  # due at once
    assert store.get(job.id) == job


def test_enqueue_with_delay_or_run_at_sets_a_future_run_at(store: Store, put: Put) -> None:
    delayed = put(store, delay=3600.0)
    assert abs(delayed.run_at - delayed.created_at - timedelta(hours=1)) < timedelta(seconds=1)

    when = (store.now() + timedelta(days=2)).astimezone(UTC)
    at = put(store, run_at=when, delay=5.0)  # run_at wins over delay
    assert abs(at.run_at - when) < timedelta(milliseconds=1)
    assert store.get(at.id) == at


def test_enqueue_many_in_one_call_keeps_order(store: Store, new_job: Callable[..., NewJob]) -> None:
    requests = [new_job(args={"i": i}) for i in range(50)]
    jobs = store.enqueue(requests)
    assert [j.id for j in jobs] == [r.id for r in requests]
    assert [j.args for j in jobs] == [{"i": i} for i in range(50)]
    assert all(store.get(j.id) == j for j in jobs)
    assert store.enqueue([]) == []


def test_claim_marks_the_job_running_with_a_lease(store: Store, put: Put) -> None:
    job = put(store, args={"x": 1})
    [claimed] = store.claim("worker-1", None, 10)

    assert claimed.job.id == job.id
    assert isinstance(claimed.token, str) and claimed.token
    assert claimed.job.status is Status.RUNNING
    assert claimed.job.attempt == 1
    assert claimed.job.started_at is not None
    assert claimed.job.args == {"x": 1}
    assert store.get(job.id) == claimed.job
    assert store.claim("worker-2", None, 10) == []  # a running job is not claimed again


def test_each_claim_gets_a_new_token(
    store: Store, put: Put, claim_one: Callable[..., Claimed]
) -> None:
    put(store)
    first = claim_one(store)
    store.finish([Outcome.handed_back(first.job.id, first.token)])
    second = claim_one(store)
    assert second.token != first.token


def test_claim_order_is_priority_then_first_in_first_out(store: Store, put: Put) -> None:
    priorities = [0, 5, 0, 10, 5, 0, -1, 10]
    jobs = [put(store, priority=p, args={"i": i}) for i, p in enumerate(priorities)]
    expected = [j.id for j in sorted(jobs, key=lambda j: -j.priority)]  # stable: FIFO ties

    claimed = store.claim("worker-1", None, 100)
    assert [c.job.id for c in claimed] == expected


def test_claim_one_at_a_time_follows_the_same_order(
    store: Store, new_job: Callable[..., NewJob]
) -> None:
    # One batch: every job shares its enqueue time, so FIFO must come from the id order.
    jobs = store.enqueue([new_job(priority=i % 3, args={"i": i}) for i in range(12)])
    expected = [j.id for j in sorted(jobs, key=lambda j: -j.priority)]

    order = []
    while claimed := store.claim("worker-1", None, 1):
        order.append(claimed[0].job.id)
    assert order == expected


def test_within_a_priority_the_job_due_longest_goes_first(store: Store, put: Put) -> None:
    later = put(store)
    earlier = put(store, run_at=store.now() - timedelta(minutes=5))
    high = put(store, priority=1)
    claimed = store.claim("worker-1", None, 10)
    assert [c.job.id for c in claimed] == [high.id, earlier.id, later.id]


def test_claim_skips_jobs_not_yet_due(store: Store, put: Put) -> None:
    future = put(store, delay=3600.0)
    at_future = put(store, run_at=store.now() + timedelta(hours=1))
    assert store.claim("worker-1", None, 10) == []

    due = put(store, run_at=store.now() - timedelta(seconds=1))
    claimed = store.claim("worker-1", None, 10)
    assert [c.job.id for c in claimed] == [due.id]
    for job in (future, at_future):
        assert store.get(job.id) == job  # untouched


def test_claim_takes_only_the_queues_asked_for(store: Store, put: Put) -> None:
    a, b, c = (put(store, queue=q) for q in ("a", "b", "c"))
    claimed = store.claim("worker-1", ["a", "c", "nonexistent"], 10)
    assert {x.job.id for x in claimed} == {a.id, c.id}
    assert store.claim("worker-1", ["a", "c"], 10) == []
    assert [x.job.id for x in store.claim("worker-1", None, 10)] == [b.id]


def test_claim_respects_the_limit(store: Store, new_job: Callable[..., NewJob]) -> None:
    store.enqueue([new_job() for _ in range(5)])
    assert store.claim("worker-1", None, 0) == []
    assert len(store.claim("worker-1", None, 2)) == 2
    assert len(store.claim("worker-1", None, 2)) == 2
    assert len(store.claim("worker-1", None, 2)) == 1
    assert store.claim("worker-1", None, 2) == []


def test_two_claimers_never_get_the_same_job(
    make_store: Callable[..., Store], new_job: Callable[..., NewJob]
) -> None:
    producer = make_store()
    ids = {j.id for j in producer.enqueue([new_job(args={"i": i}) for i in range(300)])}
    claimers = [make_store(), make_store(), make_store()]
    got: list[list[uuid.UUID]] = [[] for _ in claimers]
    start = threading.Barrier(len(claimers))
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait()
            while claimed := claimers[index].claim(f"worker-{index}", None, 7):
                got[index].extend(c.job.id for c in claimed)
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(claimers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    everything = [i for part in got for i in part]
    assert len(everything) == len(set(everything)), "a job was claimed twice"
    assert set(everything) == ids
