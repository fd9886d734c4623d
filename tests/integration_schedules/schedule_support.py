"""Helpers for the schedule integration tests (imported by conftest.py and the test modules).

- `FakeClock`: the time a `Scheduler(app, clock=...)` sees, moved by hand.
- `scheduled_jobs(app, name)`: the jobs a schedule fired, oldest slot first.
- `slot_of(job)`: the slot time encoded in a fired job's unique key.
- `drain_app(app)`: a burst worker in this thread until nothing is due.
- `WorkerThread(app)`: a non-burst worker (so with its scheduler) on a thread of its own.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import underway

FAST: dict[str, Any] = {
    "poll_seconds": 0.05,
    "heartbeat_seconds": 0.1,
    "lease_seconds": 1.0,
    "progress_flush_seconds": 0.05,
    "shutdown_grace_seconds": 0.5,
}

#: The fake clocks start here: far from the real time, so nothing depends on it.
T = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock for `Scheduler(app, clock=...)`: returns `now` until moved."""

    def __init__(self, start: datetime = T) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def at(self, seconds: float) -> datetime:
        """The time `seconds` after the clock's start (T)."""
        return T + timedelta(seconds=seconds)


def all_jobs(app: underway.App) -> list[underway.Job]:
    return app.list_jobs(limit=10_000).jobs


def slot_of(job: underway.Job) -> datetime:
    """A fired job's key is `schedule:<name>:<slot in UTC, ISO 8601>`."""
    prefix = f"schedule:{job.schedule}:"
    assert job.key is not None and job.key.startswith(prefix), job.key
    return datetime.fromisoformat(job.key[len(prefix) :])


def scheduled_jobs(app: underway.App, name: str) -> list[underway.Job]:
    """The jobs schedule `name` fired (slot jobs first by slot, then triggered ones)."""
    jobs = [job for job in all_jobs(app) if job.schedule == name]
    return sorted(jobs, key=lambda j: (j.key is None, slot_of(j) if j.key else j.created_at))


def slots(app: underway.App, name: str) -> list[datetime]:
    return [slot_of(job) for job in scheduled_jobs(app, name) if job.key is not None]


def drain_app(app: underway.App, concurrency: int = 1) -> int:
    """Run a burst worker (no scheduler) until no job is due; returns how many it processed."""
    return asyncio.run(underway.Worker(app, concurrency=concurrency, burst=True).drain())


class WorkerThread:
    """A non-burst `underway.Worker` (its scheduler on by default) on a thread of its own."""

    def __init__(self, app: underway.App, **options: Any) -> None:
        self.worker = underway.Worker(app, **options)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self.worker.run(handle_signals=False))
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self, timeout: float = 10.0) -> None:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        if self.error is not None:
            raise self.error
