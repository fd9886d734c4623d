"""App verbs for schedules managed at run time: put (add or update) a stored schedule, remove
it, restart any schedule (docs/decisions/0018-stored-schedules.md). `App` inherits them."""

from __future__ import annotations

from datetime import timedelta

from . import schedule_tenants
from .errors import ScheduleDeclaredInCode
from .registry import Registry
from .schedule import Cron, Schedule
from .schedule_definitions import dump, load
from .scheduler import register
from .stores import Store
from .twins import twin


class ScheduleControl:
    """Stored schedules and restarts (mixed into `App`)."""

    registry: Registry

    @property
    def store(self) -> Store:
        raise NotImplementedError  # App's store

    def _put_schedule(self, schedule: Schedule) -> Schedule:
        """`app.schedule(..., stored=True)`: add or update the schedule in the store."""
        if schedule.name in self.registry.schedules:
            raise ScheduleDeclaredInCode.named(schedule.name)
        definition = dump(schedule)
        rule = schedule.rule
        delay = 0.0 if isinstance(rule, Cron) else rule.initial_delay
        anchor = self.store.now() + timedelta(seconds=delay)
        self.store.put_schedule(schedule.name, schedule.task, schedule.describe(), definition,
                                anchor, schedule.tenant,
                                tenants=schedule_tenants.dump(schedule))  # fmt: skip
        return schedule

    def remove_schedule(self, name: str) -> None:
        """Remove a schedule put at run time: no scheduler fires it any more (its unfinished
        jobs stay). `ScheduleDeclaredInCode` for one declared in code (pause it instead)."""
        if name in self.registry.schedules:
            raise ScheduleDeclaredInCode.named(name)
        self.store.remove_schedule(name)

    def restart_schedule(self, name: str) -> None:
        """Resume the schedule and count its slots again from now, for every process: an
        interval fires at once, then every interval; a cron rule drops the slots that passed
        and fires at its next time."""
        schedule = self.registry.schedules.get(name)
        if schedule is not None:  # it may not be in the store yet (no scheduler ran)
            register(self.store, schedule, self.store.now())
        self.store.restart_schedule(name, self.store.now())

    def _schedule_named(self, name: str) -> Schedule:
        """The schedule this app declares as `name`, else the one put in the store at run
        time; `ScheduleNotFound` when neither exists."""
        declared = self.registry.schedules.get(name)
        if declared is not None:
            return declared
        state = next((s for s in self.store.schedule_states() if s.name == name), None)
        if state is None or state.definition is None:
            return self.registry.schedule(name)  # raises, naming the schedules there are
        return load(name, state.definition)

    remove_schedule_async = twin(remove_schedule)
    restart_schedule_async = twin(restart_schedule)
