"""Store contract: the change feed, attempt history, the workers registry and cancel notices
(migration 0003). Every verb that changes what a watcher can see records one change carrying
the job as it was right after it, in the transaction that made it; a heartbeat records nothing.

Leases are expired and times moved back in the database itself (`Tables`), so nothing here
waits for a clock, except where a real lease or a worker's registration runs out.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
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

from underway import DuplicateKey, InvalidArguments, InvalidTransition, JobNotFound
from underway.ids import uuid7
from underway.model import Change, ChangeKind, Job, JobError, Status
from underway.stores import Store
from underway.stores.messages import (
    ChangeFilter,
    Claimed,
    Lease,
    NewJob,
    Outcome,
    Report,
    WorkerBeat,
)

NewJobFn = Callable[..., NewJob]
DAY = 24 * 3600.0
#: the fields of a job a change carries as they were right after it (the others, such as
#: task, args, queue or tenant, never change)
CARRIED = ("status", "attempt", "rescues", "run_at", "progress", "status_message", "payload",
           "result", "error", "started_at", "completed_at", "cancel_requested")  # fmt: skip
EVERYTHING = ChangeFilter()


# --- reading the feed --------------------------------------------------------------------------

#: the task of the marker jobs `settle` enqueues; `read` and `Steps` leave them out
MARKER = "tests.marker"


def settle(store: Store, after: str, timeout: float = 120.0) -> list[Change]:
    """Every change after cursor `after`, up to a marker job enqueued now. On PostgreSQL a
    change becomes readable only once every older transaction on the server ended (decision
    0011), so a test waits for its marker instead of reading at once: once the marker is
    there, everything committed before it is too. (The deadline only bounds a hang: a long
    transaction elsewhere on a shared server holds the feed back until it ends.)"""
    job = NewJob(id=uuid7(), task=MARKER, title=MARKER, args={}, args_json="{}",
                 queue="markers", priority=0, max_attempts=1, delay=0.0, run_at=None,
                 tenant=None, callback_url=None, key=None, status_message=None)  # fmt: skip
    [marker] = store.enqueue([job])
    got: list[Change] = []
    deadline = time.monotonic() + timeout
    while True:
        batch = store.changes(after, EVERYTHING, 1000)
        for change in batch:
            got.append(change)
            if change.job.id == marker.id:
                return got
        after = batch[-1].cursor if batch else after
        if not batch:
            if time.monotonic() > deadline:
                pytest.fail(f"the marker change did not become readable in {timeout} s")
            time.sleep(0.02)


def mine(changes: Iterable[Change]) -> list[Change]:
    return [c for c in changes if c.job.task != MARKER]


def read(
    store: Store, after: str, where: ChangeFilter = EVERYTHING, page: int = 1000
) -> list[Change]:
    """Every change after cursor `after` (markers left out), read `page` at a time, each
    page resumed at the last cursor of the one before."""
    settle(store, after)
    got: list[Change] = []
    while True:
        batch = store.changes(after, where, page)
        assert len(batch) <= page
        got += batch
        if not batch:
            return mine(got)
        after = batch[-1].cursor


def kinds(changes: Iterable[Change]) -> list[ChangeKind]:
    return [c.kind for c in changes]


def position(cursor: str) -> tuple[int, ...]:
    """Where a cursor is in the feed: SQLite's `<seq>`, PostgreSQL's `<xid>-<seq>`. Cursors are
    opaque to users; the test reads them only to check that they only ever go up."""
    return tuple(int(part) for part in cursor.split("-"))


def carried(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in CARRIED}


class Steps:
    """A job's changes, one step at a time: `step()` returns the changes made since the last
    call and checks that the last of them carries the job exactly as the store now has it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # From now: past everything already committed, visible to every reader or not yet.
        self.cursor = settle(store, store.change_head())[-1].cursor

    def step(self, job_id: uuid.UUID) -> list[Change]:
        settled = settle(self.store, self.cursor)
        self.cursor = settled[-1].cursor
        changes = mine(settled)
        if changes:
            now = self.store.get(job_id)
            assert changes[-1].job == now, "the last change does not carry the job as it is"
            assert all(c.at == c.job.updated_at for c in changes)
        return changes

    def one(self, job_id: uuid.UUID) -> Change:
        changes = self.step(job_id)
        assert len(changes) == 1, kinds(changes)
        assert changes[0].job.id == job_id
        return changes[0]


# --- direct access to the tables, to move time without waiting ----------------------------------


