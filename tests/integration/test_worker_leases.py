"""Leases through real workers: a worker whose heartbeats no longer reach the store (cut off
from it, as in a network partition) loses its lease, another worker takes the job back and runs
it again, and the first worker's late outcome is refused. (A worker whose event loop is merely
blocked keeps its leases: the lease keeper renews them; fault scenario F05.) The store-level
rules (tokens, rescue) are covered by tests/contract/test_store_leases.py."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

import underway
from underway import App, Status
from underway.stores.messages import HeartbeatResult
from underway.testing import RunningWorker

MakeApp = Callable[..., App]
StartWorker = Callable[..., RunningWorker]
WaitFor = Callable[..., object]

SHORT_LEASE = {"lease_seconds": 0.5, "heartbeat_seconds": 0.1}


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_newer_attempt(
    fast_app: MakeApp,
    start_worker: StartWorker,
    wait_for: WaitFor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    second_started = threading.Event()
    first_returned = threading.Event()
    runs: list[tuple[str, int]] = []

    def register(app: App, where: str) -> underway.Task[..., Any]:
        @app.task(name="tests.blocks_its_loop", max_attempts=3)
        async def blocks_its_loop(ctx: underway.Context) -> str:
            runs.append((where, ctx.job.attempt))
            if ctx.job.attempt == 1:
                # Blocking the event loop: no heartbeat can run until this returns.
                second_started.wait(20)
                first_returned.set()
                return "first attempt"
            second_started.set()
            return "second attempt"

        return blocks_its_loop

    stalled_app = fast_app(**SHORT_LEASE)
    healthy_app = fast_app(**SHORT_LEASE)
    # Its renewals are lost on the way: the lease runs out while the attempt goes on.
    stalled_app.store.heartbeat = lambda worker_id, leases: HeartbeatResult(  # type: ignore[method-assign]
        frozenset(), frozenset()
    )
    job = register(stalled_app, "stalled").enqueue()
    register(healthy_app, "healthy")

    with caplog.at_level(logging.WARNING, logger="underway"):
        stalled = start_worker(stalled_app)
        wait_for(lambda: runs, what="the first attempt to start")
        healthy = start_worker(healthy_app)

        done = stalled_app.wait(job.id, timeout=20)
        assert first_returned.wait(20)
        wait_for(
            lambda: any("discarded" in r.getMessage() for r in caplog.records),
            what="the stalled worker to report its outcome as discarded",
        )
        healthy.stop()
        stalled.stop()

    assert runs == [("stalled", 1), ("healthy", 2)]
    assert done.status is Status.COMPLETED
    assert done.result == "second attempt" and done.attempt == 2
    assert done.rescues == 1
    final = stalled_app.get_job(job.id)
    assert final is not None
    assert (final.status, final.result, final.attempt) == (
        Status.COMPLETED,
        "second attempt",
        2,
    ), "the late outcome of the first attempt overwrote the second"
    assert any("stopped heartbeating" in r.getMessage() for r in caplog.records)
