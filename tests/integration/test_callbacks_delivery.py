"""Signed completion callbacks from a real worker to a real receiver on loopback, on every
store: what arrives verifies with the `standardwebhooks` package, a failing receiver gets
exactly one successful delivery with every attempt on the job, and tampered or replayed
deliveries fail verification."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

import underway
from callback_receiver import Receiver
from underway.callbacks import new_secret
from underway.callbacks.signing import Signer
from underway.model import Delivery, DeliveryStatus

SECRET = new_secret()
#: signed, sent to the receiver on 127.0.0.1, retried within a fraction of a second
CALLBACKS: dict[str, Any] = {
    "webhook_secret": SECRET,
    "callback_allow": ["127.0.0.1/32"],
    "callback_backoff_base_seconds": 0.05,
    "callback_backoff_max_seconds": 0.2,
    "callback_timeout_seconds": 5.0,
}

App = Callable[..., underway.App]


@pytest.fixture
def receiver() -> Any:
    with Receiver() as running:
        yield running


def callback_app(fast_app: App, **settings: Any) -> underway.App:
    app = fast_app(**{**CALLBACKS, **settings})

    @app.task(name="tests.add", max_attempts=1)
    def add(a: int, b: int) -> int:
        if a < 0:
            raise ValueError("negative")
        return a + b

    return app


def settled(app: underway.App, job: underway.Job) -> Callable[[], Delivery | None]:
    """A probe: the job's one delivery once it is delivered or failed for good."""

    def probe() -> Delivery | None:
        found = app.deliveries(job.id)
        if found and found[-1].status is not DeliveryStatus.PENDING:
            return found[-1]
        return None

    return probe


def test_a_completed_job_posts_a_callback_that_standardwebhooks_verifies(
    fast_app: App, start_worker: Callable[..., Any], receiver: Receiver,
    wait_for: Callable[..., Any],
) -> None:  # fmt: skip
    app = callback_app(fast_app)
    job = app.tasks["tests.add"].options(callback_url=receiver.url).enqueue(2, 3)
    start_worker(app)
    delivery = wait_for(settled(app, job), what="the callback to be delivered")
    assert delivery.status is DeliveryStatus.DELIVERED

    [request] = receiver.received()
    assert request.path == "/hooks/underway"
    assert request.headers["webhook-id"] == delivery.id
    assert request.headers["content-type"] == "application/json"
    event = Webhook(SECRET).verify(request.body, request.headers)
    assert event["type"] == "job.completed"
    assert datetime.fromisoformat(event["timestamp"]).tzinfo is not None
    data = event["data"]
    assert (data["id"], data["status"], data["result"]) == (str(job.id), "completed", 5)
    assert data["args"] == {"a": 2, "b": 3} and data["callback_url"] == receiver.url
    assert data["error"] is None and data["completed_at"] is not None


def test_a_failed_job_tells_of_its_failure(
    fast_app: App, start_worker: Callable[..., Any], receiver: Receiver,
    wait_for: Callable[..., Any],
) -> None:  # fmt: skip
    app = callback_app(fast_app)
    job = app.tasks["tests.add"].options(callback_url=receiver.url).enqueue(-1, 3)
    start_worker(app)
    wait_for(settled(app, job), what="the callback to be delivered")
    event = Webhook(SECRET).verify(receiver.received()[0].body, receiver.received()[0].headers)
    assert event["type"] == "job.failed" and event["data"]["status"] == "failed"
    assert event["data"]["error"]["type"] == "ValueError"
    assert "negative" in event["data"]["error"]["message"]


def test_a_pending_job_cancelled_tells_of_its_cancel(
    fast_app: App, start_worker: Callable[..., Any], receiver: Receiver,
    wait_for: Callable[..., Any],
) -> None:  # fmt: skip
    app = callback_app(fast_app)
    job = app.tasks["tests.add"].options(callback_url=receiver.url, delay=3600).enqueue(1, 1)
    app.cancel(job.id)
    start_worker(app)
    assert wait_for(settled(app, job)).type == "job.cancelled"
    event = Webhook(SECRET).verify(receiver.received()[0].body, receiver.received()[0].headers)
    assert (event["type"], event["data"]["status"]) == ("job.cancelled", "cancelled")


