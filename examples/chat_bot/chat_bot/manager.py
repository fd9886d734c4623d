"""The seed's `BackgroundTaskManager` on underway: register, start, stop, restart and
unregister maintenance tasks while the bot runs, and `get_all_stats()`. Every verb acts on a
schedule in the store, so it holds for every process of the bot, not only this one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import underway


@dataclass(frozen=True, slots=True)
class TaskStats:
    """One maintenance task as `get_all_stats()` shows it."""

    name: str
    task: str
    rule: str
    #: "ok", "failing" (its latest run failed for good), "running", "paused" (stopped),
    #: "idle" (never ran) or "no scheduler" (no process of the bot fires it now)
    state: str
    last_run: datetime | None  # when the latest finished run started
    last_status: str | None
    next_run: datetime | None
    runs: int
    failures: int
    consecutive_failures: int
    #: registered at run time (`register_task`), not one of the bot's built-in tasks
    registered_at_run_time: bool


class TaskManager:
    """Control of the maintenance schedules of `app`."""

    def __init__(self, app: underway.App) -> None:
        self.app = app

    def register_task(
        self,
        name: str,
        task: underway.Task[Any, Any],
        every: float,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Run `task` every `every` seconds from now on, in every process that registers the
        task; calling it again for `name` changes the interval or the arguments."""
        self.app.schedule(task, every=every, name=name, args=args, overlap="skip", stored=True)

    def unregister_task(self, name: str) -> None:
        """Forget a task registered at run time; a built-in one can only be stopped."""
        self.app.remove_schedule(name)

    def stop_task(self, name: str) -> list[underway.Job]:
        """Stop the task: no new runs, and the runs going now are cancelled (an async task
        where it awaits, a sync one at its next look at `ctx.cancelled`). The cancelled jobs."""
        self.app.pause_schedule(name)
        return [self.app.cancel(job.id) for job in self._running(name)]

    def start_task(self, name: str) -> None:
        """Start a stopped task again: it goes on with its next slot."""
        self.app.resume_schedule(name)

    def restart_task(self, name: str) -> None:
        """Start the task over: it runs at once, then every interval from now."""
        self.app.restart_schedule(name)

    def get_all_stats(self) -> dict[str, TaskStats]:
        """Every maintenance task by name, with its state, last and next run and failures."""
        return {info.name: _stats(info) for info in self.app.list_schedules()}

    def _running(self, name: str) -> list[underway.Job]:
        task = next(info.task for info in self.app.list_schedules() if info.name == name)
        page = self.app.list_jobs(status="running", task=task, limit=1000)
        return [job for job in page.jobs if job.schedule == name]


def _stats(info: underway.ScheduleInfo) -> TaskStats:
    runs = info.stats
    return TaskStats(
        name=info.name, task=info.task, rule=info.rule, state=info.state,
        last_run=runs.last_run, last_status=runs.last_status, next_run=info.next_run,
        runs=runs.runs, failures=runs.failures, consecutive_failures=runs.consecutive_failures,
        registered_at_run_time=info.stored,
    )  # fmt: skip
