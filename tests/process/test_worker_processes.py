"""Real worker processes on every store (a SQLite file; a PostgreSQL schema when
UNDERWAY_TEST_POSTGRES_URL is set): exactly-once draining, kill -9 rescue, graceful and hard
shutdown, cancellation, unknown tasks, and the prompt stop of an idle worker.

Workers run `python -m procapp` (see procapp.py) with short leases so faults heal in seconds.
The `harness` fixture (conftest.py) is parametrized over the store kinds; see process_harness.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from process_harness import SETTINGS, Harness, stop

import underway

pytestmark = pytest.mark.process


# --- 1. many workers, every job exactly once --------------------------------------------------


def test_four_workers_drain_2000_jobs_each_exactly_once(harness: Harness) -> None:
    h = harness
    record = h.task("record")
    jobs = record.enqueue_many([(n,) for n in range(1000)])
    workers = [h.start_worker(concurrency=10) for _ in range(4)]
    for first in range(1000, 2000, 100):  # the rest arrives while the workers run
        jobs += record.enqueue_many([(n,) for n in range(first, first + 100)])
    assert len({job.id for job in jobs}) == 2000

    h.wait_until(
        lambda: h.app.stats().by_status["completed"] == 2000,
        "all 2000 jobs to complete",
        timeout=120,
        interval=0.2,
    )
    stop(h, *workers)

    records = h.records()
    assert len(records) == 2000, f"{len(records)} executions recorded for 2000 jobs"
    assert {r.job_id for r in records} == {str(job.id) for job in jobs}
    assert {r.pid for r in records} <= {w.pid for w in workers}
    stats = h.app.stats()
    assert stats.by_status == {
        "pending": 0,
        "running": 0,
        "completed": 2000,
        "failed": 0,
        "cancelled": 0,
    }
    done = h.app.list_jobs(status="completed", limit=10_000).jobs
    assert len(done) == 2000
    assert {job.attempt for job in done} == {1}
    assert sorted(job.result for job in done) == list(range(2000))


# --- 2. kill -9 -------------------------------------------------------------------------------


def test_jobs_of_a_killed_worker_are_rescued_and_completed_by_another(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    gate = tmp_path / "gate"
    jobs = h.task("gated").enqueue_many([{"n": n, "gate": str(gate)} for n in range(8)])
    a = h.start_worker(concurrency=5)

    def held_by_a() -> set[str]:
        started = {r.job_id for r in h.records() if r.event == "start" and r.pid == a.pid}
        return started if len(started) == 5 else set()

    held = h.wait_until(held_by_a, "worker A to start 5 jobs")
    running = {str(job.id) for job in h.app.list_jobs(status="running").jobs}
    assert running == held, h.logs()

    a.proc.kill()
    assert a.proc.wait(10) == -signal.SIGKILL
    gate.touch()
    b = h.start_worker(concurrency=5)
    finished = [h.wait_job(job, timeout=30) for job in jobs]
    stop(h, b)

    assert [job.status for job in finished] == ["completed"] * 8, h.logs()
    assert sorted(job.result for job in finished) == list(range(8))
    for job in finished:
        if str(job.id) in held:
            assert (job.attempt, job.rescues) == (2, 1), (job, h.logs())
        else:
            assert (job.attempt, job.rescues) == (1, 0), (job, h.logs())
    done = [r for r in h.records() if r.event == "done"]
    assert sorted(r.job_id for r in done) == sorted(str(job.id) for job in jobs)
    assert {r.pid for r in done} == {b.pid}
    assert {r.attempt for r in done if r.job_id in held} == {2}


# --- 3. SIGTERM hands a long job back ---------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "seen_by_task"), [("long_sync", "stopped"), ("long_async", "cancelled")]
)
def test_sigterm_hands_a_long_job_back_and_a_new_worker_completes_it(
    harness: Harness, tmp_path: Path, task: str, seen_by_task: str
) -> None:
    h = harness
    fast = tmp_path / "fast"
    job = h.task(task).enqueue(seconds=120, fast_file=str(fast))
    worker = h.start_worker(concurrency=2)
    h.wait_until(lambda: h.started(job), f"{task} to start")

    worker.signal(signal.SIGTERM)
    code = h.wait_exit(worker, timeout=SETTINGS["shutdown_grace_seconds"] + 10)
    assert code == 0, h.logs()

    handed_back = h.get(job)
    assert handed_back.status == "pending", (handed_back, h.logs())
    assert handed_back.attempt == 0  # a hand-back does not spend an attempt
    assert handed_back.error is None
    assert handed_back.started_at is None
    assert h.events(job) == ["start", seen_by_task]
    assert [r.detail for r in h.records() if r.event == seen_by_task] == ["shutdown"]

    fast.touch()
    again = h.start_worker(concurrency=2, burst=True)
    assert h.wait_exit(again, timeout=30) == 0, h.logs()
    done = h.get(job)
    assert (done.status, done.result, done.attempt) == ("completed", "quick", 1), h.logs()
    assert h.events(job) == ["start", seen_by_task, "quick"]


# --- 4. a second signal stops at once ---------------------------------------------------------


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_second_signal_hands_jobs_back_without_waiting_for_the_grace(
    harness: Harness, second: signal.Signals
) -> None:
    h = harness
    jobs = [h.task("long_sync").enqueue(seconds=120), h.task("long_async").enqueue(seconds=120)]
    worker = h.start_worker(concurrency=2, shutdown_grace_seconds=30)
    h.wait_until(lambda: h.started(*jobs), "both long jobs to start")

    worker.signal(signal.SIGTERM)
    h.wait_until(
        lambda: "finishing running jobs" in worker.stderr(), "the worker to log the first SIGTERM"
    )
    assert [h.get(job).status for job in jobs] == ["running", "running"]  # within the grace
    worker.signal(second)
    code = h.wait_exit(worker, timeout=10)  # far less than the 30 s grace
    assert code == 0, h.logs()

    for job in jobs:
        back = h.get(job)
        assert (back.status, back.attempt, back.error) == ("pending", 0, None), (back, h.logs())
    assert h.events(jobs[0]) == ["start", "stopped"]
    assert h.events(jobs[1]) == ["start", "cancelled"]


# --- 5. cancelling a running job from another process -----------------------------------------


def test_cancel_from_another_process_stops_running_jobs_and_the_worker_goes_on(
    harness: Harness,
) -> None:
    h = harness
    sync_job = h.task("long_sync").enqueue(seconds=120)
    async_job = h.task("long_async").enqueue(seconds=120)
    worker = h.start_worker(concurrency=2)
    h.wait_until(lambda: h.started(sync_job, async_job), "both long jobs to start")

    for job in (sync_job, async_job):
        requested = h.app.cancel(job.id)
        assert (requested.status, requested.cancel_requested) == ("running", True)

    for job in (sync_job, async_job):
        ended = h.wait_job(job)
        assert ended.status == "cancelled", (ended, h.logs())
        assert ended.attempt == 1
        assert ended.error is not None and "cancel" in ended.error.message.lower()
    assert h.events(sync_job) == ["start", "stopped"]
    assert h.events(async_job) == ["start", "cancelled"]
    assert {r.detail for r in h.records() if r.event in ("stopped", "cancelled")} == {"cancel"}

    later = h.task("record").enqueue(7)
    after = h.wait_job(later)
    assert (after.status, after.result) == ("completed", 7), h.logs()
    assert worker.proc.poll() is None
    stop(h, worker)


# --- 6. a task this worker does not know ------------------------------------------------------


def test_unknown_task_fails_with_a_clear_error_and_the_worker_goes_on(harness: Harness) -> None:
    h = harness
    with underway.App(h.url, **SETTINGS) as other:

        @other.task(name="only_in_another_app")
        def only_in_another_app(n: int) -> int:
            return n

        ghost = only_in_another_app.enqueue(1)
    before = h.task("record").enqueue_many([(n,) for n in range(3)])
    worker = h.start_worker(concurrency=2)

    failed = h.wait_job(ghost)
    assert failed.status == "failed", (failed, h.logs())
    assert failed.attempt == 1  # not retried: no attempt can succeed on this worker
    assert failed.error is not None
    assert "only_in_another_app" in failed.error.message
    assert "not registered" in failed.error.message

    later = h.task("record").enqueue(3)
    for job in [*before, later]:
        done = h.wait_job(job)
        assert done.status == "completed", (done, h.logs())
    assert sorted(r.detail for r in h.records()) == ["0", "1", "2", "3"]
    assert worker.proc.poll() is None
    stop(h, worker)


# --- 7. an idle worker stops promptly ---------------------------------------------------------


def test_an_idle_worker_exits_promptly_on_sigterm_even_with_a_long_poll(harness: Harness) -> None:
    h = harness
    job = h.task("record").enqueue(1)  # there before the worker starts: its first claim gets it
    worker = h.start_worker(concurrency=2, poll_seconds=60)
    done = h.wait_job(job)
    assert done.status == "completed", h.logs()

    worker.signal(signal.SIGTERM)
    # Nothing runs and the grace is 1 s: the 60 s poll must not hold the process up.
    code = h.wait_exit(worker, timeout=10)
    assert code == 0, h.logs()
