"""A Job as JSON, in the one shape the HTTP API, the event stream and callbacks share
(DESIGN.md, "HTTP and live updates"): ids as text, times ISO 8601 with their offset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .model import Job

#: the keys of a job's JSON, in the order they are written
FIELDS = (
    "id", "task", "title", "status", "attempt", "max_attempts", "queue", "priority", "tenant",
    "args", "progress", "status_message", "payload", "result", "error", "key", "callback_url",
    "run_at", "created_at", "started_at", "completed_at", "updated_at", "cancel_requested",
)  # fmt: skip


def job_to_json(job: Job) -> dict[str, Any]:
    """The job as JSON-ready data (json.dumps takes it as it is).

    >>> job_to_json(job)["status"], job_to_json(job)["created_at"]
    ('pending', '2026-01-01T12:00:00+00:00')
    """
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
