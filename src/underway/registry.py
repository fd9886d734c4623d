"""What an app declares: its tasks, its schedules and its lifecycle hooks. Pure: no I/O.

The App fills it as decorators run; workers and schedulers read it. Nothing here knows about
stores, threads or event loops.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError, ScheduleNotFound, UnknownTask
from .schedule import Schedule
from .tasks import Task

#: a startup or shutdown hook: `fn()` or `fn(app)`, sync or async
Hook = Callable[..., Any]
#: an async context manager factory entered when a worker or scheduler starts: `fn(app)`
Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


@dataclass
class Registry:
    """Tasks by name, schedules by name, and the app's lifecycle hooks in declaration order."""

    tasks: dict[str, Task[Any, Any]] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    lifespans: list[Lifespan] = field(default_factory=list)

    def add_task(self, task: Task[Any, Any]) -> None:
        if task.name in self.tasks:
            raise ConfigurationError(
                f"a task named {task.name!r} is already registered; pass name=... to tell "
                "them apart"
            )
        self.tasks[task.name] = task

    def task(self, name: str) -> Task[Any, Any]:
        """The task registered as `name`; `UnknownTask` names the ones that are."""
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTask(
                f"no task named {name!r} is registered in this app; registered: "
                f"{', '.join(sorted(self.tasks)) or 'none'}"
            ) from None

    def add_schedule(self, schedule: Schedule) -> None:
        """Add a schedule, or replace the rule of the one with the same name."""
        self.task(schedule.task)  # a schedule must run a task of this app
        self.schedules[schedule.name] = schedule

    def schedule(self, name: str) -> Schedule:
        """The schedule named `name`; `ScheduleNotFound` names the ones that exist."""
        try:
            return self.schedules[name]
        except KeyError:
            raise ScheduleNotFound(
                f"no schedule named {name!r} in this app; schedules: "
                f"{', '.join(sorted(self.schedules)) or 'none'}"
            ) from None
