"""Store contract: every verb changes job statuses only as `model.TRANSITIONS` allows.

A recording proxy stands in front of the store. Around every call it reads every job's status
through the store's own `list_jobs`, before and after, and checks each change: a job whose
status changed made an allowed transition, a new job appears as `pending`, and a job only
disappears through `prune`, finished. The tests below drive each verb in turn, then a
hypothesis state machine walks random sequences of all of them under the same check.

Leases are expired and finish times moved back in the database itself (`Tables`), so nothing
here waits for a clock, except the one test of a lease that really runs out.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from underway import DuplicateKey, InvalidTransition, JobNotFound
from underway.model import TRANSITIONS, Job, JobError, Status
from underway.schedule import Overlap
from underway.stores import Store
from underway.stores.messages import Claimed, JobFilter, Lease, NewJob, Outcome, Report

NewJobFn = Callable[..., NewJob]
DAY = 24 * 3600.0
EVERY_END = [Status.COMPLETED, Status.CANCELLED, Status.FAILED]
#: calls that only open or close the store; every other one is checked
UNCHECKED = frozenset({"close", "close_thread"})
ENDINGS: dict[str, Callable[[Claimed], Outcome]] = {
    "completed": lambda c: Outcome.completed(c.job.id, c.token, '"ok"'),
    "failed": lambda c: Outcome.failed(c.job.id, c.token, JobError("boom", "ValueError")),
    "retry_later": lambda c: Outcome.retry_later(c.job.id, c.token, JobError("flaky"), 0.0),
    "handed_back": lambda c: Outcome.handed_back(c.job.id, c.token),
    "cancelled": lambda c: Outcome.cancelled(c.job.id, c.token, JobError("stop", "Cancelled")),
}
ENDED_AS = {"completed": Status.COMPLETED, "failed": Status.FAILED, "cancelled": Status.CANCELLED,
            "retry_later": Status.PENDING, "handed_back": Status.PENDING}  # fmt: skip


# --- the recording proxy -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    verb: str
    job_id: uuid.UUID
    before: Status | None  # None: the job is new
    after: Status | None  # None: the job is gone


def statuses(store: Store) -> dict[uuid.UUID, Status]:
    """Every job's status, read page by page through the store's own list_jobs."""
    found: dict[uuid.UUID, Status] = {}
    cursor = None
    while True:
        page = store.list_jobs(JobFilter(), 500, cursor)
        found.update((job.id, job.status) for job in page.jobs)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def changes(
    verb: str, before: dict[uuid.UUID, Status], after: dict[uuid.UUID, Status]
) -> list[Change]:
    """The status changes one call made, each checked against the transition table."""
    made = []
    for job_id, status in after.items():
        old = before.get(job_id)
        if old is None:
            assert status is Status.PENDING, f"{verb} made job {job_id} appear as {status}"
        elif old is not status:
            assert status in TRANSITIONS[old], f"{verb} moved job {job_id}: {old} -> {status}"
        if old is not status:
            made.append(Change(verb, job_id, old, status))
    for job_id in before.keys() - after.keys():
        old = before[job_id]
        assert verb == "prune" and old.finished, f"{verb} made {old} job {job_id} disappear"
        made.append(Change(verb, job_id, old, None))
    return made


class Recorded:
    """A store whose every call is checked by `changes`; `log` keeps what each call did."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.log: list[Change] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name in UNCHECKED or not callable(attr):
            return attr

        @functools.wraps(attr)
        def checked(*args: Any, **kwargs: Any) -> Any:
            before = statuses(self.store)
            try:
                return attr(*args, **kwargs)
            finally:  # a call that raised must not have broken the rules either
                self.log += changes(name, before, statuses(self.store))

        return checked

    def made(self, verb: str) -> set[tuple[Status | None, Status | None]]:
        return {(c.before, c.after) for c in self.log if c.verb == verb}


# --- direct access to the tables, to move time without waiting ----------------------------------


