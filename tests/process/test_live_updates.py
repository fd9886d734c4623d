"""Live updates across processes: a watcher in the test process follows jobs that workers in
other processes run (every change, in order, resumable by cursor); cancels reach a running
job promptly; the workers registry and the attempt history show what happened."""

from __future__ import annotations

import itertools
import signal

import pytest
from process_harness import Harness, stop

import underway
from underway import ChangeKind, Status

pytestmark = pytest.mark.process


def follow(
    app: underway.App, job_id: object, since: str, limit: float = 30.0
) -> list[underway.Change]:
    """Every change of one job from `since` until it finishes."""
    seen: list[underway.Change] = []
    for change in app.watch(job=str(job_id), since=since, timeout=limit):
        seen.append(change)
        if change.job.finished:
            break
    return seen


def test_a_watcher_sees_every_step_of_a_job_run_in_another_process_in_order(
    harness: Harness,
) -> None:
    h = harness
    head = h.app.store.change_head()
    worker = h.start_worker()
    job = h.task("steps").enqueue(n=8)
    seen = follow(h.app, job.id, head)
    kinds = [c.kind for c in seen]
    assert kinds[:2] == [ChangeKind.ENQUEUED, ChangeKind.STARTED], kinds
    assert kinds[-1] == ChangeKind.COMPLETED
    # The last step may land with the outcome rather than as a report of its own.
    reported = [c.job for c in seen if c.kind in (ChangeKind.REPORTED, ChangeKind.COMPLETED)]
    # Each step sets the payload, then the progress: both land in one write or in two.
    # The last report may also be written again with the outcome.
    complete = [j.payload["step"] for j in reported if j.progress == j.payload["step"] / 8]
    steps = [step for step, _ in itertools.groupby(complete)]
    assert steps == list(range(1, 9)), [(j.progress, j.payload) for j in reported]
    assert [j.status_message for j in reported if j.progress is not None][-1] == "step 8 of 8"
    final = seen[-1].job
    assert final.status is Status.COMPLETED and final.result == 8 and final.progress == 1.0
    cursors = [c.cursor for c in seen]
    assert len(set(cursors)) == len(cursors)
    stop(h, worker)


def test_a_watcher_that_reconnects_with_its_cursor_misses_and_repeats_nothing(
    harness: Harness,
) -> None:
    h = harness
    head = h.app.store.change_head()
    worker = h.start_worker()
    jobs = [h.task("steps").enqueue(n=5, pause=0.05) for _ in range(3)]
    got: list[underway.Change] = []
    cursor = head
    # Short connections, each ended after three changes, each resumed from the last cursor.
    while sum(c.kind == ChangeKind.COMPLETED for c in got) < len(jobs):
        for n, change in enumerate(h.app.watch(since=cursor, timeout=20), start=1):
            got.append(change)
            cursor = change.cursor
            if n == 3 or sum(c.kind == ChangeKind.COMPLETED for c in got) == len(jobs):
                break
        else:
            pytest.fail(f"the feed went quiet after {len(got)} changes\n{h.logs()}")
    for job in jobs:
        h.wait_job(job)
    everything = list(h.app.watch(since=head, timeout=1.0))
    assert [c.cursor for c in got] == [c.cursor for c in everything][: len(got)]
    assert {c.job.id for c in got if c.kind == ChangeKind.COMPLETED} == {j.id for j in jobs}
    stop(h, worker)


def test_watchers_filter_by_task_queue_and_tenant(harness: Harness) -> None:
    h = harness
    head = h.app.store.change_head()
    one = h.task("record").options(queue="q1", tenant="acme").enqueue(n=1)
    two = h.task("record").options(queue="q2", tenant="other").enqueue(n=2)
    worker = h.start_worker()
    h.wait_job(one), h.wait_job(two)
    by_tenant = {c.job.id for c in h.app.watch(tenant="acme", since=head, timeout=0.5)}
    by_queue = {c.job.id for c in h.app.watch(queue="q2", since=head, timeout=0.5)}
    by_task = {c.job.id for c in h.app.watch(task="record", since=head, timeout=0.5)}
    assert by_tenant == {one.id} and by_queue == {two.id} and by_task == {one.id, two.id}
    stop(h, worker)


def test_a_cancel_reaches_a_running_job_long_before_the_next_heartbeat(harness: Harness) -> None:
    h = harness
    # Heartbeats every 20 s: only the prompt path can stop the job before it ends by itself.
    worker = h.start_worker(heartbeat_seconds=20.0, lease_seconds=60.0)
    job = h.task("long_sync").enqueue(seconds=4.0)
    h.wait_until(lambda: h.started(job), "the job started")
    h.app.cancel(job.id)
    done = h.wait_job(job, timeout=10)
    assert done.status is Status.CANCELLED, done
    assert "stopped" in h.events(done), h.events(done)
    stop(h, worker)


def test_the_workers_registry_lists_live_workers_and_drops_dead_ones(harness: Harness) -> None:
    h = harness
    gate = h.tmp_path / "gate"
    first = h.start_worker(concurrency=3)
    second = h.start_worker(concurrency=5)
    h.wait_until(lambda: len(h.app.workers()) == 2, "both workers are listed")
    listed = {w.pid: w for w in h.app.workers()}
    assert set(listed) == {first.pid, second.pid}
    assert {w.concurrency for w in listed.values()} == {3, 5}
    job = h.task("gated").enqueue(n=1, gate=str(gate))
    h.wait_until(lambda: h.started(job), "the gated job started")
    running = {w.pid: w.running for w in h.app.workers()}
    assert sorted(running.values()) == [0, 1], running
    first.signal(signal.SIGKILL)
    h.wait_exit(first, timeout=10)
    h.wait_until(
        lambda: [w.pid for w in h.app.workers()] == [second.pid],
        "the dead worker aged out",
        timeout=30,
    )
    gate.touch()
    h.wait_job(job, timeout=30)
    stop(h, second)
    assert h.app.workers() == []


def test_attempt_history_keeps_a_rescue_and_the_run_that_completed(harness: Harness) -> None:
    h = harness
    gate = h.tmp_path / "gate"
    victim = h.start_worker()
    job = h.task("gated").enqueue(n=7, gate=str(gate))
    h.wait_until(lambda: h.started(job), "the job started")
    victim.signal(signal.SIGKILL)
    h.wait_exit(victim, timeout=10)
    gate.touch()
    survivor = h.start_worker()
    done = h.wait_job(job, timeout=30)
    assert done.status is Status.COMPLETED
    attempts = h.app.attempts(job.id)
    assert [(a.number, a.outcome) for a in attempts] == [(1, "rescued"), (2, "completed")]
    assert attempts[0].worker_id != attempts[1].worker_id
    assert attempts[0].error is not None and attempts[0].error.type == "LeaseExpired"
    assert all(a.ended_at is not None and a.duration is not None for a in attempts)
    stop(h, survivor)