@dataclass
class Tables:
    """The test's own connection to the store's tables."""

    database_url: str
    schema: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not self.database_url.startswith("sqlite"):
            from underway.stores.postgres.store import _split_url

            self.conninfo, self.schema = _split_url(self.database_url)

    def run(self, sqlite_sql: str, pg_sql: str, params: Sequence[Any] = ()) -> None:
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

    def expire_lease(self, job_id: uuid.UUID) -> None:
        """A lease that ran out an hour ago, as if its worker died."""
        self.run(
            "UPDATE underway_jobs SET lease_expires_at = lease_expires_at - 3600 WHERE id = ?",
            "UPDATE {}.underway_jobs SET lease_expires_at = lease_expires_at - interval '1 hour' "
            "WHERE id = %s",
            [str(job_id)],
        )

    def age_changes(self, job_id: uuid.UUID, seconds: float) -> None:
        """Move every change of a job `seconds` back."""
        self.run(
            "UPDATE underway_changes SET updated_at = updated_at - ? WHERE job_id = ?",
            "UPDATE {}.underway_changes SET updated_at = updated_at - %s * interval '1 second' "
            "WHERE EXISTS (SELECT FROM unnest(items) AS i WHERE i.job_id = %s)",
            [seconds, str(job_id)],
        )

    def age_finished(self, seconds: float) -> None:
        self.run(
            "UPDATE underway_jobs SET completed_at = completed_at - ? "
            "WHERE completed_at IS NOT NULL",
            "UPDATE {}.underway_jobs SET completed_at = completed_at - %s * interval '1 second' "
            "WHERE completed_at IS NOT NULL",
            [seconds],
        )


@pytest.fixture
def tables(database_url: str) -> Tables:
    return Tables(database_url)


def claim(store: Store, job: Job, worker: str = "worker-1", suspects: bool = False) -> Claimed:
    claimed = store.claim(worker, [job.queue], 10, suspects)
    assert [c.job.id for c in claimed] == [job.id]
    return claimed[0]


def enqueue(store: Store, new_job: NewJobFn, **fields: Any) -> Job:
    """A job alone in a queue of its own, so claims take exactly it."""
    fields.setdefault("queue", f"q-{uuid.uuid4().hex[:8]}")
    [job] = store.enqueue([new_job(**fields)])
    return job


BOOM = JobError("boom", "ValueError", "Traceback ...")
ENDINGS = ["completed", "failed", "retry", "back", "cancelled"]

# --- each kind of change -----------------------------------------------------------------------


def test_a_whole_run_records_each_step_with_the_job_as_it_was_right_after_it(
    store: Store, new_job: NewJobFn
) -> None:
    steps = Steps(store)
    job = enqueue(store, new_job, args={"n": 1}, tenant="acme", status_message="queued")
    enqueued = steps.one(job.id)
    assert enqueued.kind is ChangeKind.ENQUEUED and enqueued.job.status is Status.PENDING
    assert enqueued.job.args == {"n": 1} and enqueued.job.status_message == "queued"

    claimed = claim(store, job)
    started = steps.one(job.id)
    assert started.kind is ChangeKind.STARTED
    assert (started.job.status, started.job.attempt) == (Status.RUNNING, 1)
    assert started.job.started_at is not None

    store.heartbeat("worker-1", [Lease(job.id, claimed.token)])
    assert steps.step(job.id) == []  # a heartbeat changes nothing a watcher sees

    store.report([Report(job.id, claimed.token, 0.5, "half way", '{"rows": 10}')])
    reported = steps.one(job.id)
    assert reported.kind is ChangeKind.REPORTED
    assert (reported.job.progress, reported.job.status_message) == (0.5, "half way")
    assert reported.job.payload == {"rows": 10}

    store.report([Report(job.id, claimed.token, 0.5, "half way", None)])
    assert steps.step(job.id) == []  # the same report again: nothing to see
    store.report([Report(job.id, claimed.token, 0.5, "nearly", None)])
    message_only = steps.one(job.id)
    assert message_only.kind is ChangeKind.REPORTED
    assert message_only.job.status_message == "nearly" and message_only.job.payload == {"rows": 10}

    store.finish([Outcome.completed(job.id, claimed.token, '{"total": 3}')])
    completed = steps.one(job.id)
    assert completed.kind is ChangeKind.COMPLETED
    assert completed.job.result == {"total": 3} and completed.job.completed_at is not None
    assert completed.job.error is None


def test_a_duplicate_key_and_a_stale_finish_record_nothing(store: Store, new_job: NewJobFn) -> None:
    first = enqueue(store, new_job, key="k")
    steps = Steps(store)
    [again] = store.enqueue([new_job(key="k")])
    assert again.id == first.id and steps.step(first.id) == []
    claimed = claim(store, first)
    steps.one(first.id)
    store.finish([Outcome.completed(first.id, "0" * 16, "null")])
    store.report([Report(first.id, "0" * 16, 0.9, "stale", None)])
    assert steps.step(first.id) == []
    assert store.finish([Outcome.completed(first.id, claimed.token, "null")]) == {first.id}
    assert kinds(steps.step(first.id)) == [ChangeKind.COMPLETED]


