"""Boot-relative timing: `first_after_boot` counts from each scheduler start, `initial_delay`
once from the schedule's first registration. Schedulers on a real store, driven by a fake clock;
a new `Scheduler` stands for a restarted process.

Every test runs once per store kind (SQLite file; PostgreSQL schema when configured).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from schedule_support import T, slot_of, slots

import underway
from underway import testing

MakeApp = Callable[..., underway.App]


def monitor() -> None:
    return None


def build(app: underway.App, **options: Any) -> underway.App:
    task = app.task(name="monitor")(monitor)
    app.schedule(task, **{"every": 300, "name": "monitor", **options})
    return app


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def test_first_after_boot_counts_from_every_scheduler_start(fast_app: MakeApp) -> None:
    clock = testing.Clock()
    first = testing.scheduler(build(fast_app(), first_after_boot=30), clock=clock)
    assert first.tick() == []
    assert first.next_runs["monitor"] == at(30)
    clock.advance(30)
    assert [slot_of(job) for job in first.tick()] == [at(30)]
    clock.advance(300)
    assert [slot_of(job) for job in first.tick()] == [at(330)]

    clock.advance(70)  # t = 400: the application restarts
    app = build(fast_app(), first_after_boot=30)
    rebooted = testing.scheduler(app, clock=clock)
    assert rebooted.tick() == []
    assert rebooted.next_runs["monitor"] == at(430)  # not at(630), the old anchor's next slot
    clock.advance(30)
    assert [slot_of(job) for job in rebooted.tick()] == [at(430)]
    clock.advance(300)
    assert [slot_of(job) for job in rebooted.tick()] == [at(730)]
    assert slots(app, "monitor") == [at(30), at(330), at(430), at(730)]
    assert app.list_schedules()[0].rule == "every 5m (first 30s after each boot)"


def test_initial_delay_counts_once_so_a_restart_keeps_the_slots(fast_app: MakeApp) -> None:
    """The other meaning, side by side: a restart at t = 400 keeps the anchor of t = 0."""
    clock = testing.Clock()
    first = testing.scheduler(build(fast_app(), initial_delay=30), clock=clock)
    first.tick()
    clock.advance(30)
    assert [slot_of(job) for job in first.tick()] == [at(30)]
    clock.advance(370)
    rebooted = testing.scheduler(build(fast_app(), initial_delay=30), clock=clock)
    assert [slot_of(job) for job in rebooted.tick()] == [at(330)]  # the missed slot, caught up
    assert rebooted.next_runs["monitor"] == at(630)


def test_first_after_boot_zero_fires_at_once_after_each_restart(fast_app: MakeApp) -> None:
    clock = testing.Clock()
    first = testing.scheduler(build(fast_app(), first_after_boot=0), clock=clock)
    assert [slot_of(job) for job in first.tick()] == [at(0)]
    clock.advance(100)  # restarted 100 s later, long before the next slot at 300
    rebooted = testing.scheduler(build(fast_app(), first_after_boot=0), clock=clock)
    assert [slot_of(job) for job in rebooted.tick()] == [at(100)]
    clock.advance(1)
    assert rebooted.tick() == []  # the same process does not re-anchor on later ticks
    assert rebooted.next_runs["monitor"] == at(400)


def test_pausing_before_any_scheduler_ran_keeps_the_boot_delay(fast_app: MakeApp) -> None:
    """Registering from outside a scheduler (pause, resume) is no boot: the anchor stays."""
    clock = testing.Clock()
    app = build(fast_app(), first_after_boot=30)
    scheduler = testing.scheduler(app, clock=clock)
    scheduler.tick()
    clock.advance(20)
    app.pause_schedule("monitor")
    app.resume_schedule("monitor")
    assert scheduler.tick() == []
    assert scheduler.next_runs["monitor"] == at(30)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"initial_delay": 30, "first_after_boot": 30}, "not both"),
        ({"first_after_boot": -1}, "first_after_boot must be between"),
        ({"every": None, "cron": "*/5 * * * *", "first_after_boot": 30}, "every=... schedules"),
    ],
)
def test_first_after_boot_refuses_what_it_cannot_mean(
    fast_app: MakeApp, options: dict[str, Any], message: str
) -> None:
    app = fast_app()
    task = app.task(name="monitor")(monitor)
    with pytest.raises(underway.ConfigurationError, match=message):
        app.schedule(task, **{"every": 300, "name": "monitor", **options})
    with pytest.raises(underway.ConfigurationError, match=message):
        app.periodic(**{"every": 300, "schedule_name": "other", **options})(monitor)
