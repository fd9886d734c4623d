"""What the API answers, as JSON-ready data: stats, queues, schedules and tasks (jobs are
`jobjson.job_to_json`). Times are ISO 8601 with their offset, as in a job."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from ..model import (
    AttemptInfo,
    JobError,
    MinuteStats,
    QueueInfo,
    RunStats,
    ScheduleInfo,
    Stats,
    WorkerInfo,
)
from ..tasks import Task
from .arguments import arguments_schema


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def run_stats_json(stats: RunStats) -> dict[str, Any]:
    data = {f.name: _plain(getattr(stats, f.name)) for f in dataclasses.fields(stats)}
    data["state"] = stats.state
    return data


def history_json(minutes: list[MinuteStats]) -> dict[str, Any]:
    return {"minutes": [{"at": m.at.isoformat(), "completed": m.completed, "failed": m.failed,
                         "cancelled": m.cancelled} for m in minutes]}  # fmt: skip


def stats_json(stats: Stats) -> dict[str, Any]:
    return {
        "total": stats.total,
        "by_status": stats.by_status,
        "by_task": stats.by_task,
        "by_queue": stats.by_queue,
        "scheduled": stats.scheduled,
        "retrying": stats.retrying,
        "tasks": {name: run_stats_json(s) for name, s in stats.tasks.items()},
        "schedules": {name: run_stats_json(s) for name, s in stats.schedules.items()},
    }


def queue_json(queue: QueueInfo) -> dict[str, Any]:
    return dataclasses.asdict(queue)


def schedule_json(info: ScheduleInfo) -> dict[str, Any]:
    data = {f.name: _plain(getattr(info, f.name)) for f in dataclasses.fields(info)}
    data["stats"] = run_stats_json(info.stats)
    data["state"] = info.state
    return data


def task_json(task: Task[Any, Any]) -> dict[str, Any]:
    return {
        "name": task.name,
        "title": task.title,
        "queue": task.queue,
        "priority": task.priority,
        "max_attempts": task.max_attempts,
        "timeout": task.timeout,
        "is_async": task.is_async,
        "doc": task.__doc__,
        "args_schema": arguments_schema(task),
    }


def _error(error: JobError | None) -> dict[str, str] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "traceback": error.traceback}


def attempt_json(attempt: AttemptInfo) -> dict[str, Any]:
    return {
        "kind": "attempt",
        "number": attempt.number,
        "worker_id": attempt.worker_id,
        "started_at": _plain(attempt.started_at),
        "ended_at": _plain(attempt.ended_at),
        "outcome": attempt.outcome,
        "error": _error(attempt.error),
        "duration": attempt.duration,
    }


def worker_json(worker: WorkerInfo) -> dict[str, Any]:
    data = {f.name: _plain(getattr(worker, f.name)) for f in dataclasses.fields(worker)}
    data["queues"] = None if worker.queues is None else list(worker.queues)
    return data