def test_a_failure_out_of_attempts_records_failed_with_its_error(
    store: Store, new_job: NewJobFn
) -> None:
    job = enqueue(store, new_job, max_attempts=1)
    claimed = claim(store, job)
    steps = Steps(store)
    store.finish([Outcome.failed(job.id, claimed.token, BOOM)])
    failed = steps.one(job.id)
    assert failed.kind is ChangeKind.FAILED and failed.job.status is Status.FAILED
    assert failed.job.error == BOOM


def test_a_retry_wait_and_a_hand_back_record_requeued(store: Store, new_job: NewJobFn) -> None:
    job = enqueue(store, new_job, max_attempts=3)
    steps = Steps(store)
    claimed = claim(store, job)
    steps.step(job.id)
    store.finish([Outcome.retry_later(job.id, claimed.token, BOOM, 3600.0)])
    waiting = steps.one(job.id)
    assert waiting.kind is ChangeKind.REQUEUED
    assert (waiting.job.status, waiting.job.attempt) == (Status.PENDING, 1)
    assert waiting.job.error == BOOM and waiting.job.run_at > waiting.at

    job = enqueue(store, new_job)
    claimed = claim(store, job)
    steps.step(job.id)
    store.finish([Outcome.handed_back(job.id, claimed.token)])
    handed = steps.one(job.id)
    assert handed.kind is ChangeKind.REQUEUED
    assert (handed.job.status, handed.job.attempt) == (Status.PENDING, 0)  # not counted


def test_a_rescue_records_requeued_or_failed(
    store: Store, tables: Tables, new_job: NewJobFn
) -> None:
    job = enqueue(store, new_job, max_attempts=3)
    claim(store, job)
    steps = Steps(store)
    tables.expire_lease(job.id)
    assert [j.id for j in store.rescue(3)] == [job.id]
    rescued = steps.one(job.id)
    assert rescued.kind is ChangeKind.REQUEUED
    assert (rescued.job.status, rescued.job.rescues) == (Status.PENDING, 1)
    assert rescued.job.error is not None and rescued.job.error.type == "LeaseExpired"

    claim(store, job, suspects=True)
    steps.step(job.id)
    tables.expire_lease(job.id)
    store.rescue(1)  # out of rescues
    assert kinds(steps.step(job.id)) == [ChangeKind.FAILED]


def test_cancels_record_cancelled_or_a_request_then_cancelled(
    store: Store, new_job: NewJobFn
) -> None:
    steps = Steps(store)
    waiting = enqueue(store, new_job)
    steps.step(waiting.id)
    store.cancel(waiting.id)
    cancelled = steps.one(waiting.id)
    assert cancelled.kind is ChangeKind.CANCELLED and cancelled.job.status is Status.CANCELLED

    job = enqueue(store, new_job)
    claimed = claim(store, job)
    steps.step(job.id)
    store.cancel(job.id)
    requested = steps.one(job.id)
    assert requested.kind is ChangeKind.CANCEL_REQUESTED
    assert requested.job.status is Status.RUNNING and requested.job.cancel_requested
    store.cancel(job.id)
    assert steps.step(job.id) == []  # asked already
    store.finish([Outcome.cancelled(job.id, claimed.token, JobError("stop", "Cancelled"))])
    ended = steps.one(job.id)
    assert ended.kind is ChangeKind.CANCELLED and not ended.job.cancel_requested

    job = enqueue(store, new_job)
    claimed = claim(store, job)
    store.cancel(job.id)
    steps.step(job.id)
    store.finish([Outcome.handed_back(job.id, claimed.token)])  # a request wins over a requeue
    assert kinds(steps.step(job.id)) == [ChangeKind.CANCELLED]


def test_a_retry_of_a_failed_or_cancelled_job_records_retried(
    store: Store, new_job: NewJobFn
) -> None:
    failed = enqueue(store, new_job, max_attempts=1)
    store.finish([Outcome.failed(failed.id, claim(store, failed).token, BOOM)])
    cancelled = enqueue(store, new_job)
    store.cancel(cancelled.id)
    steps = Steps(store)
    for job in (failed, cancelled):
        store.retry(job.id)
        retried = steps.one(job.id)
        assert retried.kind is ChangeKind.RETRIED
        assert (retried.job.status, retried.job.attempt) == (Status.PENDING, 0)
        with pytest.raises(InvalidTransition):
            store.retry(job.id)
        assert steps.step(job.id) == []


# --- order, cursors and filters ----------------------------------------------------------------


