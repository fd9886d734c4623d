"""A job's slot (`Job.slot`, `Context.slot`, the HTTP job's "slot"): the time the schedule's
rule made it due, stored with the job, the same across catch-up and retries; None for a
triggered run and an enqueued job. Runs once per store kind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from schedule_support import T, scheduled_jobs, slot_of

import underway
from underway import testing
from underway.jobjson import job_to_json

MakeApp = Callable[..., underway.App]


def _build(app: underway.App, seen: list[tuple[datetime | None, int]], **options: object) -> None:
    @app.task(name="charge", max_attempts=2, retry=underway.Backoff(base=0, jitter=False))
    def charge(ctx: underway.Context) -> str | None:
        seen.append((ctx.slot, ctx.job.attempt))
        if ctx.slot is not None and ctx.slot == T + timedelta(minutes=1) and ctx.job.attempt == 1:
            raise RuntimeError("first try of the second slot fails")
        return None if ctx.slot is None else ctx.slot.isoformat()

    app.schedule(charge, every=60, name="charge-every-minute", **options)


def test_every_fired_job_carries_its_slot_also_after_downtime_and_on_retry(
    fast_app: MakeApp,
) -> None:
    seen: list[tuple[datetime | None, int]] = []
    app = fast_app()
    _build(app, seen, catch_up="all", max_catch_up=10, misfire_grace=5)
    clock = testing.Clock()
    testing.scheduler(app, clock=clock).tick()
    clock.advance(4 * 60 + 30)  # slots 1..4 missed while no scheduler ran
    fired = testing.scheduler(app, clock=clock).tick()
    assert [job.slot for job in fired] == [T + timedelta(minutes=k) for k in (1, 2, 3, 4)]

    jobs = scheduled_jobs(app, "charge-every-minute")
    assert [job.slot for job in jobs] == [slot_of(job) for job in jobs]  # read back from the store
    every_slot = [T + timedelta(minutes=k) for k in range(5)]
    assert [app.get_job(job.id).slot for job in jobs] == every_slot

    testing.drain(app)
    expected = [T + timedelta(minutes=k) for k in range(5)]
    assert sorted({slot for slot, _ in seen if slot is not None}) == expected
    assert sorted(s for s, a in seen if a == 2) == [T + timedelta(minutes=1)]  # the retry
    for job in scheduled_jobs(app, "charge-every-minute"):
        done = app.get_job(job.id)
        assert done.status == "completed" and done.slot is not None
        assert done.result == done.slot.isoformat()
        assert job_to_json(done)["slot"] == done.slot.isoformat()


def test_a_triggered_run_and_an_enqueued_job_have_no_slot(fast_app: MakeApp) -> None:
    seen: list[tuple[datetime | None, int]] = []
    app = fast_app()
    _build(app, seen)
    clock = testing.Clock()
    testing.scheduler(app, clock=clock).tick()
    triggered = app.trigger_schedule("charge-every-minute")
    enqueued = app.get_task("charge").enqueue()
    assert triggered.slot is None and enqueued.slot is None
    assert app.get_job(triggered.id).slot is None
    testing.drain(app)
    assert sorted(seen, key=lambda s: s[0] is not None) == [(None, 1), (None, 1), (T, 1)]
    assert job_to_json(app.get_job(triggered.id))["slot"] is None
