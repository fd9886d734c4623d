"""Shortcuts for driving a Store directly in the contract suite.

Each helper is handed out by a fixture of the same name (conftest modules are not importable),
so a test asks for exactly the helpers it uses: `def test_x(store, put, claim_one): ...`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from underway.ids import uuid7
from underway.model import Job, JobError
from underway.stores import Store
from underway.stores.messages import Claimed, NewJob, Outcome

#: A lease short enough to wait out in a test; heartbeat must stay below it.
SHORT_LEASE = {"lease_seconds": 0.2, "heartbeat_seconds": 0.05}


def new_job(
    task: str = "tests.noop",
    args: dict[str, Any] | None = None,
    *,
    queue: str = "default",
    priority: int = 0,
    max_attempts: int = 3,
    delay: float = 0.0,
    run_at: datetime | None = None,
    tenant: str | None = None,
    callback_url: str | None = None,
    key: str | None = None,
    title: str | None = None,
    status_message: str | None = None,
) -> NewJob:
    args = {} if args is None else args
    return NewJob(
        id=uuid7(),
        task=task,
        title=title or task,
        args=args,
        args_json=json.dumps(args),
        queue=queue,
        priority=priority,
        max_attempts=max_attempts,
        delay=delay,
        run_at=run_at,
        tenant=tenant,
        callback_url=callback_url,
        key=key,
        status_message=status_message,
    )


def put(store: Store, **fields: Any) -> Job:
    """Enqueue one job built by `new_job(**fields)`."""
    [job] = store.enqueue([new_job(**fields)])
    return job


def claim_one(
    store: Store, queues: list[str] | None = None, worker: str = "worker-1", suspects: bool = False
) -> Claimed:
    claimed = store.claim(worker, queues, 1, suspects)
    assert len(claimed) == 1, f"expected one due job, claimed {claimed}"
    return claimed[0]


def complete(store: Store, claimed: Claimed, result: Any = None) -> set[uuid.UUID]:
    return store.finish([Outcome.completed(claimed.job.id, claimed.token, json.dumps(result))])


def fail(store: Store, claimed: Claimed, message: str = "boom") -> set[uuid.UUID]:
    error = JobError(message, "ValueError", "Traceback ...")
    return store.finish([Outcome.failed(claimed.job.id, claimed.token, error)])


def get(store: Store, job_id: uuid.UUID) -> Job:
    job = store.get(job_id)
    assert job is not None, f"job {job_id} vanished"
    return job


@pytest.fixture(name="new_job")
def new_job_fixture() -> Callable[..., NewJob]:
    """`new_job(task=..., args=..., queue=..., priority=..., delay=..., key=..., ...)`."""
    return new_job


@pytest.fixture(name="put")
def put_fixture() -> Callable[..., Job]:
    """`put(store, **new_job_fields)` -> the enqueued Job."""
    return put


@pytest.fixture(name="claim_one")
def claim_one_fixture() -> Callable[..., Claimed]:
    """`claim_one(store, queues=None, worker=..., suspects=False)` -> the one job claimed
    (asserts one); `suspects=True` to claim a job a rescue put back."""
    return claim_one


@pytest.fixture(name="complete")
def complete_fixture() -> Callable[..., set[uuid.UUID]]:
    """`complete(store, claimed, result=None)` -> the ids that landed."""
    return complete


@pytest.fixture(name="fail")
def fail_fixture() -> Callable[..., set[uuid.UUID]]:
    """`fail(store, claimed, message="boom")` -> the ids that landed."""
    return fail


@pytest.fixture(name="get")
def get_fixture() -> Callable[..., Job]:
    """`get(store, job_id)` -> the job, asserting it exists."""
    return get


@pytest.fixture
def short_store(make_store: Callable[..., Store]) -> Store:
    """A store whose leases expire after 0.2 s (for rescue and stale-token tests)."""
    return make_store(**SHORT_LEASE)


@pytest.fixture
def rescue_until(wait_for: Callable[..., Any]) -> Callable[..., dict[uuid.UUID, Job]]:
    """`rescue_until(store, *ids, max_rescues=3)`: call `store.rescue` until every id in `ids`
    came back; returns everything rescued meanwhile, by id."""

    def run(store: Store, *ids: uuid.UUID, max_rescues: int = 3) -> dict[uuid.UUID, Job]:
        rescued: dict[uuid.UUID, Job] = {}

        def probe() -> bool:
            for job in store.rescue(max_rescues):
                assert job.id not in rescued, f"job {job.id} was rescued twice"
                rescued[job.id] = job
            return all(i in rescued for i in ids)

        wait_for(probe, what=f"leases of {ids} to expire and be rescued")
        return rescued

    return run