def test_changes_come_in_commit_order_with_unique_increasing_cursors(
    store: Store, make_store: Callable[..., Store], new_job: NewJobFn
) -> None:
    other = make_store()  # another process, on a connection of its own
    head = store.change_head()
    a, b = enqueue(store, new_job, queue="q"), enqueue(other, new_job, queue="q")
    [first, second] = store.claim("worker-1", ["q"], 2)
    other.report([Report(second.job.id, second.token, 0.1, None, None)])
    store.report([Report(first.job.id, first.token, 0.2, None, None)])
    other.finish([Outcome.completed(first.job.id, first.token, "1")])
    store.cancel(second.job.id)
    made = [(c.job.id, c.kind) for c in read(store, head)]
    assert made[:2] == [(a.id, ChangeKind.ENQUEUED), (b.id, ChangeKind.ENQUEUED)]
    assert sorted(made[2:4]) == sorted([(a.id, ChangeKind.STARTED), (b.id, ChangeKind.STARTED)])
    assert made[4:] == [(second.job.id, ChangeKind.REPORTED), (first.job.id, ChangeKind.REPORTED),
                        (first.job.id, ChangeKind.COMPLETED),
                        (second.job.id, ChangeKind.CANCEL_REQUESTED)]  # fmt: skip
    everything = read(store, head)
    cursors = [position(c.cursor) for c in everything]
    assert cursors == sorted(set(cursors)), "cursors must be unique and only go up"
    assert all(position(c.cursor) > position(head) for c in everything)
    assert [c.cursor for c in read(other, head, page=1)] == [c.cursor for c in everything]


def test_change_head_starts_after_everything_before_it(store: Store, new_job: NewJobFn) -> None:
    start = store.change_head()
    before = enqueue(store, new_job)
    settle(store, start)  # on PostgreSQL the head only moves past what every reader can see
    head = store.change_head()
    assert position(head) > position(start)
    assert read(store, head) == []
    after = enqueue(store, new_job)
    store.cancel(before.id)
    assert [(c.job.id, c.kind) for c in read(store, head)] == [
        (after.id, ChangeKind.ENQUEUED), (before.id, ChangeKind.CANCELLED)]  # fmt: skip
    assert position(store.change_head()) > position(head)


def test_each_filter_and_their_combinations(store: Store, new_job: NewJobFn) -> None:
    head = store.change_head()
    for task, queue, tenant in [("t.a", "q1", "acme"), ("t.a", "q2", "acme"), ("t.b", "q1", None),
                                ("t.b", "q2", "other"), ("t.a", "q1", None)]:  # fmt: skip
        [job] = store.enqueue([new_job(task=task, queue=queue, tenant=tenant)])
        store.cancel(job.id)
    everything = read(store, head)
    assert len(everything) == 10
    some = everything[3].job.id
    for job_id in (None, some):
        for task in (None, "t.a", "t.b", "t.none"):
            for queue in (None, "q1", "q2"):
                for tenant in (None, "acme", "other"):
                    where = ChangeFilter(job_id, task, queue, tenant)
                    wanted = [c for c in everything if matches(c.job, where)]
                    assert read(store, head, where, page=3) == wanted, where


def matches(job: Job, where: ChangeFilter) -> bool:
    return all(want is None or want == have for want, have in [
        (where.job_id, job.id), (where.task, job.task), (where.queue, job.queue),
        (where.tenant, job.tenant)])  # fmt: skip


def test_a_foreign_or_garbage_cursor_is_refused(
    store: Store, store_kind: str, new_job: NewJobFn
) -> None:
    enqueue(store, new_job)
    foreign = "748-3-1" if store_kind == "sqlite" else "17"  # the other store's cursor form
    for cursor in (
        foreign,
        "",
        "garbage",
        "1-2",
        "1-2-3-4",
        "1.5",
        "-1",
        "99999999999999999999999999",
        "99999999999999999999999-1-1",
        "1-99999999999999999999-1",
        "1-1-99999999999999999999",
    ):
        with pytest.raises(InvalidArguments, match="cursor"):
            store.changes(cursor, EVERYTHING, 10)


# --- pruning -----------------------------------------------------------------------------------


def test_prune_changes_drops_only_old_ones_and_readers_resume_past_them(
    store: Store, tables: Tables, new_job: NewJobFn
) -> None:
    head = store.change_head()
    old = enqueue(store, new_job)
    store.cancel(old.id)
    recent = enqueue(store, new_job)
    [first_old, _, first_recent] = read(store, head)
    tables.age_changes(old.id, 2 * DAY)
    assert store.prune_changes(DAY, batch=1) == 2
    assert store.prune_changes(DAY) == 0
    assert [c.job.id for c in read(store, head)] == [recent.id]
    assert read(store, first_old.cursor) == [first_recent]  # a pruned cursor still resumes
    assert store.get(old.id) is not None  # the job itself stays


