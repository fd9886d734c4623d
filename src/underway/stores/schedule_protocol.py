"""The `Store` verbs of schedules managed at run time and of scheduler liveness
(docs/decisions/0018-stored-schedules.md). `Store` includes them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from .messages import ScheduleState


class StoredScheduleVerbs(Protocol):
    def put_schedule(
        self, name: str, task: str, rule: str, definition: str, anchor: datetime,
        tenant: str | None = None, tenants: str | None = None,
    ) -> ScheduleState:  # fmt: skip
        """Add the schedule with its `definition` (first time: interval slots count from
        `anchor`) or update it, keeping its anchor, pause, last slot and counts. `tenants`:
        whom a schedule run once per tenant runs for, as listings show it (JSON text).
        `ScheduleDeclaredInCode` if code declares a schedule of that name."""

    def remove_schedule(self, name: str) -> None:
        """Delete a schedule put at run time, for every scheduler (`ScheduleNotFound` if there
        is none, `ScheduleDeclaredInCode` if code declares it)."""

    def restart_schedule(self, name: str, anchor: datetime) -> None:
        """Resume the schedule and count its slots again from `anchor`: an interval's first
        slot is `anchor`, and slots before it are dropped (`ScheduleNotFound` if none)."""

    def beat_scheduler(self, scheduler_id: str, lease: float) -> None:
        """Say this scheduler is alive for `lease` more seconds."""

    def forget_scheduler(self, scheduler_id: str) -> None:
        """This scheduler stopped (and long-expired ones are pruned)."""

    def schedulers_alive(self) -> int:
        """How many schedulers said they are alive and have not expired since."""
