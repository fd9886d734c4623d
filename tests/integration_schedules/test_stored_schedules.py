"""Schedules put at run time (`app.schedule(..., stored=True)`): stored with their definition,
fired by a scheduler whose app never declared them (it only registers the task), updated in
place, removed for every scheduler, restarted in one call, and listed with the scheduler's
liveness. Several `App`s on one store stand for several processes; a fake clock drives them.

Every test runs once per store kind (SQLite file; PostgreSQL schema when configured).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from schedule_support import T, scheduled_jobs, slot_of, slots

import underway
from underway import testing

MakeApp = Callable[..., underway.App]


def report(region: str = "all") -> str:
    return f"report for {region}"


def with_task(app: underway.App) -> underway.App:
    """An app that registers the task `report` and declares no schedule."""
    app.task(name="report")(report)
    return app


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def put(app: underway.App, clock: testing.Clock, every: float = 60, **options: Any) -> None:
    """Put the schedule `stored-report` at the clock's time (the store anchors it at its own
    clock; the fake clock must agree, so the anchor is moved to the fake time)."""
    app.schedule("report", every=every, name="stored-report", stored=True, **options)
    app.store.restart_schedule("stored-report", clock())


def test_a_schedule_put_in_one_app_is_fired_by_a_scheduler_that_never_declared_it(
    fast_app: MakeApp,
) -> None:
    clock = testing.Clock()
    control = with_task(fast_app())  # an admin process: it runs no scheduler
    put(control, clock, args={"region": "eu"}, tenant="acme")
    elsewhere = testing.scheduler(with_task(fast_app()), clock=clock)
    assert "stored-report" not in elsewhere.registry.schedules

    (job,) = elsewhere.tick()
    assert (slot_of(job), job.args, job.tenant, job.schedule) == (
        at(0), {"region": "eu"}, "acme", "stored-report",
    )  # fmt: skip
    clock.advance(60)
    assert [slot_of(j) for j in elsewhere.tick()] == [at(60)]
    # A second scheduler on the store adds nothing: each slot fires once.
    assert testing.scheduler(with_task(fast_app()), clock=clock).tick() == []
    assert testing.drain(control) == 2
    assert {j.result for j in scheduled_jobs(control, "stored-report")} == {"report for eu"}


def test_putting_it_again_updates_the_rule_everywhere(fast_app: MakeApp) -> None:
    clock = testing.Clock()
    control = with_task(fast_app())
    put(control, clock, every=60)
    scheduler = testing.scheduler(with_task(fast_app()), clock=clock)
    assert [slot_of(j) for j in scheduler.tick()] == [at(0)]
    control.schedule("report", every=10, name="stored-report", stored=True)  # add or update
    clock.advance(10)
    assert [slot_of(j) for j in scheduler.tick()] == [at(10)]
    assert scheduler.next_runs["stored-report"] == at(20)


def test_removing_it_stops_it_in_every_scheduler(fast_app: MakeApp) -> None:
    clock = testing.Clock()
    control = with_task(fast_app())
    put(control, clock)
    one = testing.scheduler(with_task(fast_app()), clock=clock)
    two = testing.scheduler(with_task(fast_app()), clock=clock)
    assert len(one.tick() + two.tick()) == 1
    control.remove_schedule("stored-report")
    for _ in range(3):
        clock.advance(60)
        assert one.tick() == [] and two.tick() == []
    assert slots(control, "stored-report") == [at(0)]
    assert "stored-report" not in one.next_runs
    assert "stored-report" not in {info.name for info in control.list_schedules()}
    with pytest.raises(underway.ScheduleNotFound):
        control.remove_schedule("stored-report")


def test_a_scheduler_without_the_task_leaves_it_to_one_that_has_it(fast_app: MakeApp) -> None:
    clock = testing.Clock()
    control = with_task(fast_app())
    put(control, clock)
    lacking = testing.scheduler(fast_app(), clock=clock)  # registers no task `report`
    assert lacking.tick() == []
    assert [slot_of(j) for j in testing.scheduler(with_task(fast_app()), clock=clock).tick()] == [
        at(0)
    ]


def test_a_name_declared_in_code_is_refused_at_run_time(fast_app: MakeApp) -> None:
    coded = with_task(fast_app())
    coded.schedule("report", every=60, name="nightly-report")
    testing.scheduler(coded).tick()
    for app in (coded, with_task(fast_app())):  # this app's code, or another's (via the store)
        with pytest.raises(underway.ScheduleDeclaredInCode, match="declared in"):
            app.schedule("report", every=5, name="nightly-report", stored=True)
        with pytest.raises(underway.ScheduleDeclaredInCode):
            app.remove_schedule("nightly-report")
    (info,) = coded.list_schedules()
    assert (info.rule, info.stored, info.registered) == ("every 1m", False, True)


def test_code_declaring_a_stored_name_takes_it_over(fast_app: MakeApp) -> None:
    clock = testing.Clock()
    control = with_task(fast_app())
    put(control, clock, every=60)
    deployed = with_task(fast_app())
    deployed.schedule("report", every=3600, name="stored-report")  # the new code declares it
    scheduler = testing.scheduler(deployed, clock=clock)
    assert [slot_of(j) for j in scheduler.tick()] == [at(0)]
    clock.advance(60)
    assert scheduler.tick() == []  # the code's hourly rule, not the stored minutely one
    # An older process that declares nothing no longer fires it either: the code owns it.
    assert testing.scheduler(with_task(fast_app()), clock=clock).tick() == []
    (info,) = deployed.list_schedules()
    assert (info.rule, info.stored) == ("every 1h", False)


def test_restart_fires_an_interval_at_once_and_counts_from_there(fast_app: MakeApp) -> None:
    clock = testing.Clock()
    app = with_task(fast_app())
    app.schedule("report", every=300, name="coded-report")
    scheduler = testing.scheduler(app, clock=clock)
    assert [slot_of(j) for j in scheduler.tick()] == [at(0)]
    app.pause_schedule("coded-report")
    clock.advance(100)
    app.store.restart_schedule("coded-report", clock())  # app.restart_schedule, at fake time
    assert [slot_of(j) for j in scheduler.tick()] == [at(100)]
    assert scheduler.next_runs["coded-report"] == at(400)


def test_restart_schedule_resumes_a_paused_schedule_for_every_process(fast_app: MakeApp) -> None:
    app = with_task(fast_app())
    app.schedule("report", every=3600, name="coded-report")
    app.pause_schedule("coded-report")
    app.restart_schedule("coded-report")  # the store's real clock
    (info,) = app.list_schedules()
    assert info.paused is False
    fired = testing.scheduler(app).tick()
    assert [job.schedule for job in fired] == ["coded-report"]
    with pytest.raises(underway.ScheduleNotFound):
        app.restart_schedule("no-such-schedule")


def test_the_listing_tells_no_scheduler_apart_from_ok(fast_app: MakeApp) -> None:
    clock = testing.Clock()
    control = with_task(fast_app())
    put(control, clock, every=60)
    (info,) = control.list_schedules()
    assert (info.stored, info.registered, info.rule, info.task) == (
        True, False, "every 1m", "report",
    )  # fmt: skip
    assert (info.schedulers_alive, info.state) == (0, "no scheduler")

    scheduler = testing.scheduler(with_task(fast_app()), clock=clock)
    scheduler.tick()
    testing.drain(control)
    (info,) = control.list_schedules()
    assert (info.schedulers_alive, info.state) == (1, "ok")
    scheduler.liveness.forget()  # what a scheduler does when it stops
    (info,) = control.list_schedules()
    assert (info.schedulers_alive, info.state) == (0, "no scheduler")


def test_what_a_stored_schedule_cannot_carry_is_refused(fast_app: MakeApp) -> None:
    app = with_task(fast_app())
    with pytest.raises(underway.ConfigurationError, match="first_after_boot"):
        app.schedule("report", every=60, name="s", first_after_boot=30, stored=True)
    with pytest.raises(underway.InvalidArguments, match="not JSON"):
        app.schedule("report", every=60, name="s", args={"region": {1, 2}}, stored=True)
    assert app.store.schedule_states() == []


def test_a_stored_schedule_can_be_triggered_from_any_app_with_its_task(fast_app: MakeApp) -> None:
    clock = testing.Clock()
    control = with_task(fast_app())
    put(control, clock, args={"region": "eu"}, tenant="acme")
    other = with_task(fast_app())  # never declared nor put it

    job = other.trigger_schedule("stored-report")
    assert (job.args, job.tenant, job.schedule, job.slot) == (
        {"region": "eu"}, "acme", "stored-report", None,
    )  # fmt: skip
    (info,) = [i for i in control.list_schedules() if i.name == "stored-report"]
    assert info.run_count == 1
    control.remove_schedule("stored-report")
    with pytest.raises(underway.ScheduleNotFound, match="no schedule named 'stored-report'"):
        other.trigger_schedule("stored-report")
