"""A Job in JSON, as DESIGN.md "A Job in JSON" fixes it: what callbacks carry and the HTTP API
answers; and a job's callback delivery in JSON. Times are ISO 8601 with their offset."""

from __future__ import annotations

from datetime import datetime

from .model import JSON, Delivery, Job
from .secret import shown


def job_to_json(job: Job) -> dict[str, JSON]:
    """The job as a JSON object: a dict that `json.dumps` takes as it is, with the fields
    in the order DESIGN.md lists them."""
    error = job.error
    return {
        "id": str(job.id),
        "task": job.task,
        "title": job.title,
        "status": job.status.value,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "queue": job.queue,
        "priority": job.priority,
        "tenant": job.tenant,
        "args": shown(job.args),  # sealed secrets and credentials never leave
        "progress": job.progress,
        "status_message": job.status_message,
        "payload": job.payload,
        "result": job.result,
        "error": None
        if error is None
        else {"type": error.type, "message": error.message, "traceback": error.traceback},
        "key": job.key,
        "callback_url": job.callback_url,
        "run_at": _time(job.run_at),
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "completed_at": _time(job.completed_at),
        "updated_at": _time(job.updated_at),
        "cancel_requested": job.cancel_requested,
        "slot": _time(job.slot),
    }


def delivery_to_json(delivery: Delivery) -> dict[str, JSON]:
    """A callback delivery with its attempts as a JSON object (`app.deliveries(id)` items)."""
    return {
        "id": delivery.id,
        "job_id": str(delivery.job_id),
        "type": delivery.type,
        "url": delivery.url,
        "status": delivery.status.value,
        "created_at": _time(delivery.created_at),
        "next_at": _time(delivery.next_at),
        "delivered_at": _time(delivery.delivered_at),
        "last_error": delivery.last_error,
        "last_status_code": delivery.last_status_code,
        "attempts": [
            {"number": a.number, "at": _time(a.at), "status_code": a.status_code,
             "error": a.error, "duration": a.duration}
            for a in delivery.attempts
        ],
    }  # fmt: skip


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