def test_a_receiver_failing_twice_gets_exactly_one_successful_delivery(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    with Receiver(answers=[500, 503]) as receiver:
        app = callback_app(fast_app)
        job = app.tasks["tests.add"].options(callback_url=receiver.url).enqueue(1, 2)
        start_worker(app)
        delivery = wait_for(settled(app, job), what="the callback to be delivered")

    assert delivery.status is DeliveryStatus.DELIVERED
    assert [r.status for r in receiver.received()] == [500, 503, 200]
    assert len(receiver.succeeded()) == 1
    # One delivery, one message id in every attempt, each attempt signed afresh.
    assert {r.headers["webhook-id"] for r in receiver.received()} == {delivery.id}
    for request in receiver.received():
        Webhook(SECRET).verify(request.body, request.headers)
    [shown] = app.deliveries(job.id)
    assert [(a.number, a.status_code) for a in shown.attempts] == [(1, 500), (2, 503), (3, 200)]
    assert "HTTP 500" in (shown.attempts[0].error or "") and shown.attempts[2].error is None
    assert all(a.duration >= 0 for a in shown.attempts)


def test_a_receiver_failing_every_time_gets_the_max_attempts_then_the_delivery_fails(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    with Receiver(answers=[500] * 10) as receiver:
        app = callback_app(fast_app, callback_max_attempts=3)
        job = app.tasks["tests.add"].options(callback_url=receiver.url).enqueue(1, 2)
        start_worker(app)
        delivery = wait_for(settled(app, job), what="the delivery to give up")
    assert delivery.status is DeliveryStatus.FAILED
    assert len(delivery.attempts) == 3 and len(receiver.received()) == 3
    assert delivery.last_status_code == 500


def test_a_tampered_body_or_a_replayed_old_delivery_fails_verification(
    fast_app: App, start_worker: Callable[..., Any], receiver: Receiver,
    wait_for: Callable[..., Any],
) -> None:  # fmt: skip
    app = callback_app(fast_app)
    job = app.tasks["tests.add"].options(callback_url=receiver.url).enqueue(2, 2)
    start_worker(app)
    wait_for(settled(app, job), what="the callback to be delivered")
    [request] = receiver.received()
    verifier = Webhook(SECRET)
    verifier.verify(request.body, request.headers)  # the genuine one passes

    event = json.loads(request.body)
    event["data"]["result"] = 5
    with pytest.raises(WebhookVerificationError):
        verifier.verify(json.dumps(event).encode(), request.headers)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(request.body + b" ", request.headers)

    # The same message, replayed with an older timestamp: the signature no longer fits.
    old = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp())
    with pytest.raises(WebhookVerificationError):
        verifier.verify(request.body, {**request.headers, "webhook-timestamp": str(old)})
    # Signed at that time, as a captured delivery replayed later would be: too old.
    replay = Signer.of(SECRET).headers(request.headers["webhook-id"], old, request.body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verifier.verify(request.body, replay)
    # Another app's secret never verifies.
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(request.body, request.headers)


def test_a_redirect_to_an_allowed_address_is_followed_with_the_same_signed_post(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    with Receiver() as receiver:
        receiver.answers = [(308, {"location": "/moved"})]
        app = callback_app(fast_app)
        job = app.tasks["tests.add"].options(callback_url=receiver.url).enqueue(2, 5)
        start_worker(app)
        delivery = wait_for(settled(app, job), what="the callback to be delivered")
    assert delivery.status is DeliveryStatus.DELIVERED and len(delivery.attempts) == 1
    first, second = receiver.received()
    assert (first.path, second.path) == ("/hooks/underway", "/moved")
    assert second.body == first.body
    Webhook(SECRET).verify(second.body, second.headers)


def test_a_send_cut_short_by_the_stop_is_recorded_and_sent_again_by_the_next_worker(
    fast_app: App, start_worker: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    with Receiver() as receiver:
        receiver.delay = 5.0  # longer than the worker's shutdown grace
        app = callback_app(fast_app)
        job = app.tasks["tests.add"].options(callback_url=receiver.url).enqueue(1, 1)
        first = start_worker(app)
        wait_for(receiver.received, what="the first attempt to reach the receiver")
        first.stop()
        [delivery] = app.deliveries(job.id)
        assert delivery.status is DeliveryStatus.PENDING
        [cut] = delivery.attempts
        assert cut.status_code is None and "stopped during this attempt" in (cut.error or "")

        receiver.delay = 0.0
        start_worker(app)
        done = wait_for(settled(app, job), what="the delivery from the next worker")
    assert done.status is DeliveryStatus.DELIVERED
    assert [a.status_code for a in done.attempts] == [None, 200]
    assert {r.headers["webhook-id"] for r in receiver.received()} == {delivery.id}


def test_a_callback_url_needs_a_secret_and_an_http_url(fast_app: App) -> None:
    unsigned = fast_app()
    task = unsigned.task(name="tests.noop")(lambda: None)
    with pytest.raises(underway.ConfigurationError, match="webhook_secret"):
        task.options(callback_url="https://example.com/hook").enqueue()
    signed = callback_app(fast_app)
    for url in ("ftp://example.com/hook", "example.com/hook", "https://"):
        with pytest.raises(underway.InvalidArguments, match="http"):
            signed.tasks["tests.add"].options(callback_url=url).enqueue(1, 1)
    assert unsigned.list_jobs().jobs == []
