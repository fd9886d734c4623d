"""Helpers for the schedule integration tests (imported by the test modules).

- `T`: where an `underway.testing.Clock` starts (2031-05-04 12:00 UTC), far from the real time.
- `scheduled_jobs(app, name)`: the jobs a schedule fired, oldest slot first.
- `slot_of(job)`: the slot time encoded in a fired job's unique key.
- `slots(app, name)`: the slots schedule `name` fired, oldest first.

Clocks, schedulers, `drain` and workers come from `underway.testing`.
"""

from __future__ import annotations

from datetime import datetime

import underway
from underway import testing

#: The fake clocks start here: far from the real time, so nothing depends on it.
T = testing.DEFAULT_START


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
