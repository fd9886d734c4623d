"""Schedulers on a real store, driven by a fake clock: which jobs each tick creates, that a
second scheduler on the same store creates nothing extra, catch-up after a downtime, overlap,
pause/resume/trigger, list_schedules, and schedules built at run time.

Every test runs once per store kind (SQLite file; PostgreSQL schema when configured).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from schedule_support import (
    T,
    all_jobs,
    scheduled_jobs,
    slot_of,
    slots,
)

import underway
from underway import testing

MakeApp = Callable[..., underway.App]


def beat(n: int = 0) -> int:
    return n


def build(app: underway.App, **options: Any) -> underway.App:
    """Register the task `beat` and the schedule `beat-every-minute` on it, as every process
    of the application would."""
    task = app.task(name="beat")(beat)
    app.schedule(task, **{"every": 60, "name": "beat-every-minute", **options})
    return app


def at(clock: testing.Clock, seconds: float) -> datetime:
    """The time `seconds` after T, where the clocks start unless told otherwise."""
    return T + timedelta(seconds=seconds)


# --- firing, and exactly once across schedulers ----------------------------------------------


def test_each_due_slot_becomes_one_job_and_a_second_scheduler_adds_nothing(
    fast_app: MakeApp,
) -> None:
    clock = testing.Clock()
    app = build(fast_app())
    one = testing.scheduler(app, clock=clock)
    two = testing.scheduler(build(fast_app()), clock=clock)  # another process on the same store

    fired = one.tick()
    assert [slot_of(job) for job in fired] == [at(clock, 0)]
    assert two.tick() == []
    for step in (60, 30, 30, 60):
        clock.advance(step)
        first, second = (two, one) if step == 30 else (one, two)
        first.tick()
        assert second.tick() == []
        assert one.tick() == [] and two.tick() == []

    assert slots(app, "beat-every-minute") == [at(clock, s) for s in (0, 60, 120, 180)]
    for job in scheduled_jobs(app, "beat-every-minute"):
        assert (job.task, job.schedule, job.status) == ("beat", "beat-every-minute", "pending")
    assert len(all_jobs(app)) == 4


def test_slot_jobs_carry_the_schedule_args_and_task_options(fast_app: MakeApp) -> None:
    app = fast_app()

    @app.periodic(every=60, args={"n": 7}, schedule_name="with-args", queue="bulk", priority=3)
    def add_one(n: int) -> int:
        return n + 1

    clock = testing.Clock()
    (job,) = testing.scheduler(app, clock=clock).tick()
    assert (job.args, job.queue, job.priority, job.schedule) == ({"n": 7}, "bulk", 3, "with-args")
    assert job.key == f"schedule:with-args:{at(clock, 0).isoformat()}"
    assert testing.drain(app) == 1
    assert app.get_job(job.id).result == 8  # type: ignore[union-attr]


def test_initial_delay_puts_the_first_slot_after_the_first_registration(
    fast_app: MakeApp,
) -> None:
    app = build(fast_app(), initial_delay=timedelta(seconds=30))
    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    assert scheduler.tick() == []
    assert scheduler.next_runs["beat-every-minute"] == at(clock, 30)
    clock.advance(29.9)
    assert scheduler.tick() == []
    clock.advance(0.1)
    assert [slot_of(j) for j in scheduler.tick()] == [at(clock, 30)]
    clock.advance(60)
    # Another process, later: the same anchor for all.
    later = testing.scheduler(build(fast_app(), initial_delay=30), clock=clock)
    assert [slot_of(j) for j in later.tick()] == [at(clock, 90)]


def test_a_cron_schedule_fires_its_slots_once_each(fast_app: MakeApp) -> None:
    def build_cron(app: underway.App) -> underway.App:
        app.task(name="beat")(beat)
        app.schedule("beat", cron="*/5 * * * *", name="five", misfire_grace=30)
        return app

    clock = testing.Clock(T - timedelta(seconds=30))  # 11:59:30; at(clock, 0) is T, 12:00
    app = build_cron(fast_app())
    one = testing.scheduler(app, clock=clock)
    two = testing.scheduler(build_cron(fast_app()), clock=clock)
    assert one.tick() == [] and two.tick() == []
    assert one.next_runs["five"] == at(clock, 0)
    clock.advance(30.5)
    assert [slot_of(j) for j in two.tick()] == [at(clock, 0)]
    assert one.tick() == []
    clock.advance(300)
    assert [slot_of(j) for j in one.tick()] == [at(clock, 300)]  # 12:05
    clock.advance(15 * 60)  # 12:20:00.5: 12:10 and 12:15 were missed; 12:20 is on time
    assert [slot_of(j) for j in two.tick()] == [at(clock, 20 * 60)]
    assert one.tick() == []
    assert len(all_jobs(app)) == 3


def test_a_cron_schedule_registered_in_the_last_second_before_a_slot_fires_it(
    fast_app: MakeApp,
) -> None:
    """The first scheduler starts at 11:59:59.5; the 12:00 slot must not be lost."""
    app = fast_app()
    app.task(name="beat")(beat)
    app.schedule("beat", cron="0 12 * * *", name="noon")
    clock = testing.Clock(T - timedelta(seconds=0.5))
    scheduler = testing.scheduler(app, clock=clock)
    assert scheduler.tick() == []
    clock.advance(1)
    assert [slot_of(j) for j in scheduler.tick()] == [at(clock, 0)]


# --- catch-up after a downtime ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected_slots"),
    [
        ("all", [8, 9, 10, 11, 12]),  # max_catch_up=5 of the 12 missed, oldest first
        ("latest", [12]),
        ("skip", []),
    ],
)
def test_catch_up_policy_after_twelve_missed_slots(
    fast_app: MakeApp, policy: str, expected_slots: list[int]
) -> None:
    options = {"catch_up": policy, "max_catch_up": 5, "misfire_grace": 10}
    app = build(fast_app(), **options)
    clock = testing.Clock()
    testing.scheduler(app, clock=clock).tick()  # slot 0, then nothing runs for 12 minutes

    clock.advance(12 * 60 + 20)  # slots 1..12 passed, each more than 10 s ago
    restarted = testing.scheduler(build(fast_app(), **options), clock=clock)
    fired = restarted.tick()
    assert [slot_of(j) for j in fired] == [at(clock, 60 * k) for k in expected_slots]
    assert restarted.tick() == []
    assert testing.scheduler(build(fast_app(), **options), clock=clock).tick() == []

    clock.advance(40 + 1)  # slot 13, on time, fires under every policy
    assert [slot_of(j) for j in restarted.tick()] == [at(clock, 60 * 13)]
    expected = [0, *expected_slots, 13]
    assert slots(app, "beat-every-minute") == [at(clock, 60 * k) for k in expected]
    (info,) = app.list_schedules()
    assert info.last_run == at(clock, 60 * 13)
    assert info.run_count == len(expected)


@pytest.mark.parametrize("policy", ["skip", "latest", "all"])
def test_a_missed_slot_still_within_the_misfire_grace_fires(fast_app: MakeApp, policy: str) -> None:
    options = {"catch_up": policy, "max_catch_up": 1, "misfire_grace": 10}
    app = build(fast_app(), **options)
    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    scheduler.tick()
    clock.advance(5 * 60 + 9)  # slots 1..4 missed; slot 5 is 9 s late
    assert [slot_of(j) for j in scheduler.tick()] == [at(clock, 300)]


# --- overlap ---------------------------------------------------------------------------------


def test_overlap_skip_drops_slots_while_the_previous_job_is_unfinished(fast_app: MakeApp) -> None:
    app = build(fast_app(), overlap="skip")
    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    (first,) = scheduler.tick()

    clock.advance(60)
    assert scheduler.tick() == []  # `first` is still pending: slot 1 is dropped
    hand = app.tasks["beat"].enqueue(5)  # a job of the same task, but not of the schedule
    assert hand.schedule is None
    (info,) = app.list_schedules()
    assert (info.last_run, info.run_count) == (at(clock, 60), 1)

    assert testing.drain(app) == 2
    assert app.get_job(first.id).status == "completed"  # type: ignore[union-attr]
    assert scheduler.tick() == []  # the dropped slot never comes back
    clock.advance(60)
    assert [slot_of(j) for j in scheduler.tick()] == [at(clock, 120)]
    assert slots(app, "beat-every-minute") == [at(clock, 0), at(clock, 120)]


def test_overlap_skip_also_waits_for_a_running_job(
    fast_app: MakeApp, start_worker: Callable[..., testing.RunningWorker], tmp_path: Any
) -> None:
    app = fast_app()
    gate = tmp_path / "gate"

    @app.periodic(every=60, overlap="skip", schedule_name="slow")
    def slow(ctx: underway.Context) -> str:
        while not gate.exists():
            if ctx.wait_cancelled(0.02):
                return "stopped"
        return "done"

    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    (first,) = scheduler.tick()
    worker = start_worker(app, scheduler=False)
    end = time.monotonic() + 10
    while app.get_job(first.id).status != "running":  # type: ignore[union-attr]
        assert time.monotonic() < end, "the first job never started"
        time.sleep(0.02)
    clock.advance(60)
    assert scheduler.tick() == []
    assert [i.stats.state for i in app.list_schedules()] == ["running"]
    gate.touch()
    assert app.wait(first.id, timeout=10).status == "completed"
    worker.stop()
    clock.advance(60)
    assert [slot_of(j) for j in scheduler.tick()] == [at(clock, 120)]


def test_overlap_wait_fires_the_slot_late_once_the_previous_job_finished(
    fast_app: MakeApp,
) -> None:
    app = build(fast_app(), overlap="wait", misfire_grace=300)
    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    (_first,) = scheduler.tick()

    clock.advance(60)
    assert scheduler.tick() == []
    clock.advance(10)
    assert scheduler.tick() == []
    (info,) = app.list_schedules()
    assert (info.last_run, info.run_count) == (at(clock, 0), 1)  # slot 1 not handled yet

    assert testing.drain(app) == 1
    late = scheduler.tick()
    assert [slot_of(j) for j in late] == [at(clock, 60)]  # fired 10 s late
    other = build(fast_app(), overlap="wait", misfire_grace=300)  # another process
    assert testing.scheduler(other, clock=clock).tick() == []
    assert testing.drain(app) == 1
    clock.advance(50)
    assert [slot_of(j) for j in scheduler.tick()] == [at(clock, 120)]


# --- pause, resume, trigger -------------------------------------------------------------------


def test_a_paused_schedule_fires_nothing_in_any_scheduler_until_resumed(
    fast_app: MakeApp,
) -> None:
    clock = testing.Clock()
    app = build(fast_app(), misfire_grace=10)
    other = build(fast_app(), misfire_grace=10)  # another process on the same store
    one = testing.scheduler(app, clock=clock)
    two = testing.scheduler(other, clock=clock)
    one.tick()

    app.pause_schedule("beat-every-minute")
    (info,) = app.list_schedules()
    assert (info.paused, info.state) == (True, "paused")
    (elsewhere,) = other.list_schedules()
    assert elsewhere.state == "paused"
    for _ in range(3):
        clock.advance(60)
        assert one.tick() == [] and two.tick() == []
    assert slots(app, "beat-every-minute") == [at(clock, 0)]

    other.resume_schedule("beat-every-minute")
    (info,) = app.list_schedules()
    assert (info.paused, info.state) == (False, "idle")
    # Slots 1 and 2 were missed (later than the 10 s grace): one run for them, now.
    assert [slot_of(j) for j in one.tick()] == [at(clock, 180)]
    assert two.tick() == []


def test_trigger_runs_the_schedule_now_outside_its_slots(fast_app: MakeApp) -> None:
    app = build(fast_app(), args={"n": 2})
    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    scheduler.tick()
    clock.advance(20)  # no slot is due

    job = app.trigger_schedule("beat-every-minute")
    assert (job.task, job.schedule, job.args, job.status) == (
        "beat", "beat-every-minute", {"n": 2}, "pending",
    )  # fmt: skip
    assert scheduler.tick() == []
    again = app.trigger_schedule("beat-every-minute")
    assert again.id != job.id
    (info,) = app.list_schedules()
    assert info.run_count == 3
    assert info.last_run == at(clock, 0)  # triggers are not slots
    assert testing.drain(app) == 3
    clock.advance(40)
    assert [slot_of(j) for j in scheduler.tick()] == [at(clock, 60)]
    with pytest.raises(underway.UnknownTask, match="no schedule named 'nope'"):
        app.trigger_schedule("nope")


def test_trigger_and_pause_work_before_any_scheduler_has_run(fast_app: MakeApp) -> None:
    """A schedule defined in the app can be triggered (an admin's "run now") and paused before
    the first worker or scheduler of a fresh deployment started."""
    app = build(fast_app())
    job = app.trigger_schedule("beat-every-minute")
    assert (job.task, job.schedule) == ("beat", "beat-every-minute")
    app.pause_schedule("beat-every-minute")
    assert [i.state for i in app.list_schedules()] == ["paused"]


# --- list_schedules ---------------------------------------------------------------------------


def test_list_schedules_shows_rule_next_and_last_run_and_count(fast_app: MakeApp) -> None:
    app = fast_app()

    @app.periodic(every=timedelta(hours=1), schedule_name="hourly-report")
    def report() -> None: ...

    @app.periodic(cron="@daily", timezone="Europe/Berlin", schedule_name="nightly")
    def nightly() -> None: ...

    before = {i.name: i for i in app.list_schedules()}
    assert set(before) == {"hourly-report", "nightly"}
    for info in before.values():
        assert (info.next_run, info.last_run, info.run_count, info.paused) == (None, None, 0, False)
        # No scheduler beat in the store yet: the listing says so rather than "idle".
        assert (info.state, info.registered, info.schedulers_alive) == ("no scheduler", True, 0)

    testing.scheduler(app).tick()  # the store's clock
    (anchor,) = [s.anchor for s in app.store.schedule_states() if s.name == "hourly-report"]
    after = {i.name: i for i in app.list_schedules()}
    hourly, daily = after["hourly-report"], after["nightly"]
    assert (hourly.task, hourly.rule) == (report.name, "every 1h")
    assert (hourly.last_run, hourly.next_run, hourly.run_count) == (
        anchor, anchor + timedelta(hours=1), 1,
    )  # fmt: skip
    assert hourly.state == "idle"  # its job has not run yet
    berlin = ZoneInfo("Europe/Berlin")
    local_now = app.store.now().astimezone(berlin)
    midnight = datetime.combine(local_now.date() + timedelta(days=1), datetime.min.time(), berlin)
    assert (daily.task, daily.rule) == (nightly.name, "cron 0 0 * * * (Europe/Berlin)")
    assert (daily.last_run, daily.next_run, daily.run_count) == (None, midnight, 0)

    other = fast_app()  # another application on the same store, without these schedules
    seen = {i.name: i for i in other.list_schedules()}
    assert seen["nightly"].registered is False
    assert seen["nightly"].rule == "cron 0 0 * * * (Europe/Berlin)"
    assert seen["hourly-report"].last_run == anchor


# --- schedules built at run time; periodic tasks stay tasks ------------------------------------


def test_app_schedule_takes_its_interval_from_a_variable_and_can_be_replaced(
    fast_app: MakeApp,
) -> None:
    config = {"cleanup_interval": timedelta(minutes=5)}
    app = fast_app()

    @app.task(name="cleanup")
    def cleanup() -> str:
        return "clean"

    schedule = app.schedule(cleanup, every=config["cleanup_interval"])
    assert schedule.name == "cleanup"
    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    scheduler.tick()
    clock.advance(300)
    scheduler.tick()
    assert slots(app, "cleanup") == [at(clock, 0), at(clock, 300)]
    assert app.list_schedules()[0].rule == "every 5m"

    app.schedule("cleanup", every=config["cleanup_interval"] * 2)  # by name, a new interval
    clock.advance(200)
    assert scheduler.tick() == []  # a 10-minute rule from the same anchor: next at T+600
    assert app.list_schedules()[0].rule == "every 10m"
    clock.advance(100)
    assert [slot_of(j) for j in scheduler.tick()] == [at(clock, 600)]


def test_a_periodic_task_can_still_be_enqueued_and_called_by_hand(fast_app: MakeApp) -> None:
    app = fast_app()

    @app.periodic(every=60, schedule_name="sum")
    def total(a: int = 1, b: int = 2) -> int:
        return a + b

    assert total(3, 4) == 7
    job = total.enqueue(a=10)
    assert (job.schedule, job.key) == (None, None)
    assert testing.drain(app) == 1
    assert app.get_job(job.id).result == 12  # type: ignore[union-attr]
    assert app.list_schedules()[0].run_count == 0


# --- workers run the scheduler -----------------------------------------------------------------


def test_a_worker_fires_the_schedules_and_runs_their_jobs(
    fast_app: MakeApp, start_worker: Callable[..., testing.RunningWorker]
) -> None:
    app = fast_app()

    @app.periodic(every=0.2, schedule_name="quick")
    def quick() -> str:
        return "ok"

    worker = start_worker(app)
    end = time.monotonic() + 15
    while len([j for j in scheduled_jobs(app, "quick") if j.status == "completed"]) < 3:
        assert time.monotonic() < end, "the worker's scheduler fired fewer than 3 jobs"
        time.sleep(0.05)
    worker.stop()
    fired = slots(app, "quick")
    assert len(fired) == len(set(fired))
    (info,) = app.list_schedules()
    assert info.run_count == len(fired)
    assert info.stats.state == "ok"


def test_a_burst_worker_does_not_fire_schedules_unless_asked(fast_app: MakeApp) -> None:
    app = build(fast_app())
    assert testing.drain(app) == 0
    assert all_jobs(app) == []
    assert app.store.schedule_states() == []


# --- one schedule's fault stays its own ------------------------------------------------------


def test_an_interval_whose_next_slot_no_date_can_hold_is_refused(fast_app: MakeApp) -> None:
    # every=1e14 (three million years) used to pass, then overflow datetime at every tick.
    app = fast_app()
    task = app.task(name="beat")(beat)
    for options in ({"every": 1e14}, {"every": 60, "initial_delay": 1e14}):
        with pytest.raises(underway.ConfigurationError, match="100 years"):
            app.schedule(task, name="far", **options)


def test_a_tiny_interval_and_mistyped_rules_and_arguments_are_refused_clearly(
    fast_app: MakeApp,
) -> None:
    # every=1e-300 used to pass (a scheduler counting slots forever); a string interval and
    # arguments given as a tuple raised a raw ValueError and AttributeError.
    app = fast_app()
    task = app.task(name="beat")(beat)
    with pytest.raises(underway.ConfigurationError, match=r"at least 0\.01 seconds"):
        app.schedule(task, name="tiny", every=1e-300)
    with pytest.raises(underway.ConfigurationError, match="number of seconds or a timedelta"):
        app.schedule(task, name="words", every="5m")  # type: ignore[arg-type]
    with pytest.raises(underway.InvalidArguments, match="args must map argument names"):
        app.schedule(task, name="tuple", every=60, args=(1,))  # type: ignore[arg-type]
    assert app.schedules == {}


def test_a_schedule_that_cannot_compute_its_slots_does_not_stop_the_others(
    fast_app: MakeApp,
) -> None:
    # Near the end of datetime's range a yearly rule's next slot overflows; the minutely one
    # beside it must go on firing.
    app = build(fast_app())
    app.schedule(app.registry.tasks["beat"], every=365 * 86400.0, name="yearly")
    clock = testing.Clock(start=datetime(9999, 6, 1, tzinfo=ZoneInfo("UTC")))
    scheduler = testing.scheduler(app, clock=clock)
    assert [job.schedule for job in scheduler.tick()] == ["beat-every-minute"]
    clock.advance(60)
    assert [job.schedule for job in scheduler.tick()] == ["beat-every-minute"]
    assert "yearly" not in scheduler.next_runs
