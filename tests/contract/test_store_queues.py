"""Queue controls, on every store: pause and resume, a concurrency limit that holds across every
store (process) claiming from the queue, and `queues()` reporting both with the queue's counts.
Also what a worker makes of them: a burst worker ends while a paused queue still holds jobs."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import underway
from underway import App
from underway.model import Job, Status
from underway.stores import Store
from underway.stores.messages import Claimed, NewJob, Outcome

Put = Callable[..., Job]
MakeStore = Callable[..., Store]


def ids(claimed: list[Claimed]) -> set[uuid.UUID]:
    return {c.job.id for c in claimed}


def done(claimed: Claimed) -> Outcome:
    return Outcome.completed(claimed.job.id, claimed.token, "null")


def running_in(store: Store, queue: str) -> int:
    return store.stats().by_queue.get(queue, {}).get("running", 0)


# --- pause and resume -----------------------------------------------------------------------


def test_pause_stops_claims_of_that_queue_for_every_store(make_store: MakeStore, put: Put) -> None:
    one, two = make_store(), make_store()
    mail = [put(one, queue="mail") for _ in range(3)]
    other = put(one, queue="default")
    one.set_queue_paused("mail", True)

    assert ids(two.claim("w2", None, 10)) == {other.id}
    assert two.claim("w2", ["mail"], 10) == []
    assert one.claim("w1", ["mail", "default"], 10) == []

    two.set_queue_paused("mail", False)  # resumed through the other store
    assert ids(one.claim("w1", None, 10)) == {j.id for j in mail}


def test_pausing_leaves_running_jobs_alone(make_store: MakeStore, put: Put) -> None:
    store = make_store()
    job = put(store, queue="mail")
    [claimed] = store.claim("w1", ["mail"], 1)
    store.set_queue_paused("mail", True)
    assert store.heartbeat("w1", []).lost == frozenset()
    assert store.finish([done(claimed)]) == {job.id}
    assert (current := store.get(job.id)) is not None and current.status == "completed"


def test_pause_and_resume_are_idempotent_and_need_no_jobs(store: Store, put: Put) -> None:
    store.set_queue_paused("later", True)
    store.set_queue_paused("later", True)
    job = put(store, queue="later")  # enqueueing into a paused queue is fine
    assert store.claim("w", None, 10) == []
    store.set_queue_paused("later", False)
    store.set_queue_paused("later", False)
    assert ids(store.claim("w", None, 10)) == {job.id}


def test_next_due_ignores_paused_queues(store: Store, put: Put) -> None:
    put(store, queue="mail")
    put(store, queue="reports", delay=3600)
    store.set_queue_paused("mail", True)
    later = store.next_due(None)
    assert later is not None and later > 3000  # only the scheduled report counts
    assert store.next_due(["mail"]) is None
    store.set_queue_paused("reports", True)
    assert store.next_due(None) is None

    store.set_queue_paused("mail", False)
    due = store.next_due(None)
    assert due is not None and due <= 0
    assert store.next_due(["reports"]) is None


def test_a_burst_worker_ends_while_a_paused_queue_holds_jobs(
    make_app: Callable[..., App],
) -> None:
    app = make_app(poll_seconds=0.05)

    @app.task(name="tests.noop", queue="mail")
    def noop() -> None:
        pass

    held = [noop.enqueue() for _ in range(3)]
    free = noop.options(queue="default").enqueue()
    app.pause_queue("mail")

    async def drain() -> int:
        return await asyncio.wait_for(underway.Worker(app, burst=True).drain(), timeout=60)

    assert asyncio.run(drain()) == 1
    assert (job := app.get_job(free.id)) is not None and job.status == "completed"
    assert all((j := app.get_job(h.id)) is not None and j.status == "pending" for h in held)

    app.resume_queue("mail")
    assert asyncio.run(drain()) == 3


def test_a_burst_worker_ends_while_a_queue_limited_to_zero_holds_jobs(
    make_app: Callable[..., App],
) -> None:
    """A limit of 0 stops a queue like a pause does; a burst worker must not wait for it."""
    app = make_app(poll_seconds=0.05)

    @app.task(name="tests.noop", queue="mail")
    def noop() -> None:
        pass

    held = noop.enqueue()
    app.set_queue_concurrency("mail", 0)

    async def drain() -> int:
        return await asyncio.wait_for(underway.Worker(app, burst=True).drain(), timeout=10)

    assert asyncio.run(drain()) == 0
    assert (job := app.get_job(held.id)) is not None and job.status == "pending"


# --- concurrency limits ---------------------------------------------------------------------


def test_a_limit_caps_the_queues_running_jobs_across_stores(
    make_store: MakeStore, put: Put
) -> None:
    one, two = make_store(), make_store()
    limited = [put(one, queue="bulk") for _ in range(6)]
    free = [put(one, queue="default") for _ in range(2)]
    one.set_queue_concurrency("bulk", 3)

    first = one.claim("w1", ["bulk"], 2)
    assert len(first) == 2
    second = two.claim("w2", None, 10)  # one more of bulk, and everything else
    assert len([c for c in second if c.job.queue == "bulk"]) == 1
    assert {c.job.id for c in second if c.job.queue == "default"} == {j.id for j in free}
    assert one.claim("w1", None, 10) == []
    assert two.claim("w2", ["bulk", "default"], 10) == []
    assert running_in(one, "bulk") == 3

    assert one.finish([done(first[0])]) == {first[0].job.id}
    again = two.claim("w2", None, 10)
    assert len(again) == 1 and again[0].job.queue == "bulk"
    assert one.claim("w1", None, 10) == []

    two.set_queue_concurrency("bulk", None)  # no limit any more
    rest = one.claim("w1", None, 10)
    assert len(rest) == 2
    assert ids(first + second + again + rest) >= {j.id for j in limited}


def test_a_limit_can_be_raised_and_lowered(store: Store, put: Put) -> None:
    for _ in range(6):
        put(store, queue="bulk")
    store.set_queue_concurrency("bulk", 1)
    assert len(store.claim("w", None, 10)) == 1
    store.set_queue_concurrency("bulk", 4)
    assert len(store.claim("w", None, 10)) == 3
    store.set_queue_concurrency("bulk", 2)  # already 4 running: none more, none taken back
    assert store.claim("w", None, 10) == []
    assert running_in(store, "bulk") == 4
    store.set_queue_concurrency("bulk", 0)
    assert store.claim("w", None, 10) == []


def test_a_paused_limited_queue_stays_paused(store: Store, put: Put) -> None:
    for _ in range(4):
        put(store, queue="bulk")
    store.set_queue_concurrency("bulk", 2)
    store.set_queue_paused("bulk", True)
    assert store.claim("w", None, 10) == []
    assert store.claim("w", ["bulk"], 10) == []
    store.set_queue_paused("bulk", False)
    assert len(store.claim("w", ["bulk"], 10)) == 2


def test_a_limit_holds_when_two_stores_claim_at_once(
    make_store: MakeStore, new_job: Callable[..., NewJob]
) -> None:
    """Two stores (processes) claim from a queue limited to 3 in two threads, each holding its
    jobs a while and finishing them one at a time. The queue never has more than 3 running:
    neither by the claimers' own count nor in the store."""
    limit, total = 3, 60
    stores = [make_store(), make_store()]
    stores[0].enqueue([new_job(queue="bulk", args={"i": i}) for i in range(total)])
    stores[0].enqueue([new_job(queue="default", args={"i": i}) for i in range(total)])
    stores[0].set_queue_concurrency("bulk", limit)

    lock = threading.Lock()
    held: set[uuid.UUID] = set()  # claimed and not yet finished: never more than are running
    seen: list[int] = []
    in_store: list[int] = []
    finished: list[uuid.UUID] = []
    problems: list[str] = []
    start = threading.Barrier(len(stores))

    def work(store: Store, name: str) -> None:
        mine: list[Claimed] = []
        start.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            claimed = [c for c in store.claim(name, None, 4) if c.job.queue == "bulk"]
            running = running_in(store, "bulk")
            with lock:
                held.update(ids(claimed))
                seen.append(len(held))
                in_store.append(running)
                if len(finished) >= total:
                    return
            mine += claimed
            if mine:
                oldest = mine.pop(0)
                with lock:
                    held.discard(oldest.job.id)
                if store.finish([done(oldest)]) != {oldest.job.id}:
                    problems.append(f"{name} lost its lease on {oldest.job.id}")
                with lock:
                    finished.append(oldest.job.id)
        problems.append(f"{name} gave up with {len(finished)} of {total} bulk jobs finished")

    threads = [threading.Thread(target=work, args=(s, f"worker-{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not problems
    assert sorted(finished) == sorted(set(finished)) and len(finished) == total
    assert max(seen) <= limit, f"the claimers held {max(seen)} bulk jobs at once"
    assert max(in_store) <= limit, f"the store had {max(in_store)} bulk jobs running at once"
    assert max(seen) == limit  # the limit was reached, so the check meant something


def test_app_refuses_a_negative_limit(make_app: Callable[..., App]) -> None:
    app = make_app()
    with pytest.raises(ValueError, match=">= 0"):
        app.set_queue_concurrency("bulk", -1)
    assert app.queues() == []


# --- reporting --------------------------------------------------------------------------------


def test_queues_reports_controls_and_counts(store: Store, put: Put) -> None:
    put(store, queue="mail")
    put(store, queue="mail")
    put(store, queue="bulk")
    [claimed] = store.claim("w", ["bulk"], 1)
    put(store, queue="bulk")
    store.set_queue_paused("mail", True)
    store.set_queue_concurrency("bulk", 5)
    store.set_queue_paused("empty", True)
    store.set_queue_paused("empty", False)

    def zero(**counts: int) -> dict[str, int]:
        return {s.value: counts.get(s.value, 0) for s in Status}

    queues = store.queues()
    assert [q.name for q in queues] == ["bulk", "empty", "mail"]  # sorted; controls alone count
    by_name: dict[str, Any] = {q.name: q for q in queues}
    assert (by_name["mail"].paused, by_name["mail"].concurrency) == (True, None)
    assert by_name["mail"].counts == zero(pending=2)
    assert (by_name["bulk"].paused, by_name["bulk"].concurrency) == (False, 5)
    assert by_name["bulk"].counts == zero(pending=1, running=1)
    assert (by_name["empty"].paused, by_name["empty"].concurrency) == (False, None)
    assert by_name["empty"].counts == zero()

    store.finish([done(claimed)])
    store.set_queue_concurrency("bulk", None)
    bulk = next(q for q in store.queues() if q.name == "bulk")
    assert (bulk.concurrency, bulk.counts) == (None, zero(pending=1, completed=1))


def test_an_empty_store_has_no_queues(store: Store) -> None:
    assert store.queues() == []
