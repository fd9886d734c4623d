"""Per-minute coin deduction on underway, in this process: a schedule every minute whose runs
charge through their slot (`ctx.slot`), exact across a catch-up after downtime, several
workers, and runs repeated or concurrent for one minute (each test on SQLite and PostgreSQL).

The schedules fire on a fake clock (`underway.testing.scheduler`), so minutes pass at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from voice_calls.cache import CacheService
from voice_calls.coin_deduction import deduct_per_minute_coins
from voice_calls.config import Services
from voice_calls_support import START, assert_exact, call_state, marks, minutes_charged, population

import underway
from underway import testing
from voice_calls import accounts

DEDUCT = "voice_calls.deduct_per_minute_coins"


def fire(scheduler: underway.scheduler.Scheduler) -> list[underway.Job]:
    return [job for job in scheduler.tick() if job.task == DEDUCT]


def test_a_catch_up_after_downtime_charges_every_missed_minute_once(
    app: underway.App, services: Services, cache: CacheService
) -> None:
    callers = population(6, poor=1)
    hung_up = population(1)[0]
    clock = testing.Clock(START)
    scheduler = testing.scheduler(app, clock=clock)
    assert fire(scheduler) == []
    # 12:03:10: a call hangs up while nothing bills: its minutes are charged at hang-up
    asyncio.run(accounts.hang_up(hung_up.call_id, at=(START + timedelta(seconds=160)).timestamp()))

    clock.advance(timedelta(minutes=5))  # 12:05:30, after five minutes of downtime
    jobs = fire(scheduler)
    assert [job.slot for job in jobs] == [START.replace(minute=5, second=0)]  # "latest"
    testing.drain(app)

    assert_exact(services, callers, through=5)
    assert minutes_charged(services)[hung_up.call_id] == marks(1, 2, 3)
    assert call_state(services, hung_up.call_id)[:2] == ("ended", "hung_up")
    poor = callers[-1]
    assert f"call:{poor.call_id}" not in cache.values  # ended: dropped from the cache
    done = app.get_job(jobs[0].id)
    assert done is not None and done.status == "completed"
    assert done.result == {
        "minute": marks(5)[0], "calls": 6, "minutes_charged": 5 * 5 + 2,
        "coins": (5 * 5 + 2) * 3, "ended": [poor.call_id],
    }  # fmt: skip
    assert [a.outcome for a in app.attempts(done.id)] == ["completed"]


def test_minute_after_minute_with_several_workers_each_minute_is_charged_once(
    app: underway.App, services: Services
) -> None:
    callers = population(8, poor=2)
    clock = testing.Clock(START)
    scheduler = testing.scheduler(app, clock=clock)
    fire(scheduler)
    jobs = []
    for _ in range(4):
        clock.advance(60)
        jobs += fire(scheduler)
    assert len(jobs) == 4
    with (
        testing.worker(app, concurrency=2, scheduler=False),
        testing.worker(app, concurrency=2, scheduler=False),
    ):
        for job in jobs:
            assert app.wait(job.id, timeout=30).status == "completed"
    assert_exact(services, callers, through=4)


def test_the_same_minute_run_again_or_at_once_charges_nothing_twice(services: Services) -> None:
    callers = population(5, poor=1)
    minute = START.replace(minute=3, second=0).timestamp()

    async def runs() -> list[dict[str, object]]:
        first = await asyncio.gather(*(deduct_per_minute_coins(minute) for _ in range(3)))
        return [*first, await deduct_per_minute_coins(minute)]

    results = asyncio.run(runs())
    assert sum(int(str(r["minutes_charged"])) for r in results) == 4 * 3 + 2
    assert results[-1]["minutes_charged"] == 0
    assert_exact(services, callers, through=3)


def test_a_run_failing_on_the_cache_is_retried_and_the_retry_charges_nothing_twice(
    app: underway.App, services: Services, cache: CacheService
) -> None:
    callers = population(4, poor=1)
    clock = testing.Clock(START)
    scheduler = testing.scheduler(app, clock=clock)
    fire(scheduler)
    clock.advance(timedelta(minutes=3))
    [job] = fire(scheduler)
    cache.fail_next(1)  # the cache is down when the run drops the ended call from it
    with testing.worker(app, scheduler=False):
        done = app.wait(job.id, timeout=30)

    assert (done.status, done.attempt) == ("completed", 2)
    assert [a.outcome for a in app.attempts(job.id)] == ["retry", "completed"]
    assert_exact(services, callers, through=3)
    assert f"call:{callers[-1].call_id}" not in cache.values
