"""The schedules put at run time, as one scheduler sees them: rebuilt from the definitions the
store keeps, once per definition, and only where this process has the task to run."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .errors import ConfigurationError
from .registry import Registry
from .schedule import Schedule
from .schedule_definitions import load
from .stores.messages import ScheduleState

log = logging.getLogger("underway.scheduler")


class StoredSchedules:
    """Schedules with a stored definition that code in this process does not declare (a code
    declaration owns its name: decision 0018)."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[str, Schedule | None]] = {}

    def schedules(self, states: Iterable[ScheduleState], registry: Registry) -> list[Schedule]:
        """The stored schedules this process can fire, by the rows of the store."""
        found: dict[str, tuple[str, Schedule | None]] = {}
        for state in states:
            if state.definition is None or state.name in registry.schedules:
                continue
            known = self._built.get(state.name)
            if known is None or known[0] != state.definition:
                known = (state.definition, self._build(state, registry))
            found[state.name] = known
        self._built = found  # removed schedules are forgotten
        return [schedule for _, schedule in found.values() if schedule is not None]

    @staticmethod
    def _build(state: ScheduleState, registry: Registry) -> Schedule | None:
        try:
            schedule = load(state.name, state.definition or "")
        except ConfigurationError as exc:
            log.error("stored schedule %s is skipped: %s", state.name, exc)
            return None
        if schedule.task not in registry.tasks:
            log.warning(
                "stored schedule %s is not fired by this scheduler: its task %s is not "
                "registered in this process (another scheduler that has it fires it)",
                state.name, schedule.task,
            )  # fmt: skip
            return None
        return schedule
