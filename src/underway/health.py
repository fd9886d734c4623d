"""Health: is the store reachable, are workers heartbeating where work is due, and are the
schedules on time? Each answer comes from the store, so any process can ask for the whole
fleet (the HTTP API serves it at `GET /health`: 200 when ok, else 503 with the reasons).
Warnings are for what works but should be fixed, such as a worker whose clock is off: they
leave `ok` alone.

>>> health = underway.health.check(app)
>>> health.ok, [c.reason for c in health.checks if not c.ok]
(False, ['jobs in queue default are due and no live worker serves that queue: start one ...'])
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from .model import WorkerInfo
from .schedule import Schedule
from .stores import Store
from .stores.messages import HorizonHolder, ScheduleState

T = TypeVar("T")

#: how long the store may take to answer all the checks' reads
TIMEOUT_SECONDS = 2.0
#: how late a schedule's slot may be before the schedules check fails: a scheduler fires slots
#: within about a second, so a minute late means none is running
GRACE_SECONDS = 60.0
#: how far a worker's clock may be off the store's before the clocks check warns
SKEW_SECONDS = 1.0
#: how long a transaction may hold the store's dead rows back before the horizon check warns
HORIZON_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Check:
    """One check: its name ("store", "workers", "schedules", "clocks"), whether it passed, why
    not, and what to fix even so (a check can pass with a warning)."""

    name: str
    ok: bool
    reason: str = ""
    warning: str = ""


@dataclass(frozen=True, slots=True)
class Health:
    """All the checks; `ok` only when every one passed."""

    ok: bool
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> list[str]:
        """Why it is not ok: the reason of each failed check."""
        return [c.reason for c in self.checks if not c.ok]

    @property
    def warnings(self) -> list[str]:
        """What to fix though it works: the warning of each check that has one."""
        return [c.warning for c in self.checks if c.warning]


class Checked(Protocol):
    """What the checks read from an app (an `underway.App`)."""

    @property
    def store(self) -> Store: ...

    @property
    def schedules(self) -> dict[str, Schedule]: ...


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the store said, read in one go."""

    now: datetime
    unserved: list[str]  # queues with due jobs that no live worker serves
    states: dict[str, ScheduleState]
    workers: list[WorkerInfo]
    holders: list[HorizonHolder]


def check(
    app: Checked,
    *,
    timeout: float = TIMEOUT_SECONDS,
    grace: float = GRACE_SECONDS,
    horizon: float = HORIZON_SECONDS,
) -> Health:
    """Check the store (it answers within `timeout` seconds), the workers (a live one serves
    every queue with due jobs), the schedules (no registered, unpaused schedule has a slot
    more than `grace` seconds overdue), the workers' clocks (a warning for one more than
    `SKEW_SECONDS` off the store's) and the horizon (a warning for a transaction or a slot
    that has kept the store from removing dead rows for more than `horizon` seconds: jobs
    finish and are pruned, but their rows stay, and claims slow down as they pile up)."""
    try:
        seen = _within(timeout, lambda: _read(app, horizon))
    except TimeoutError:
        return _failed(f"the store did not answer within {timeout:g} s")
    except Exception as exc:  # whatever the driver raised: the reason is what matters
        return _failed(f"the store is unreachable: {exc}")
    checks = (
        Check("store", True),
        _workers(seen.unserved),
        _schedules(app.schedules, seen.states, seen.now, grace),
        _clocks(seen.workers),
        _horizon(seen.holders),
    )
    return Health(all(c.ok for c in checks), checks)


async def check_async(
    app: Checked,
    *,
    timeout: float = TIMEOUT_SECONDS,
    grace: float = GRACE_SECONDS,
    horizon: float = HORIZON_SECONDS,
) -> Health:
    """`check` for async code, without blocking the event loop."""
    return await asyncio.to_thread(check, app, timeout=timeout, grace=grace, horizon=horizon)


def _failed(reason: str) -> Health:
    return Health(False, (Check("store", False, reason),))


