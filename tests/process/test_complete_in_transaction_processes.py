"""`ctx.complete_in` across real worker processes on PostgreSQL: a worker killed with
`kill -9` before its transaction commits, or after, leaves the effect made exactly once and the
job completed exactly once.

The task (`procapp.pay`) charges into a `payments` table of the test's schema and completes its
job in the same transaction; file gates hold it on either side of the commit.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from process_harness import Harness, WorkerProcess, stop
from psycopg import sql

import underway
from underway.stores.postgres.store import _split_url


@pytest.fixture
def store_kind() -> str:
    """Only PostgreSQL completes a job in the task's transaction."""
    return "postgresql"


@pytest.fixture
def payments(harness: Harness) -> Iterator[Harness]:
    conninfo, schema = _split_url(harness.url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {}.payments (job_id uuid, attempt int, amount int)").format(
                sql.Identifier(schema or "")
            )
        )
    yield harness


def paid(h: Harness, job: underway.Job) -> list[tuple[int, int]]:
    """The committed payments of `job`: (attempt, amount) each."""
    conninfo, schema = _split_url(h.url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT attempt, amount FROM {}.payments WHERE job_id = %s").format(
                sql.Identifier(schema or "")
            ),
            (job.id,),
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def kill(h: Harness, worker: WorkerProcess) -> None:
    worker.proc.kill()
    assert worker.proc.wait(10) == -signal.SIGKILL, h.logs()


def completions(h: Harness) -> int:
    return sum(c.completed for c in h.app.store.counters() if c.task == "pay")


def test_killed_before_the_commit_the_rescued_attempt_charges_once(
    payments: Harness, tmp_path: Path
) -> None:
    h = payments
    commit_gate, return_gate = tmp_path / "commit", tmp_path / "return"
    job = h.task("pay").enqueue(5, str(commit_gate), str(return_gate))
    a = h.start_worker(concurrency=2)
    h.wait_until(lambda: h.events(job) == ["charged"], "the first attempt to charge")

    kill(h, a)  # inside the open transaction: the server rolls it back
    assert paid(h, job) == []
    commit_gate.touch()
    return_gate.touch()
    b = h.start_worker(concurrency=2)
    done = h.wait_job(job, timeout=30)
    stop(h, b)

    assert (done.status, done.result, done.attempt, done.rescues) == (
        "completed", {"paid": 5}, 2, 1,
    ), h.logs()  # fmt: skip
    assert paid(h, job) == [(2, 5)]
    assert [a.outcome for a in h.app.attempts(job.id)] == ["rescued", "completed"]
    assert completions(h) == 1
    assert h.events(job) == ["charged", "charged", "committed"]


def test_killed_after_the_commit_the_job_stays_completed_and_never_runs_again(
    payments: Harness, tmp_path: Path
) -> None:
    h = payments
    commit_gate, return_gate = tmp_path / "commit", tmp_path / "return"
    commit_gate.touch()
    job = h.task("pay").enqueue(7, str(commit_gate), str(return_gate))
    a = h.start_worker(concurrency=2)
    h.wait_until(lambda: "committed" in h.events(job), "the attempt to commit")

    kill(h, a)  # the task had not returned: its worker never wrote an outcome
    done = h.get(job)
    assert (done.status, done.result, done.attempt) == ("completed", {"paid": 7}, 1), h.logs()
    return_gate.touch()

    # Another worker, up and working (it runs a job of its own), past the dead one's lease:
    # nothing rescues a completed job, and nothing runs it again.
    b = h.start_worker(concurrency=2)
    probe = h.task("record").enqueue(1)
    assert h.wait_job(probe, timeout=30).status == "completed"
    h.wait_until(lambda: {w.pid for w in h.app.workers()} == {b.pid}, "A's lease to pass")
    stop(h, b)

    again = h.get(job)
    assert (again.status, again.attempt, again.rescues) == ("completed", 1, 0), h.logs()
    assert paid(h, job) == [(1, 7)]
    assert [a.outcome for a in h.app.attempts(job.id)] == ["completed"]
    assert completions(h) == 1
    assert h.events(job) == ["charged", "committed"]