@dataclass
class Tables:
    """The test's own connection to the store's tables (the tests never wait for a clock)."""

    database_url: str
    schema: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not self.database_url.startswith("sqlite"):
            from underway.stores.postgres.store import _split_url

            self.conninfo, self.schema = _split_url(self.database_url)

    def _run(self, sqlite_sql: str, pg_sql: str, params: Iterable[Any] = ()) -> None:
        if self.schema is None:
            conn = sqlite3.connect(self.database_url.removeprefix("sqlite:///"), timeout=60)
            with conn:
                conn.execute(sqlite_sql, tuple(params))
            conn.close()
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.conninfo, autocommit=True) as pg:
            pg.execute(sql.SQL(pg_sql).format(sql.Identifier(self.schema)), tuple(params))

    def expire_leases(self, ids: Iterable[uuid.UUID]) -> None:
        """Leases that ran out an hour ago, as if their worker died."""
        text = [str(i) for i in ids]
        self._run(
            "UPDATE underway_jobs SET lease_expires_at = lease_expires_at - 3600 "
            "WHERE id IN (SELECT value FROM json_each(?))",
            "UPDATE {}.underway_jobs SET lease_expires_at = lease_expires_at - interval '1 hour' "
            "WHERE id = ANY(%s::uuid[])",
            [json.dumps(text) if self.schema is None else text],
        )

    def age_finished(self, seconds: float) -> None:
        """Move every finished job's finish time `seconds` back."""
        self._run(
            "UPDATE underway_jobs SET completed_at = completed_at - ? "
            "WHERE completed_at IS NOT NULL",
            "UPDATE {}.underway_jobs SET completed_at = completed_at - %s * interval '1 second' "
            "WHERE completed_at IS NOT NULL",
            [seconds],
        )

    def wipe(self) -> None:
        for table in ("underway_jobs", "underway_schedules", "underway_queues"):
            self._run(f"DELETE FROM {table}", f"DELETE FROM {{}}.{table}")


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def recorded(store: Store) -> Recorded:
    return Recorded(store)


@pytest.fixture
def tables(database_url: str) -> Tables:
    return Tables(database_url)


def claim(store: Recorded, job: Job) -> Claimed:
    claimed = store.claim("worker-1", [job.queue], 10)
    assert [c.job.id for c in claimed] == [job.id]
    result: Claimed = claimed[0]
    return result


def enqueue(store: Recorded, new_job: NewJobFn, **fields: Any) -> Job:
    [job] = store.enqueue([new_job(queue=f"q-{uuid.uuid4().hex[:8]}", **fields)])
    result: Job = job
    return result


# --- each verb ---------------------------------------------------------------------------------


def test_enqueue_makes_pending_jobs_and_a_duplicate_key_makes_none(
    recorded: Recorded, new_job: NewJobFn
) -> None:
    first = enqueue(recorded, new_job, key="k")
    again = recorded.enqueue([new_job(key="k")])
    assert [j.id for j in again] == [first.id]
    batch = recorded.enqueue([new_job() for _ in range(3)])
    assert recorded.made("enqueue") == {(None, Status.PENDING)}
    assert {c.job_id for c in recorded.log} == {first.id, *(j.id for j in batch)}


def test_claim_heartbeat_and_report(recorded: Recorded, new_job: NewJobFn) -> None:
    job = enqueue(recorded, new_job)
    claimed = claim(recorded, job)
    beat = recorded.heartbeat("worker-1", [Lease(job.id, claimed.token)])
    assert beat.lost == frozenset() and beat.cancel_requested == frozenset()
    recorded.report([Report(job.id, claimed.token, 0.5, "half", '{"n": 1}')])
    assert recorded.made("claim") == {(Status.PENDING, Status.RUNNING)}
    assert recorded.made("heartbeat") == set() and recorded.made("report") == set()


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_each_ending_of_an_attempt(recorded: Recorded, new_job: NewJobFn, ending: str) -> None:
    job = enqueue(recorded, new_job, max_attempts=3)
    claimed = claim(recorded, job)
    assert recorded.finish([ENDINGS[ending](claimed)]) == {job.id}
    assert recorded.made("finish") == {(Status.RUNNING, ENDED_AS[ending])}


def test_a_finish_with_a_stale_token_changes_nothing(recorded: Recorded, new_job: NewJobFn) -> None:
    job = enqueue(recorded, new_job)
    claimed = claim(recorded, job)
    stale = Claimed(claimed.job, "0" * 16)
    assert recorded.finish([ENDINGS["completed"](stale)]) == set()
    assert recorded.made("finish") == set()
    assert recorded.get(job.id).status is Status.RUNNING


def test_rescue_of_an_expired_lease(
    make_store: Callable[..., Store],
    new_job: NewJobFn,
    rescue_until: Callable[..., dict[uuid.UUID, Job]],
) -> None:
    store = Recorded(make_store(lease_seconds=0.2, heartbeat_seconds=0.05))
    job = enqueue(store, new_job, max_attempts=3)
    claim(store, job)
    rescued = rescue_until(store, job.id)  # polls until the real lease ran out
    assert rescued[job.id].status is Status.PENDING
    assert store.made("rescue") == {(Status.RUNNING, Status.PENDING)}


def test_rescue_past_max_rescues_fails_the_job(
    recorded: Recorded, tables: Tables, new_job: NewJobFn
) -> None:
    job = enqueue(recorded, new_job, max_attempts=5)
    claim(recorded, job)
    tables.expire_leases([job.id])
    [rescued] = recorded.rescue(0)
    assert rescued.id == job.id and rescued.status is Status.FAILED
    assert recorded.made("rescue") == {(Status.RUNNING, Status.FAILED)}


