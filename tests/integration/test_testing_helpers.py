"""`underway.testing`, tested as a user's own tests would use it: `drain` runs what is due,
`worker(app)` runs a real worker for a `with` block and surfaces its errors, `wait_for` polls
until a probe finds what it waits for, `Clock` moves only when told, and
`scheduler(app, clock=...)` fires each slot once per step of the clock.

Every test that touches a store runs once per store kind (see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import underway
from underway import App, testing

MakeApp = Callable[..., App]
WaitFor = Callable[..., object]


def add(a: int, b: int) -> int:
    return a + b


# --- drain ------------------------------------------------------------------------------------


def test_drain_runs_the_due_jobs_returns_how_many_and_leaves_the_delayed_ones(
    make_app: MakeApp,
) -> None:
    app = make_app()
    task = app.task()(add)
    due = task.enqueue_many([(1, 2), (3, 4)])
    later = task.options(delay=3600).enqueue(5, 6)
    elsewhere = task.options(queue="mail").enqueue(7, 8)

    assert testing.drain(app, queues=["default"]) == 2
    assert [app.get_job(job.id).result for job in due] == [3, 7]  # type: ignore[union-attr]
    assert testing.drain(app, queues=["mail"], concurrency=2) == 1
    assert app.get_job(elsewhere.id).result == 15  # type: ignore[union-attr]
    assert testing.drain(app) == 0
    assert app.get_job(later.id).status == "pending"  # type: ignore[union-attr]


def test_drain_inside_a_running_event_loop_says_to_await_drain_async(make_app: MakeApp) -> None:
    app = make_app()
    task = app.task()(add)
    job = task.enqueue(1, 1)

    async def an_async_test() -> int:
        with pytest.raises(underway.ConfigurationError, match=r"await testing\.drain_async"):
            testing.drain(app)
        return await testing.drain_async(app)

    assert asyncio.run(an_async_test()) == 1
    assert app.get_job(job.id).result == 2  # type: ignore[union-attr]


# --- worker -----------------------------------------------------------------------------------


def test_a_worker_block_runs_the_jobs_enqueued_in_it_and_stops_at_its_end(
    make_app: MakeApp,
) -> None:
    app = make_app()
    task = app.task()(add)

    with testing.worker(app, concurrency=2) as running:
        assert isinstance(running.worker, underway.Worker)
        jobs = task.enqueue_many([(1, 2), (3, 4)])
        assert [app.wait(job.id, timeout=10).result for job in jobs] == [3, 7]
        assert running.alive
    assert not running.alive


def test_an_error_in_the_worker_is_raised_when_the_block_ends(
    make_app: MakeApp, wait_for: WaitFor
) -> None:
    app = make_app()

    @app.on_startup
    def connect() -> None:
        raise ConnectionError("the cache is unreachable")

    with (
        pytest.raises(ConnectionError, match="the cache is unreachable"),
        testing.worker(app) as running,
    ):
        wait_for(lambda: not running.alive, what="the worker to fail")

    with testing.worker(app) as running:
        wait_for(lambda: not running.alive, what="the worker to fail")
        with pytest.raises(ConnectionError):
            running.stop()
    # ... and only once: the end of the block did not raise it again.


def test_an_error_in_the_block_stops_the_worker_at_once_and_goes_on(make_app: MakeApp) -> None:
    app = make_app(shutdown_grace_seconds=120.0)  # only a stop with now=True ends in time
    started = threading.Event()

    @app.task()
    def slow(ctx: underway.Context) -> None:
        started.set()
        while not ctx.wait_cancelled(0.02):
            pass

    with (
        pytest.raises(LookupError, match="the test's own error"),
        testing.worker(app) as running,
    ):
        job = slow.enqueue()
        assert started.wait(10)
        raise LookupError("the test's own error")
    assert not running.alive
    assert app.get_job(job.id).status == "pending"  # type: ignore[union-attr]  # handed back


# --- Clock ------------------------------------------------------------------------------------


def test_a_clock_stands_still_until_advanced_or_set() -> None:
    clock = testing.Clock()
    start = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)
    assert clock() == clock.start == start
    assert clock() == start  # time does not pass by itself
    assert clock.advance(90) == start + timedelta(seconds=90) == clock()
    assert clock.advance(timedelta(hours=-1)) == start - timedelta(minutes=58, seconds=30)

    noon_in_berlin = datetime(2030, 1, 1, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    clock.set(noon_in_berlin)
    assert clock() == noon_in_berlin
    assert testing.Clock(noon_in_berlin)() == noon_in_berlin


def test_a_clock_refuses_naive_times() -> None:
    clock = testing.Clock()
    with pytest.raises(underway.ConfigurationError, match=r"Clock\.set.*timezone-aware"):
        clock.set(datetime(2030, 1, 1, 12, 0))
    assert clock() == clock.start
    with pytest.raises(underway.ConfigurationError, match=r"Clock\(start=\.\.\.\)"):
        testing.Clock(datetime(2030, 1, 1, 12, 0))


# --- scheduler --------------------------------------------------------------------------------


def test_the_scheduler_fires_each_slot_once_per_step_of_the_clock(make_app: MakeApp) -> None:
    app = make_app()

    @app.periodic(every=60)
    def beat() -> str:
        return "beat"

    clock = testing.Clock()
    sched = testing.scheduler(app, clock=clock)
    (first,) = sched.tick()  # the first slot is due when the schedule first appears
    assert sched.tick() == []
    clock.advance(59)
    assert sched.tick() == []
    clock.advance(1)
    (second,) = sched.tick()
    assert sched.tick() == []

    assert (first.task, second.task) == (beat.name, beat.name)
    assert testing.drain(app) == 2
    assert [app.get_job(j.id).result for j in (first, second)] == ["beat", "beat"]  # type: ignore[union-attr]


# --- wait_for ---------------------------------------------------------------------------------


def test_wait_for_returns_the_probes_value_once_a_worker_brings_it_about(
    make_app: MakeApp,
) -> None:
    app = make_app()
    job = app.task()(add).enqueue(2, 3)
    with testing.worker(app, scheduler=False):
        done = testing.wait_for(lambda: (j := app.get_job(job.id)) and j.finished and j,
                                what="the job to finish")  # fmt: skip
    assert isinstance(done, underway.Job) and done.result == 5


def test_wait_for_fails_the_test_saying_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"gave up after 0.05 s waiting for the moon"):
        testing.wait_for(lambda: None, timeout=0.05, what="the moon")
    with pytest.raises(testing.WaitTimeout):
        testing.wait_for(lambda: 0, timeout=0.01)
