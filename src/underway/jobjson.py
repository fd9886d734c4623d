"""A Job in JSON, as DESIGN.md "A Job in JSON" fixes it: what callbacks carry and the HTTP API
answers. Times are ISO 8601 with their offset."""

from __future__ import annotations

from datetime import datetime

from .model import JSON, Job


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
        "args": job.args,
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
    }


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