def test_cancel_of_a_pending_and_of_a_running_job(recorded: Recorded, new_job: NewJobFn) -> None:
    waiting = enqueue(recorded, new_job)
    assert recorded.cancel(waiting.id).status is Status.CANCELLED
    job = enqueue(recorded, new_job)
    claimed = claim(recorded, job)
    assert recorded.cancel(job.id).cancel_requested  # running: a request, not a state
    assert recorded.made("cancel") == {(Status.PENDING, Status.CANCELLED)}
    with pytest.raises(InvalidTransition):
        recorded.cancel(enqueue_finished(recorded, new_job).id)
    recorded.finish([ENDINGS["handed_back"](claimed)])  # the worker saw the request
    assert recorded.get(job.id).status is Status.CANCELLED


def enqueue_finished(store: Recorded, new_job: NewJobFn) -> Job:
    job = enqueue(store, new_job)
    store.finish([ENDINGS["completed"](claim(store, job))])
    result: Job = store.get(job.id)
    return result


def test_retry_of_a_failed_and_of_a_cancelled_job(recorded: Recorded, new_job: NewJobFn) -> None:
    failed = enqueue(recorded, new_job, max_attempts=1)
    recorded.finish([ENDINGS["failed"](claim(recorded, failed))])
    cancelled = enqueue(recorded, new_job)
    recorded.cancel(cancelled.id)
    for job in (failed, cancelled):
        assert recorded.retry(job.id).status is Status.PENDING
    assert recorded.made("retry") == {(Status.FAILED, Status.PENDING),
                                      (Status.CANCELLED, Status.PENDING)}  # fmt: skip
    with pytest.raises(InvalidTransition):
        recorded.retry(failed.id)  # pending now
    with pytest.raises(InvalidTransition):
        recorded.retry(enqueue_finished(recorded, new_job).id)  # completed is final


def test_prune_deletes_only_finished_jobs(
    recorded: Recorded, tables: Tables, new_job: NewJobFn
) -> None:
    done = enqueue_finished(recorded, new_job)
    waiting = enqueue(recorded, new_job)
    tables.age_finished(2 * DAY)
    assert recorded.prune(DAY, EVERY_END) == 1
    assert recorded.made("prune") == {(Status.COMPLETED, None)}
    assert recorded.get(done.id) is None and recorded.get(waiting.id) is not None


def schedule_job(new_job: NewJobFn, name: str) -> NewJob:
    job = new_job(task="tests.periodic", queue=f"q-{name}")
    job.schedule = name
    return job


@pytest.mark.parametrize("overlap", list(Overlap))
def test_fire_schedule_with_each_overlap(
    recorded: Recorded, new_job: NewJobFn, overlap: Overlap
) -> None:
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    recorded.register_schedule("every-minute", "tests.periodic", "every 60s", anchor)
    slot = anchor + timedelta(minutes=1)
    first = recorded.fire_schedule("every-minute", slot, schedule_job(new_job, "every-minute"),
                                   overlap)  # fmt: skip
    assert first is not None and first.status is Status.PENDING
    # the first job is unfinished: the next slot follows the policy
    second = recorded.fire_schedule(
        "every-minute", slot + timedelta(minutes=1), schedule_job(new_job, "every-minute"), overlap
    )
    assert (second is not None) is (overlap is Overlap.ALLOW)
    again = recorded.fire_schedule("every-minute", slot, schedule_job(new_job, "every-minute"),
                                   overlap)  # fmt: skip
    assert again is None  # a slot fires once
    assert recorded.made("fire_schedule") == {(None, Status.PENDING)}


def test_trigger_schedule(recorded: Recorded, new_job: NewJobFn) -> None:
    recorded.register_schedule("nightly", "tests.periodic", "every 86400s", datetime.now(UTC))
    job = recorded.trigger_schedule("nightly", schedule_job(new_job, "nightly"))
    assert job.status is Status.PENDING and job.schedule == "nightly"
    with pytest.raises(JobNotFound):
        recorded.trigger_schedule("no-such-schedule", schedule_job(new_job, "x"))
    assert recorded.made("trigger_schedule") == {(None, Status.PENDING)}


# --- random walks ------------------------------------------------------------------------------


