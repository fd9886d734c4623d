"""Run statistics per schedule and per task (`app.stats().schedules` / `.tasks`, and the state
in `app.list_schedules()`): a schedule whose latest runs failed is "failing" with its failures
counted, one whose runs succeed is "ok", one that never ran is "idle".

Every test runs once per store kind (SQLite file; PostgreSQL schema when configured).
"""

from __future__ import annotations

from collections.abc import Callable

import underway
from underway import testing

MakeApp = Callable[..., underway.App]


class Broken(underway.PermanentError):
    """Fails the job at once, without retries."""


def test_failing_and_ok_schedules_and_their_tasks(fast_app: MakeApp) -> None:
    app = fast_app()
    app.state.healthy = False

    @app.periodic(every=60, schedule_name="flaky", max_attempts=1)
    def sync_accounts() -> str:
        if not app.state.healthy:
            raise Broken("upstream is down")
        return "synced"

    @app.periodic(every=60, schedule_name="steady")
    def heartbeat() -> str:
        return "alive"

    @app.periodic(every=3600, schedule_name="never-ran", initial_delay=3600)
    def rare() -> None: ...

    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    for _ in range(3):
        scheduler.tick()
        clock.advance(60)
    sync_accounts.enqueue()  # by hand: counts for the task, not for the schedule
    assert testing.drain(app, concurrency=2) == 7

    stats = app.stats()
    flaky, steady = stats.schedules["flaky"], stats.schedules["steady"]
    assert (flaky.runs, flaky.failures, flaky.consecutive_failures) == (3, 3, 3)
    assert (flaky.last_status, flaky.state) == ("failed", "failing")
    assert (steady.runs, steady.failures, steady.consecutive_failures) == (3, 0, 0)
    assert (steady.last_status, steady.state) == ("completed", "ok")
    assert steady.last_run is not None and steady.last_duration is not None
    assert steady.average_duration is not None and steady.average_duration >= 0
    assert "never-ran" not in stats.schedules or stats.schedules["never-ran"].state == "idle"
    task = stats.tasks[sync_accounts.name]
    assert (task.runs, task.failures, task.state) == (4, 4, "failing")
    assert stats.tasks[heartbeat.name].state == "ok"

    states = {info.name: info.state for info in app.list_schedules()}
    assert states == {"flaky": "failing", "steady": "ok", "never-ran": "idle"}
    (failed,) = [j for j in app.list_jobs(status="failed", limit=1).jobs]
    assert failed.error is not None and "upstream is down" in failed.error.message

    app.state.healthy = True  # it recovers: the next run succeeds
    assert len(scheduler.tick()) == 2  # the next slot of both schedules
    assert testing.drain(app) == 2
    flaky = app.stats().schedules["flaky"]
    assert (flaky.runs, flaky.failures, flaky.consecutive_failures) == (4, 3, 0)
    assert (flaky.last_status, flaky.state) == ("completed", "ok")
    assert {i.name: i.state for i in app.list_schedules()}["flaky"] == "ok"
    assert app.stats().schedules["steady"].runs == 4


def test_stats_are_shared_by_every_app_on_the_store(fast_app: MakeApp) -> None:
    def build(app: underway.App) -> underway.App:
        @app.periodic(every=60, schedule_name="shared", name="shared-task", max_attempts=1)
        def shared() -> None:
            raise Broken("no")

        return app

    clock = testing.Clock()
    first = build(fast_app())
    testing.scheduler(first, clock=clock).tick()
    assert testing.drain(first) == 1
    other = build(fast_app())
    assert other.stats().schedules["shared"].state == "failing"
    assert [i.state for i in other.list_schedules()] == ["failing"]