def test_after_every_change_aged_out_a_new_one_still_lands_after_the_readers_cursor(
    store: Store, tables: Tables, new_job: NewJobFn
) -> None:
    head = store.change_head()
    jobs = [enqueue(store, new_job) for _ in range(3)]
    last = read(store, head)[-1]
    tables.run(  # every change, the read's marker too
        "UPDATE underway_changes SET updated_at = updated_at - ?",
        "UPDATE {}.underway_changes SET updated_at = updated_at - %s * interval '1 second'",
        [2 * DAY],
    )
    assert store.prune_changes(DAY) >= len(jobs)  # the newest may stay: it holds the next seq
    fresh = enqueue(store, new_job)
    assert [c.job.id for c in read(store, last.cursor)] == [fresh.id]


def test_pruning_a_job_drops_its_changes_and_attempts(
    store: Store, tables: Tables, new_job: NewJobFn
) -> None:
    head = store.change_head()
    done = enqueue(store, new_job)
    store.finish([Outcome.completed(done.id, claim(store, done).token, "1")])
    kept = enqueue(store, new_job)
    store.finish([Outcome.completed(kept.id, claim(store, kept).token, "2")])
    assert len(store.attempts(done.id)) == 1
    tables.age_finished(2 * DAY)
    tables.run(
        "UPDATE underway_jobs SET completed_at = completed_at + ? WHERE id = ?",
        "UPDATE {}.underway_jobs SET completed_at = completed_at + %s * interval '1 second' "
        "WHERE id = %s",
        [2 * DAY, str(kept.id)],
    )
    assert store.prune(DAY, [Status.COMPLETED]) == 1
    assert {c.job.id for c in read(store, head)} == {kept.id}
    assert store.attempts(done.id) == [] and len(store.attempts(kept.id)) == 1


# --- attempts ----------------------------------------------------------------------------------


def test_attempts_keep_every_run_and_how_it_ended(
    store: Store, tables: Tables, new_job: NewJobFn
) -> None:
    job = enqueue(store, new_job, max_attempts=5)
    assert store.attempts(job.id) == []
    c = claim(store, job, worker="w-1")
    [running] = store.attempts(job.id)
    assert (running.number, running.worker_id, running.outcome) == (1, "w-1", None)
    assert running.ended_at is None and running.duration is None and running.error is None
    store.finish([Outcome.retry_later(job.id, c.token, JobError("flaky", "IOError"), 0.0)])
    c = claim(store, job, worker="w-2")
    store.finish([Outcome.handed_back(job.id, c.token)])
    claim(store, job, worker="w-3")
    tables.expire_lease(job.id)
    store.rescue(3)
    c = claim(store, job, worker="w-4", suspects=True)
    store.finish([Outcome.completed(job.id, c.token, '"ok"')])
    got = store.attempts(job.id)
    assert [(a.number, a.worker_id, a.outcome) for a in got] == [
        (1, "w-1", "retry"), (2, "w-2", "handed_back"), (2, "w-3", "rescued"),
        (3, "w-4", "completed")]  # fmt: skip
    errors = [a.error for a in got]
    assert errors[0] == JobError("flaky", "IOError")
    assert errors[1] is None and errors[3] is None  # handed back and completed: nothing failed
    assert errors[2] is not None and errors[2].type == "LeaseExpired"
    for a in got:
        assert a.job_id == job.id and a.ended_at is not None and a.ended_at >= a.started_at
        assert a.duration is not None and a.duration >= 0


def test_attempts_of_failed_and_cancelled_runs(store: Store, new_job: NewJobFn) -> None:
    job = enqueue(store, new_job, max_attempts=1)
    store.finish([Outcome.failed(job.id, claim(store, job).token, BOOM)])
    store.retry(job.id)
    c = claim(store, job)
    store.cancel(job.id)
    store.finish([Outcome.cancelled(job.id, c.token, JobError("stopped", "Cancelled"))])
    store.retry(job.id)
    c = claim(store, job)
    store.cancel(job.id)
    store.finish([Outcome.handed_back(job.id, c.token)])  # its worker stopped: cancelled
    got = store.attempts(job.id)
    assert [(a.number, a.outcome) for a in got] == [(1, "failed"), (1, "cancelled"),
                                                    (1, "cancelled")]  # fmt: skip
    assert got[0].error == JobError("boom", "ValueError")
    assert got[1].error == JobError("stopped", "Cancelled")
    assert got[2].error is None  # nothing failed: not the error of an earlier attempt
    assert got[0].started_at <= got[1].started_at <= got[2].started_at
    assert store.attempts(uuid.uuid4()) == []


