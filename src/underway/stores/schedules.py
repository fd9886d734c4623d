"""What both SQL stores share about schedules managed at run time and scheduler liveness
(the verbs of schedule_protocol.py; migration 0008)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..errors import ScheduleDeclaredInCode, ScheduleNotFound
from ..model import Job
from ..schedule import Overlap
from .history import HistoryVerbs
from .messages import NewJob, ScheduleState
from .sql import C, schedule_state


class ScheduleRows(HistoryVerbs[C]):
    """The stored-schedule and scheduler-beat verbs, over a backend's connections and values
    (over HistoryVerbs only so that a backend names one base less)."""

    def fire_schedule(
        self, name: str, slot: datetime, job: NewJob | None, overlap: Overlap
    ) -> Job | None:
        fired = self.fire_slot(name, slot, [] if job is None else [job], overlap)
        return fired[0] if fired else None

    def fire_slot(
        self, name: str, slot: datetime, jobs: Sequence[NewJob], overlap: Overlap
    ) -> list[Job]:
        stamp = self._stamp()
        with self._writing(atomic=True) as conn:
            states = self._all(conn, "lock_schedule", {"name": name})
            if not states or states[0]["paused"]:
                return []
            slot_value, last = self.values.dump_time(slot), states[0]["last_slot"]
            if last is not None and last >= slot_value:
                return []  # another scheduler handled this slot already
            busy = (
                bool(jobs)
                and overlap != Overlap.ALLOW
                and bool(self._all(conn, "schedule_busy", {"name": name}))
            )
            if busy and overlap == Overlap.WAIT:
                return []  # try again once the unfinished one is done
            if busy:
                jobs = []  # Overlap.SKIP: this slot is dropped
            params = {"name": name, "slot": slot_value, "fired": int(bool(jobs)), **stamp}
            self._run(conn, self._q["advance_schedule"], params)
            return [self._insert_within(conn, job, stamp) for job in jobs]

    def put_schedule(
        self, name: str, task: str, rule: str, definition: str, anchor: datetime,
        tenant: str | None = None, tenants: str | None = None,
    ) -> ScheduleState:  # fmt: skip
        params = {"name": name, "task": task, "rule": rule, "tenant": tenant,
                  "tenants": tenants, "definition": definition,
                  "anchor": self.values.dump_time(anchor), **self._stamp()}  # fmt: skip
        with self._writing() as conn:
            rows = self._all(conn, "put_schedule", params)
        if not rows:
            raise ScheduleDeclaredInCode.named(name)
        return schedule_state(rows[0], self.values)

    def remove_schedule(self, name: str) -> None:
        with self._writing(atomic=True) as conn:
            found = self._all(conn, "lock_schedule", {"name": name})
            if not found:
                raise ScheduleNotFound(f"no schedule named {name!r}")
            if found[0]["definition"] is None:
                raise ScheduleDeclaredInCode.named(name)
            self._run(conn, self._q["remove_schedule"], {"name": name})

    def restart_schedule(self, name: str, anchor: datetime) -> None:
        params = {"name": name, "anchor": self.values.dump_time(anchor), **self._stamp()}
        with self._writing() as conn:
            if self._run(conn, self._q["restart_schedule"], params).rowcount == 0:
                raise ScheduleNotFound(f"no schedule named {name!r}")

    def beat_scheduler(self, scheduler_id: str, lease: float) -> None:
        params = {"id": scheduler_id, "lease": lease, **self._stamp()}
        with self._writing() as conn:
            self._run(conn, self._q["beat_scheduler"], params)

    def forget_scheduler(self, scheduler_id: str) -> None:
        with self._writing() as conn:
            self._run(conn, self._q["forget_scheduler"], {"id": scheduler_id, **self._stamp()})

    def schedulers_alive(self) -> int:
        with self._reading() as conn:
            rows = self._all(conn, "schedulers_alive", self._stamp() or None)
        return int(rows[0]["alive"])