def _read(app: Checked, horizon: float) -> _Seen:
    store = app.store
    now = store.now()
    workers = store.workers()
    unserved = []
    if all(worker.queues is not None for worker in workers):  # else one serves every queue
        served = {queue for worker in workers for queue in worker.queues or ()}
        for queue in sorted(store.queue_depth()):
            if queue in served:
                continue
            due = store.next_due([queue])  # paused queues count as nothing due
            if due is not None and due <= 0:
                unserved.append(queue)
    states = {state.name: state for state in store.schedule_states()}
    return _Seen(now, unserved, states, workers, store.horizon_holders(horizon))


def _workers(unserved: list[str]) -> Check:
    if not unserved:
        return Check("workers", True)
    queues = ", ".join(unserved)
    noun = "queue" if len(unserved) == 1 else "queues"
    return Check(
        "workers",
        False,
        f"jobs in {noun} {queues} are due and no live worker serves that {noun}: start one "
        f"(`underway worker APP --queues {','.join(unserved)}`)",
    )


def _schedules(
    schedules: dict[str, Schedule], states: dict[str, ScheduleState], now: datetime, grace: float
) -> Check:
    late = []
    for name, schedule in sorted(schedules.items()):
        state = states.get(name)
        # A schedule no scheduler registered yet has no slot the store knows of.
        if state is None or state.paused:
            continue
        due = schedule.rule.slots(state.anchor, state.last_slot, now)
        if due and (now - due[0]).total_seconds() > grace:
            behind = (now - due[0]).total_seconds()
            late.append(f"{name} (its slot at {due[0].isoformat()} is {behind:.0f} s overdue)")
    if not late:
        return Check("schedules", True)
    return Check(
        "schedules",
        False,
        f"schedules are late, so no scheduler is running: {'; '.join(late)}. Every worker "
        "runs one unless started with scheduler off; or run `underway scheduler APP`",
    )


def _clocks(workers: list[WorkerInfo]) -> Check:
    off = [w for w in workers if w.clock_skew is not None and abs(w.clock_skew) > SKEW_SECONDS]
    if not off:
        return Check("clocks", True)
    each = "; ".join(
        f"worker {w.id} on {w.host} (pid {w.pid}) is {abs(w.clock_skew or 0.0):.1f} s "
        f"{'ahead of' if (w.clock_skew or 0.0) > 0 else 'behind'} the store's clock"
        for w in off
    )
    return Check(
        "clocks",
        True,
        warning=f"{each}. Leases, schedules and due times follow the store's clock, so nothing "
        "runs early or twice, but times in those workers' logs are off: sync the host's clock "
        "(NTP, chrony)",
    )


def _horizon(holders: list[HorizonHolder]) -> Check:
    if not holders:
        return Check("horizon", True)
    each = []
    for h in holders:
        held = "" if h.seconds is None else f" for {h.seconds:.0f} s"
        what = {"transaction": "pid", "prepared": "prepared transaction", "slot": "slot"}
        each.append(f"{what[h.kind]} {h.name}{held} ({h.detail})")
    fix = {
        "transaction": "end it, or terminate it with pg_terminate_backend(pid)",
        "prepared": "`COMMIT PREPARED` or `ROLLBACK PREPARED` it",
        "slot": "drop a slot no one reads with pg_drop_replication_slot(name)",
    }
    return Check(
        "horizon",
        True,
        warning="the xmin horizon is held by " + "; ".join(each) + ": dead job rows cannot "
        "be vacuumed meanwhile, so the tables grow and claims slow down. "
        + "; ".join(dict.fromkeys(fix[h.kind] for h in holders)),
    )


def _within(timeout: float, read: Callable[[], T]) -> T:
    """`read()` on a thread of its own, given up after `timeout` seconds. The thread is a
    daemon: a store that hangs (a dead server, a lost network) must not hold up the caller or
    the process's exit."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(read())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, name="underway-health", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError
    if error:
        raise error[0]
    return result[0]