def test_an_attempt_keeps_its_worker_and_times_however_the_job_ended(
    store: Store, tables: Tables, new_job: NewJobFn
) -> None:
    # The job's row is its last attempt's record until something clears it (migration 0003):
    # a finished job, a rescue out of attempts and a person's retry must each keep it whole.
    done = enqueue(store, new_job)
    store.finish([Outcome.completed(done.id, claim(store, done, worker="w-1").token, "1")])
    lost = enqueue(store, new_job, max_attempts=1)
    claim(store, lost, worker="w-2")
    tables.expire_lease(lost.id)
    store.rescue(3)
    failed = enqueue(store, new_job, max_attempts=1)
    store.finish([Outcome.failed(failed.id, claim(store, failed, worker="w-3").token, BOOM)])
    before = store.attempts(failed.id)
    store.retry(failed.id)
    got = {j.id: store.attempts(j.id) for j in (done, lost, failed)}
    assert [(a.number, a.worker_id, a.outcome) for a in got[done.id]] == [(1, "w-1", "completed")]
    assert [(a.number, a.worker_id, a.outcome) for a in got[lost.id]] == [(1, "w-2", "failed")]
    assert got[lost.id][0].error is not None and got[lost.id][0].error.type == "LeaseExpired"
    assert got[failed.id] == before  # a retry moves the record, it does not change it
    assert [(a.worker_id, a.outcome, a.error) for a in before] == [
        ("w-3", "failed", JobError("boom", "ValueError"))]  # fmt: skip
    for a in [*got[done.id], *got[lost.id], *got[failed.id]]:
        assert a.ended_at is not None and a.duration is not None and a.duration >= 0


# --- workers -----------------------------------------------------------------------------------


def beat(worker_id: str, lease: float = 60.0, **fields: Any) -> WorkerBeat:
    defaults: dict[str, Any] = {"host": "box-1", "pid": 4242, "queues": None, "concurrency": 4}
    return WorkerBeat(id=worker_id, lease=lease, **{**defaults, **fields})


def test_workers_register_by_beating_and_count_their_running_jobs(
    store: Store, new_job: NewJobFn
) -> None:
    assert store.workers() == []
    store.beat_worker(beat("w-1", queues=("a", "b"), concurrency=2))
    store.beat_worker(beat("w-2", host="box-2", pid=7))
    jobs = [enqueue(store, new_job, queue="shared") for _ in range(3)]
    held = store.claim("w-1", ["shared"], 2)
    listed = {w.id: w for w in store.workers()}
    assert list(listed) == ["w-1", "w-2"]  # oldest first
    one, two = listed["w-1"], listed["w-2"]
    assert (one.host, one.pid, one.queues, one.concurrency) == ("box-1", 4242, ("a", "b"), 2)
    assert one.running == 2
    assert (two.host, two.pid, two.queues, two.running) == ("box-2", 7, None, 0)
    assert one.started_at <= one.last_beat_at
    store.finish([Outcome.completed(held[0].job.id, held[0].token, "null")])
    store.beat_worker(beat("w-1", queues=("a", "b"), concurrency=2))
    again = {w.id: w for w in store.workers()}["w-1"]
    assert again.running == 1 and again.started_at == one.started_at
    assert again.last_beat_at >= one.last_beat_at
    store.forget_worker("w-1")
    assert [w.id for w in store.workers()] == ["w-2"]
    store.forget_worker("w-never")  # nothing to forget: no error
    assert len(jobs) == 3


def test_a_worker_whose_beat_lease_passed_is_not_listed(
    store: Store, wait_for: Callable[..., Any]
) -> None:
    store.beat_worker(beat("w-dies", lease=0.2))
    store.beat_worker(beat("w-lives", lease=600.0))
    assert {w.id for w in store.workers()} == {"w-dies", "w-lives"}
    wait_for(lambda: [w.id for w in store.workers()] == ["w-lives"], what="w-dies to age out")
    store.beat_worker(beat("w-dies", lease=600.0))  # it beats again: it is back
    assert {w.id for w in store.workers()} == {"w-dies", "w-lives"}


# --- cancel requests and notices ---------------------------------------------------------------


def test_cancel_requests_names_only_running_jobs_asked_to_cancel(
    store: Store, new_job: NewJobFn
) -> None:
    asked = enqueue(store, new_job)
    claim(store, asked)
    store.cancel(asked.id)
    busy = enqueue(store, new_job)
    claim(store, busy)
    waiting = enqueue(store, new_job)
    store.cancel(waiting.id)  # pending: cancelled at once, nothing to ask
    done = enqueue(store, new_job)
    c = claim(store, done)
    store.cancel(done.id)
    store.finish([Outcome.cancelled(done.id, c.token, JobError("stop", "Cancelled"))])
    ids = [asked.id, busy.id, waiting.id, done.id, uuid.uuid4()]
    assert store.cancel_requests(ids) == {asked.id}
    assert store.cancel_requests([busy.id]) == set() and store.cancel_requests([]) == set()


def test_a_cancel_notice_names_the_running_job(
    store: Store, make_store: Callable[..., Store], store_kind: str, new_job: NewJobFn
) -> None:
    job = enqueue(store, new_job)
    claim(store, job)
    listener = store.listen("cancels")
    try:
        make_store().cancel(job.id)  # from another process
        # SQLite, and PostgreSQL behind a transaction pooler, have no notices: the listener
        # says when to look
        if store_kind == "sqlite" or getattr(store, "transaction_pooled", False):
            assert listener.wait(5.0) is None
            return
        got: list[str] = []
        for _ in range(50):
            notice = listener.wait(0.1)
            assert notice is not None, "the connection should not have been lost"
            got += notice
            if got:
                break
        assert got == [str(job.id)]
    finally:
        listener.close()