class Walk(RuleBasedStateMachine):
    """Random sequences of every verb on one store. `Recorded` checks each step's transitions;
    the rules check what is certain besides (a held lease's outcome lands, a stale one never)."""

    def __init__(self, store: Recorded, tables: Tables, new_job: NewJobFn) -> None:
        super().__init__()
        tables.wipe()  # every walk starts from an empty store
        self.store, self.tables, self.new_job = store, tables, new_job
        self.jobs: list[uuid.UUID] = []
        self.held: list[Claimed] = []
        self.slot = datetime(2026, 1, 1, tzinfo=UTC)
        store.register_schedule("walk", "tests.periodic", "every 60s", self.slot)

    def _pick(self, data: st.DataObject, wanted: set[Status]) -> uuid.UUID:
        """A known job: as often as not one in a `wanted` status (so the call does something),
        otherwise any (so the refusals are checked too)."""
        now = statuses(self.store.store)  # read past the proxy: not a step of the walk
        fitting = [i for i in self.jobs if now.get(i) in wanted]
        take_fitting: bool = bool(fitting) and data.draw(st.booleans())
        return data.draw(st.sampled_from(fitting if take_fitting else self.jobs))

    def _forget(self, ids: Iterable[uuid.UUID]) -> None:
        gone = set(ids)
        self.held = [c for c in self.held if c.job.id not in gone]

    @initialize()
    def some_due_jobs(self) -> None:
        self.enqueue(None, 0.0)
        self.enqueue("a", 0.0)

    @rule(key=st.sampled_from([None, "a", "b"]), delay=st.sampled_from([0.0, 0.0, 3600.0]))
    def enqueue(self, key: str | None, delay: float) -> None:
        job = self.new_job(key=key, delay=delay, max_attempts=2)
        self.jobs += [j.id for j in self.store.enqueue([job])]

    @rule(overlap=st.sampled_from([None, *Overlap]))
    def schedule(self, overlap: Overlap | None) -> None:
        """The next slot under one overlap policy, or (None) a manual trigger."""
        job: Job | None
        if overlap is None:
            job = self.store.trigger_schedule("walk", schedule_job(self.new_job, "walk"))
        else:
            self.slot += timedelta(minutes=1)
            job = self.store.fire_schedule(
                "walk", self.slot, schedule_job(self.new_job, "walk"), overlap
            )
        self.jobs += [job.id] if job is not None else []

    @rule(ended=st.sampled_from([[Status.COMPLETED], [Status.CANCELLED], [Status.FAILED],
                                 EVERY_END]))  # fmt: skip
    def prune(self, ended: list[Status]) -> None:
        self.tables.age_finished(2 * DAY)
        self.store.prune(DAY, ended)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        # A finished or pruned job is refused; the check still sees that nothing changed.
        with contextlib.suppress(InvalidTransition, JobNotFound):
            self.store.cancel(self._pick(data, {Status.PENDING, Status.RUNNING}))

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        with contextlib.suppress(InvalidTransition, DuplicateKey, JobNotFound):
            self.store.retry(self._pick(data, {Status.FAILED, Status.CANCELLED}))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def report(self, data: st.DataObject) -> None:
        c = data.draw(st.sampled_from(self.held))
        self.store.report([Report(c.job.id, c.token, 0.25, "working", None)])

    @precondition(lambda self: self.held)
    @rule()
    def heartbeat(self) -> None:
        beat = self.store.heartbeat("walker", [Lease(c.job.id, c.token) for c in self.held])
        assert beat.lost == frozenset(), "a lease nobody took back was lost"

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        self.tables.expire_leases([data.draw(st.sampled_from(self.held)).job.id])

    @precondition(lambda self: self.held)
    @rule(max_rescues=st.integers(0, 2))
    def rescue(self, max_rescues: int) -> None:
        self._forget(job.id for job in self.store.rescue(max_rescues))

    @rule(limit=st.integers(1, 3))
    def claim(self, limit: int) -> None:
        self.held += self.store.claim("walker", None, limit)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), ending=st.sampled_from(list(ENDINGS)), stale=st.booleans())
    def finish(self, data: st.DataObject, ending: str, stale: bool) -> None:
        c = data.draw(st.sampled_from(self.held))
        landed = self.store.finish([ENDINGS[ending](Claimed(c.job, "0" * 16) if stale else c)])
        assert landed == (set() if stale else {c.job.id})
        self._forget(landed)


def test_random_walks_over_every_verb_make_only_allowed_transitions(
    recorded: Recorded, tables: Tables, new_job: NewJobFn
) -> None:
    class OnThisStore(Walk):
        def __init__(self) -> None:
            super().__init__(recorded, tables, new_job)

    run_state_machine_as_test(
        OnThisStore,
        settings=hypothesis_settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,  # the same walks every run: pass or fail never depends on luck
            database=None,
        ),
    )
    # The walks are the same every run; this says they still reach every kind of verb.
    changed_by = {c.verb for c in recorded.log}
    assert {"enqueue", "claim", "finish", "cancel", "rescue", "prune", "fire_schedule",
            "trigger_schedule"} <= changed_by  # fmt: skip
