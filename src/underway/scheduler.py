"""The scheduler: turns the app's schedules into jobs, slot by slot.

It runs inside every worker by default and alone as `underway scheduler APP`. There is no
leader: each process plans the same slots from the same shared state, and the store fires each
slot only once (see `Store.fire_schedule`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from . import schedule_tenants
from .errors import ConfigurationError, StoreError
from .events import Events
from .model import Job, RunStats, ScheduleInfo
from .outages import quiet_store_errors
from .registry import Registry
from .schedule import Every, Overlap, Schedule, plan
from .schedule_definitions import load
from .scheduler_liveness import Liveness
from .stored_schedules import StoredSchedules
from .stores import Store
from .stores.messages import NewJob, ScheduleState
from .tasks import Options
from .threads import StoreThreads
from .waits import wait_event

log = logging.getLogger("underway.scheduler")

#: The longest a scheduler sleeps between looks at its schedules (pauses, triggers, clock).
MAX_SLEEP_SECONDS = 1.0


def register(store: Store, schedule: Schedule, now: datetime, boot: bool = False) -> ScheduleState:
    """Put the schedule in the store (first time: anchored at now + its first delay). A
    scheduler's first registration in its process (`boot`) moves the anchor of a
    `first_after_boot` rule to now + that delay."""
    rule = schedule.rule
    delay = rule.first_delay if isinstance(rule, Every) else 0.0
    reanchor = boot and isinstance(rule, Every) and rule.first_after_boot is not None
    return store.register_schedule(
        schedule.name, schedule.task, schedule.describe(), now + timedelta(seconds=delay),
        schedule.tenant, reanchor=reanchor, tenants=schedule_tenants.dump(schedule),
    )  # fmt: skip


def schedule_infos(
    registry: Registry,
    states: list[ScheduleState],
    runs: dict[str, RunStats],
    now: datetime,
    alive: int | None = None,
) -> list[ScheduleInfo]:
    """Every schedule the registry declares or the store knows, as `app.list_schedules()`
    shows it; `alive`: the schedulers alive now."""
    known = {state.name: state for state in states}
    out = []
    for name in sorted(set(known) | set(registry.schedules)):
        state, schedule = known.get(name), registry.schedules.get(name)
        stored = schedule is None and state is not None and state.definition is not None
        if stored and state is not None:
            schedule = _readable(name, state.definition or "")
        next_run = None
        if schedule is not None and state is not None:
            next_run = plan(schedule, state.anchor, state.last_slot, now).next_run
        tenants, tenants_from = (
            schedule_tenants.describe(schedule.tenants)
            if schedule
            else schedule_tenants.load(state.tenants if state else None)
        )
        out.append(
            ScheduleInfo(
                name=name,
                task=schedule.task if schedule else state.task if state else "",
                rule=schedule.describe() if schedule else state.rule if state else "",
                paused=bool(state and state.paused),
                next_run=next_run,
                last_run=state.last_slot if state else None,
                run_count=state.run_count if state else 0,
                stats=runs.get(name, RunStats()),
                registered=name in registry.schedules,
                tenant=schedule.tenant if schedule else state.tenant if state else None,
                tenants=tenants,
                tenants_from=tenants_from,
                stored=stored,
                schedulers_alive=alive,
            )
        )
    return out


def _readable(name: str, definition: str) -> Schedule | None:
    try:
        return load(name, definition)
    except ConfigurationError:
        return None


class Scheduler:
    """Fires the registry's schedules. `tick()` does one pass; `run()` loops until stopped.

    `clock` gives the current time; the default is the store's clock. Tests pass their own
    (`underway.testing.Clock`). Every job it fires is published to `events` as `pending`.
    """

    def __init__(
        self,
        registry: Registry,
        store: Store,
        events: Events,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.events = events
        self.clock = clock or self.store.now
        self.next_runs: dict[str, datetime] = {}
        self._registered: set[str] = set()
        #: the schedules put at run time, rebuilt from their stored definitions
        self.stored = StoredSchedules()
        #: this scheduler's beat in the store, which listings read as "a scheduler is alive"
        self.liveness = Liveness(store)

    def tick(self) -> list[Job]:
        """Fire every slot that is due now, of the schedules this process declares and of
        those put at run time; returns the jobs this process created."""
        now = self.clock()
        self.liveness.beat()
        schedules = list(self.registry.schedules.values())
        for schedule in schedules:
            if schedule.name not in self._registered:
                self._register(schedule, now)
        states = {state.name: state for state in self.store.schedule_states()}
        schedules += self.stored.schedules(states.values(), self.registry)
        names = {schedule.name for schedule in schedules}
        self.next_runs = {n: at for n, at in self.next_runs.items() if n in names}
        fired: list[Job] = []
        for schedule in schedules:
            state = states.get(schedule.name)
            if state is None:  # the row went away (a reset database): put it back
                state = self._register(schedule, now)
            try:
                fired += self._tick_one(schedule, state, now)
            except StoreError:
                raise  # the store's trouble is every schedule's: the run loop retries
            except Exception as exc:
                # One schedule's own fault (a rule that cannot compute its next slot) must
                # not stop the others' ticks.
                self.next_runs.pop(schedule.name, None)
                log.error("schedule %s could not tick, skipped: %r", schedule.name, exc)
        if fired:
            self.events.wake_workers()
        return fired

    def _tick_one(self, schedule: Schedule, state: ScheduleState, now: datetime) -> list[Job]:
        current = plan(schedule, state.anchor, state.last_slot, now)
        self.next_runs[schedule.name] = current.next_run
        if state.paused:
            return []
        fired: list[Job] = []
        for slot in current.fire:
            # A schedule run per tenant lists its tenants at each slot; the store inserts all
            # of the slot's jobs in the one transaction that records the slot.
            jobs = [
                self._new_job(schedule, slot, t) for t in schedule_tenants.slot_tenants(schedule)
            ]
            for job in self.store.fire_slot(schedule.name, slot, jobs, schedule.overlap):
                fired.append(job)
                self.events.publish(job)
                log.info("schedule %s fired job %s for slot %s", schedule.name, job.id,
                         slot.isoformat())  # fmt: skip
        if current.advance_to is not None and current.advance_to not in current.fire:
            # Slots dropped by the catch-up policy still count as handled.
            self.store.fire_schedule(schedule.name, current.advance_to, None, Overlap.ALLOW)
        return fired

    def seconds_to_next(self) -> float:
        """How long until the earliest next slot, capped at MAX_SLEEP_SECONDS."""
        if not self.next_runs:
            return MAX_SLEEP_SECONDS
        wait = (min(self.next_runs.values()) - self.clock()).total_seconds()
        return min(max(wait, 0.0), MAX_SLEEP_SECONDS)

    async def run(self, stop: asyncio.Event, threads: StoreThreads | None = None) -> None:
        """Tick until `stop` is set, on `threads.schedules` (a worker's), or on threads of its
        own. Store errors are logged and retried; they never end it."""
        quiet_store_errors()
        if threads is None:
            own = StoreThreads(self.store)
            try:
                return await self.run(stop, own)
            finally:
                own.close()
        log.info("scheduler started with %d schedules declared here",
                 len(self.registry.schedules))  # fmt: skip
        try:
            await self._loop(stop, threads)
        finally:
            await threads.on(threads.schedules, self.liveness.forget)

    async def _loop(self, stop: asyncio.Event, threads: StoreThreads) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await threads.on(threads.schedules, self.tick)
                sleep = await threads.on(threads.schedules, self.seconds_to_next)
                failures = 0
            except Exception as exc:
                failures += 1
                sleep = min(0.5 * 2**failures, 30.0)
                log.error("scheduler tick failed (%s); retrying in %.1f s", exc, sleep)
            await wait_event(stop, max(sleep, 0.01))

    def _register(self, schedule: Schedule, now: datetime) -> ScheduleState:
        state = register(self.store, schedule, now, boot=True)
        self._registered.add(schedule.name)
        return state

    def _new_job(self, schedule: Schedule, slot: datetime, tenant: str | None) -> NewJob:
        task = self.registry.task(schedule.task)
        options = Options(key=schedule.key(slot, tenant), tenant=tenant)
        job = task.new_job((), schedule.args, options)
        job.schedule = schedule.name
        job.slot = slot
        return job