def test_a_changes_listener_wakes_after_another_connection_enqueues(
    store: Store, make_store: Callable[..., Store], new_job: NewJobFn
) -> None:
    listener = store.listen("changes")
    try:
        make_store().enqueue([new_job()])  # before the first wait: a listener listens at once
        woke = any(listener.wait(0.1) != [] for _ in range(50))
        assert woke, "no notice of the enqueue"
    finally:
        listener.close()


# --- random walks ------------------------------------------------------------------------------


class FeedWalk(RuleBasedStateMachine):
    """Random sequences of store verbs on a few jobs. After every step it notes each job's
    state as the store reports it; the feed must hold exactly those states, in that order,
    and read in pages of any size it must give the same sequence as read at once."""

    def __init__(
        self, store: Store, tables: Tables, new_job: NewJobFn, kinds: set[ChangeKind]
    ) -> None:
        super().__init__()
        self.store, self.tables, self.new_job, self.kinds = store, tables, new_job, kinds
        self.queue = f"walk-{uuid.uuid4().hex[:8]}"  # earlier walks' jobs are never claimed
        self.head = store.change_head()
        self.jobs: list[uuid.UUID] = []
        self.held: list[Claimed] = []
        self.seen: dict[uuid.UUID, Job | None] = {}
        #: per job, the (step, kind, fields) of each change a watcher should see
        self.expected: dict[uuid.UUID, list[tuple[int, ChangeKind, dict[str, Any]]]] = {}
        self.steps = 0

    def _note(self) -> None:
        """What the last step changed, as a watcher should see it."""
        self.steps += 1
        for job_id in self.jobs:
            before, now = self.seen.get(job_id), self.store.get(job_id)
            self.seen[job_id] = now
            if now is None:  # pruned: its changes went with it
                self.expected[job_id] = []
            elif before is None or carried(before) != carried(now):
                made = (self.steps, expected_kind(before, now), carried(now))
                self.expected.setdefault(job_id, []).append(made)

    @initialize()
    def two_jobs(self) -> None:
        self.enqueue(None)
        self.enqueue("k")
        self.one_lap_through_every_kind()

    def one_lap_through_every_kind(self) -> None:
        """Every kind of change, in a fixed order, before the random steps: which rules
        Hypothesis favours depends on what else the run imported (it draws on the constants of
        loaded modules), and a derandomized walk once never reported and never finished a job.
        So every walk checks every kind, and the random steps then vary what follows."""
        a, b = self.store.claim("walker", [self.queue], 2)  # started
        self._note()
        self.store.report([Report(a.job.id, a.token, 0.5, "busy", None)])  # reported
        self._note()
        self.store.cancel(b.job.id)  # cancel requested, while it runs
        self._note()
        for outcome in (ending_of(b, "cancelled"), ending_of(a, "back")):  # cancelled, requeued
            self.store.finish([outcome])
            self._note()
        [a] = self.store.claim("walker", [self.queue], 1)
        self._note()
        self.store.finish([ending_of(a, "completed")])  # completed
        self._note()
        self.store.retry(b.job.id)  # retried, from cancelled
        self._note()
        [b] = self.store.claim("walker", [self.queue], 1)
        self._note()
        self.store.finish([ending_of(b, "failed")])  # failed
        self._note()

    @precondition(lambda self: len(self.jobs) < 4)
    @rule(key=st.sampled_from([None, "k"]))
    def enqueue(self, key: str | None) -> None:
        key = None if key is None else f"{self.queue}-{key}"  # no earlier walk's job holds it
        [job] = self.store.enqueue([self.new_job(queue=self.queue, key=key, max_attempts=2)])
        self.jobs += [] if job.id in self.jobs else [job.id]
        self._note()

    @rule(limit=st.integers(1, 3))
    def claim(self, limit: int) -> None:
        self.held += self.store.claim("walker", [self.queue], limit)
        self._note()

    @precondition(lambda self: self.held)
    @rule(data=st.data(), progress=st.sampled_from([None, 0.5, 1.0]),
          message=st.sampled_from([None, "busy"]),
          payload=st.sampled_from([None, '{"n": 1}']))  # fmt: skip
    def report(self, data: st.DataObject, progress: float | None, message: str | None,
               payload: str | None) -> None:  # fmt: skip
        c = data.draw(st.sampled_from(self.held))
        self.store.report([Report(c.job.id, c.token, progress, message, payload)])
        self._note()

    @precondition(lambda self: self.held)
    @rule()
    def heartbeat(self) -> None:
        self.store.heartbeat("walker", [Lease(c.job.id, c.token) for c in self.held])
        self._note()

    @precondition(lambda self: self.held)
    @rule(data=st.data(), ending=st.sampled_from(ENDINGS), with_report=st.booleans())
    def finish(self, data: st.DataObject, ending: str, with_report: bool) -> None:
        c = data.draw(st.sampled_from(self.held))
        outcome = ending_of(c, ending)
        if with_report:
            outcome = outcome.with_reports(0.75, "ending", '{"n": 2}')
        self.store.finish([outcome])
        self.held = [h for h in self.held if h.job.id != c.job.id]
        self._note()

    @precondition(lambda self: self.held)
    @rule(data=st.data(), max_rescues=st.integers(0, 2))
    def rescue(self, data: st.DataObject, max_rescues: int) -> None:
        self.tables.expire_lease(data.draw(st.sampled_from(self.held)).job.id)
        gone = {job.id for job in self.store.rescue(max_rescues)}
        self.held = [h for h in self.held if h.job.id not in gone]
        self._note()

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        with contextlib.suppress(InvalidTransition, JobNotFound):
            self.store.cancel(data.draw(st.sampled_from(self.jobs)))
        self._note()

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        with contextlib.suppress(InvalidTransition, DuplicateKey, JobNotFound):
            self.store.retry(data.draw(st.sampled_from(self.jobs)))
        self._note()

    @rule()
    def prune(self) -> None:
        self.tables.age_finished(2 * DAY)
        self.store.prune(DAY, [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
        self._note()

    @rule(data=st.data())
    def read_in_pages(self, data: st.DataObject) -> None:
        settle(self.store, self.head)
        at_once = self.store.changes(self.head, EVERYTHING, 100_000)
        sizes = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
        paged, cursor = [], self.head
        for n in range(len(at_once) + 1):
            batch = self.store.changes(cursor, EVERYTHING, sizes[n % len(sizes)])
            if not batch:
                break
            paged += batch
            cursor = batch[-1].cursor
        assert paged == at_once

    def teardown(self) -> None:
        walked = [c for c in read(self.store, self.head) if c.job.id in self.seen]
        self.kinds.update(c.kind for c in walked)
        for job_id, job in self.seen.items():
            got = [c for c in walked if c.job.id == job_id]
            wanted = self.expected.get(job_id, [])
            assert [(c.kind, carried(c.job)) for c in got] == [(k, f) for _, k, f in wanted]
            if job is None:
                assert got == [], "a pruned job's changes went with it"
            else:  # a report that changes nothing records nothing, yet stamps updated_at
                last = replace(got[-1].job, updated_at=None)
                assert last == replace(job, updated_at=None), "the last change is not the job"
        # Across jobs, the changes of each step come after those of the steps before it.
        taken: dict[uuid.UUID, int] = {}
        order = []
        for c in walked:
            order.append(self.expected[c.job.id][taken.setdefault(c.job.id, 0)][0])
            taken[c.job.id] += 1
        assert order == sorted(order)


def ending_of(c: Claimed, ending: str) -> Outcome:
    if ending == "completed":
        return Outcome.completed(c.job.id, c.token, '"ok"')
    if ending == "failed":
        return Outcome.failed(c.job.id, c.token, BOOM)
    if ending == "retry":
        return Outcome.retry_later(c.job.id, c.token, JobError("flaky", "IOError"), 0.0)
    if ending == "back":
        return Outcome.handed_back(c.job.id, c.token)
    return Outcome.cancelled(c.job.id, c.token, JobError("stop", "Cancelled"))


def expected_kind(before: Job | None, now: Job) -> ChangeKind:
    """The kind of change that took a job from `before` to `now`, as the feed names it."""
    if before is None:
        return ChangeKind.ENQUEUED
    if before.status is not now.status:
        if now.status is Status.RUNNING:
            return ChangeKind.STARTED
        if now.status is Status.PENDING:
            running = before.status is Status.RUNNING
            return ChangeKind.REQUEUED if running else ChangeKind.RETRIED
        return ChangeKind(now.status.value)
    if now.cancel_requested and not before.cancel_requested:
        return ChangeKind.CANCEL_REQUESTED
    return ChangeKind.REPORTED


def test_random_walks_the_feed_holds_every_state_in_order(
    store: Store, tables: Tables, new_job: NewJobFn
) -> None:
    made: set[ChangeKind] = set()

    class OnThisStore(FeedWalk):
        def __init__(self) -> None:
            super().__init__(store, tables, new_job, made)

    run_state_machine_as_test(
        OnThisStore,
        settings=hypothesis_settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            derandomize=True,  # the same walks for the same code and imports
            database=None,
        ),
    )
    # This says the walks make every kind of change, so their checks cover every kind.
    assert made == set(ChangeKind)
