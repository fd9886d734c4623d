"""What one attempt leaves a delivery as (pure): delivered on a 2xx; failed for good when
refused or out of attempts; else pending again after a backoff that grows, with jitter, up to
its cap. And the body a callback carries: the Job in JSON as DESIGN.md lists it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from underway import Job, Settings, Status
from underway.callbacks.deliverer import body_of, decide, lease_seconds
from underway.callbacks.sender import MAX_REDIRECTS, SendResult, retry_after
from underway.jobjson import delivery_to_json, job_to_json
from underway.model import Delivery, DeliveryAttempt, DeliveryStatus, JobError
from underway.stores.messages import DueDelivery

NOW = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)
SETTINGS = Settings.load(
    callback_max_attempts=5, callback_backoff_base_seconds=2.0, callback_backoff_max_seconds=10.0
)


def due(attempts: int) -> DueDelivery:
    return DueDelivery("msg_1", uuid.uuid4(), "job.completed", "https://x.example/", attempts,
                       NOW, "token")  # fmt: skip


def test_a_2xx_answer_delivers() -> None:
    result = decide(due(0), SendResult(204, None, 0.1), SETTINGS)
    assert (result.status, result.status_code, result.error) == (
        DeliveryStatus.DELIVERED,
        204,
        None,
    )


def test_failures_wait_longer_each_time_up_to_the_cap_then_give_up() -> None:
    waits = []
    for attempts in range(4):
        result = decide(due(attempts), SendResult(503, "HTTP 503", 0.1), SETTINGS)
        assert result.status is DeliveryStatus.PENDING
        waits.append(result.retry_in)
    # base 2 s doubling, drawn from [delay/2, delay], capped at 10 s
    for wait, delay in zip(waits, (2.0, 4.0, 8.0, 10.0), strict=True):
        assert delay / 2 <= wait <= delay
    last = decide(due(4), SendResult(503, "HTTP 503", 0.1), SETTINGS)
    assert (last.status, last.retry_in) == (DeliveryStatus.FAILED, 0.0)


def test_a_refused_address_fails_at_once() -> None:
    result = decide(due(0), SendResult(None, "refused", 0.0, refused=True), SETTINGS)
    assert result.status is DeliveryStatus.FAILED and result.error == "refused"


def test_410_gone_fails_at_once() -> None:
    result = decide(due(0), SendResult(410, "HTTP 410", 0.1), SETTINGS)
    assert result.status is DeliveryStatus.FAILED


def test_retry_after_is_waited_when_longer_than_the_backoff_up_to_its_cap() -> None:
    asked = decide(due(0), SendResult(429, "HTTP 429", 0.1, retry_after=7.0), SETTINGS)
    assert (asked.status, asked.retry_in) == (DeliveryStatus.PENDING, 7.0)
    capped = decide(due(0), SendResult(429, "HTTP 429", 0.1, retry_after=120.0), SETTINGS)
    assert capped.retry_in == 10.0  # callback_backoff_max_seconds
    shorter = decide(due(2), SendResult(503, "HTTP 503", 0.1, retry_after=0.0), SETTINGS)
    assert 4.0 <= shorter.retry_in <= 8.0  # the backoff's own wait still holds


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("120") == 120.0 and retry_after(" 3 ") == 3.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 85 <= (retry_after(later) or 0) <= 90
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=90), usegmt=True)
    assert retry_after(past) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None and retry_after("-5") is None


def test_the_lease_outlasts_the_slowest_attempt() -> None:
    assert lease_seconds(SETTINGS) > SETTINGS.callback_timeout_seconds * (MAX_REDIRECTS + 1)


def test_the_body_carries_the_job_in_json() -> None:
    job = Job(
        id=uuid.uuid4(), task="t.add", args={"a": 1}, queue="default", priority=0,
        status=Status.FAILED, attempt=1, max_attempts=1, run_at=NOW, created_at=NOW,
        error=JobError("boom", "ValueError", "Traceback"), callback_url="https://x.example/",
        completed_at=NOW,
    )  # fmt: skip
    event = json.loads(body_of(due(0), job))
    assert event["type"] == "job.completed" and event["timestamp"] == NOW.isoformat()
    assert event["data"] == json.loads(json.dumps(job_to_json(job)))
    data = event["data"]
    assert list(data) == [
        "id", "task", "title", "status", "attempt", "max_attempts", "queue", "priority",
        "tenant", "args", "progress", "status_message", "payload", "result", "error", "key",
        "callback_url", "run_at", "created_at", "started_at", "completed_at", "updated_at",
        "cancel_requested", "slot",
    ]  # fmt: skip
    assert data["error"] == {"type": "ValueError", "message": "boom", "traceback": "Traceback"}
    assert data["created_at"] == "2031-05-04T12:00:00+00:00" and data["started_at"] is None


def test_a_delivery_in_json_carries_its_attempts() -> None:
    delivery = Delivery(
        "msg_1", uuid.uuid4(), "job.failed", "https://x.example/", DeliveryStatus.PENDING, NOW,
        NOW, last_error="HTTP 503", last_status_code=503,
        attempts=(DeliveryAttempt(1, NOW, 503, "HTTP 503", 0.25),),
    )  # fmt: skip
    data = json.loads(json.dumps(delivery_to_json(delivery)))
    assert (data["id"], data["status"], data["next_at"]) == ("msg_1", "pending", NOW.isoformat())
    assert data["attempts"] == [
        {"number": 1, "at": NOW.isoformat(), "status_code": 503, "error": "HTTP 503",
         "duration": 0.25}
    ]  # fmt: skip
