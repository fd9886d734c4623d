"""Callback deliveries survive the worker: a worker killed with `kill -9` after the job
finished, while its receiver was down, leaves the delivery in the store; a new worker delivers
it exactly once when the receiver is back. Real worker processes on every store."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import procapp
import pytest
from process_harness import SETTINGS, Harness, stop
from standardwebhooks import Webhook

from underway.callbacks import new_secret
from underway.model import DeliveryStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/callback_receiver.py
from callback_receiver import Receiver, free_port

pytestmark = pytest.mark.process

SECRET = new_secret()
#: what the workers get: quick retries, and a short send timeout so a lease cut short by the
#: kill ends soon
WORKER_CALLBACKS: dict[str, Any] = {
    "webhook_secret": SECRET,
    "callback_allow": "127.0.0.1/32",
    "callback_backoff_base_seconds": 0.1,
    "callback_backoff_max_seconds": 0.3,
    "callback_timeout_seconds": 1.0,
    "callback_max_attempts": 1000,
}


def test_a_worker_killed_before_delivering_leaves_the_delivery_to_the_next_worker(
    harness: Harness,
) -> None:
    h = harness
    app = procapp.make_app(h.url, webhook_secret=SECRET, **SETTINGS)
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}/hooks"
        job = app.tasks["record"].options(callback_url=url).enqueue(7)
        first = h.start_worker(concurrency=2, **WORKER_CALLBACKS)
        h.wait_job(job)

        # Nobody listens yet: the attempts fail and are recorded, one by one.
        def attempts() -> int:
            found = app.deliveries(job.id)
            return len(found[0].attempts) if found else 0

        h.wait_until(lambda: attempts() >= 2, "two failed attempts while the receiver is down")
        first.signal(signal.SIGKILL)
        first.proc.wait()
        [delivery] = app.deliveries(job.id)
        assert delivery.status is DeliveryStatus.PENDING
        assert all(a.status_code is None and a.error for a in delivery.attempts)

        with Receiver(port=port) as receiver:
            second = h.start_worker(concurrency=2, **WORKER_CALLBACKS)

            def delivered() -> bool:
                return app.deliveries(job.id)[0].status is DeliveryStatus.DELIVERED

            h.wait_until(delivered, "the delivery from the second worker", timeout=40)
            stop(h, second)
        [request] = receiver.received()  # exactly once, although two workers had it
        event = Webhook(SECRET).verify(request.body, request.headers)
        assert request.headers["webhook-id"] == delivery.id
        assert (event["type"], event["data"]["id"], event["data"]["result"]) == (
            "job.completed", str(job.id), 7,
        )  # fmt: skip
        [done] = app.deliveries(job.id)
        assert done.attempts[-1].status_code == 200
        assert len(done.attempts) >= 3
        assert h.events(job) == ["done"]  # the job itself ran once
    finally:
        app.close()


def test_several_worker_processes_send_each_delivery_once(harness: Harness) -> None:
    h = harness
    app = procapp.make_app(h.url, webhook_secret=SECRET, **SETTINGS)
    try:
        with Receiver() as receiver:
            record = app.tasks["record"].options(callback_url=receiver.url)
            jobs = record.enqueue_many([(n,) for n in range(30)])
            workers = [h.start_worker(concurrency=4, **WORKER_CALLBACKS) for _ in range(3)]

            def all_delivered() -> bool:
                return len(receiver.received()) >= 30 and all(
                    app.deliveries(job.id)[0].status is DeliveryStatus.DELIVERED for job in jobs
                )

            h.wait_until(all_delivered, "30 deliveries from 3 workers", timeout=60)
            stop(h, *workers)
        ids = [r.headers["webhook-id"] for r in receiver.received()]
        assert len(ids) == 30 and len(set(ids)) == 30
        assert {app.deliveries(job.id)[0].id for job in jobs} == set(ids)
    finally:
        app.close()
