"""The seed's task manager on underway: the six tasks on intervals from the settings, their
first run at once after every start of the bot, register/start/stop/restart/unregister while
it runs (for every process), `get_all_stats()`, a task failing repeatedly showing as failing,
and a stop that reaches a task stuck on I/O within a second."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chat_bot.app import ChatBot
from chat_bot.manager import TaskManager
from chat_bot.services import ServiceDouble
from chat_bot.settings import MaintenanceSettings

import underway
from underway import testing

BUILT_IN = ["cache_cleanup", "database_cleanup", "document_storage_cleanup", "health_check",
            "metrics_collection", "session_cleanup"]  # fmt: skip


def now_clock() -> testing.Clock:
    """A fake clock starting at the store's real time, which run-time verbs anchor to."""
    return testing.Clock(start=datetime.now(UTC))


def fired(jobs: list[underway.Job]) -> list[str]:
    return sorted(job.schedule or "" for job in jobs)


def test_each_task_runs_on_the_interval_its_setting_gives(manager: TaskManager) -> None:
    stats = manager.get_all_stats()
    assert sorted(stats) == BUILT_IN
    assert stats["cache_cleanup"].rule == "every 5m (first 0s after each boot)"
    assert stats["metrics_collection"].rule == "every 2m (first 0s after each boot)"
    assert stats["database_cleanup"].rule == "every 1h (first 0s after each boot)"
    assert not any(s.registered_at_run_time for s in stats.values())


def test_the_first_runs_fire_at_once_after_every_start(
    bot: ChatBot, database_url: str, settings: MaintenanceSettings
) -> None:
    clock = now_clock()
    first = testing.scheduler(bot.app, clock=clock)
    assert fired(first.tick()) == BUILT_IN  # the bot starts: everything runs at once
    testing.drain(bot.app)
    clock.advance(30)
    assert first.tick() == []  # then each waits for its interval

    restarted = ChatBot(database_url, settings)  # the bot restarts 30 s later
    try:
        again = testing.scheduler(restarted.app, clock=clock)
        assert fired(again.tick()) == BUILT_IN  # its first runs fire at once again
        testing.drain(restarted.app)
        clock.advance(30)
        assert again.tick() == []
        clock.advance(270)  # five minutes after the restart: the 1, 2 and 5 minute ones
        assert fired(again.tick()) == ["cache_cleanup", "health_check", "metrics_collection"]
    finally:
        restarted.close()


def test_stop_start_and_restart_act_on_the_schedule(bot: ChatBot, manager: TaskManager) -> None:
    clock = now_clock()
    scheduler = testing.scheduler(bot.app, clock=clock)

    def cache_runs() -> int:
        """Tick; how many cache cleanups fired (the runs finish before the next tick, as a
        run still going would make the next slot skip: overlap="skip")."""
        jobs = [job for job in scheduler.tick() if job.schedule == "cache_cleanup"]
        testing.drain(bot.app)
        return len(jobs)

    assert cache_runs() == 1
    clock.advance(60)
    assert cache_runs() == 0
    manager.restart_task("cache_cleanup")  # runs at once, then every 5 minutes from now
    # The restart counts from the store's real time (the fake clock has not moved past it).
    clock.set(datetime.now(UTC))
    assert cache_runs() == 1
    assert cache_runs() == 0
    clock.advance(300)
    assert cache_runs() == 1

    manager.stop_task("cache_cleanup")
    assert manager.get_all_stats()["cache_cleanup"].state == "paused"
    clock.advance(300)
    assert cache_runs() == 0  # stopped: its slot passes without a run

    manager.start_task("cache_cleanup")
    assert manager.get_all_stats()["cache_cleanup"].state == "ok"
    clock.advance(300)
    assert cache_runs() == 1


def test_a_task_registered_at_run_time_runs_in_every_process_until_unregistered(
    bot: ChatBot, manager: TaskManager, database_url: str, settings: MaintenanceSettings,
    tmp_path: Path,
) -> None:  # fmt: skip
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "big.bin").write_bytes(b"x" * (2 * 1024 * 1024))  # over the 1 MiB quota
    manager.register_task("archive_cleanup", bot.document_storage_cleanup, every=600,
                          args={"folder": str(archive)})  # fmt: skip
    listed = manager.get_all_stats()["archive_cleanup"]
    assert listed.registered_at_run_time and listed.rule == "every 10m"

    other = ChatBot(database_url, settings)  # another process of the bot
    try:
        clock = now_clock()
        elsewhere = testing.scheduler(other.app, clock=clock)
        jobs = [job for job in elsewhere.tick() if job.schedule == "archive_cleanup"]
        assert len(jobs) == 1 and jobs[0].args == {"folder": str(archive)}
        testing.drain(other.app)
        assert list(archive.iterdir()) == []
        assert manager.get_all_stats()["archive_cleanup"].runs == 1

        manager.unregister_task("archive_cleanup")
        assert "archive_cleanup" not in manager.get_all_stats()
        clock.advance(600)
        assert "archive_cleanup" not in fired(elsewhere.tick())
    finally:
        other.close()
    with pytest.raises(underway.ScheduleDeclaredInCode):
        manager.unregister_task("cache_cleanup")  # a built-in task is stopped, not removed


def test_a_task_failing_repeatedly_shows_as_failing_until_it_succeeds(
    bot: ChatBot, manager: TaskManager, service: ServiceDouble
) -> None:
    service.fail()  # metrics collection cannot get the rate limiter's stats

    def metrics() -> Any:
        return manager.get_all_stats()["metrics_collection"]

    with testing.worker(bot.app, concurrency=4, scheduler=True):
        # The worker's scheduler fires every task at once; metrics collection fails its two
        # attempts.
        testing.wait_for(lambda: metrics().failures == 1, what="the first failed run")
        bot.app.trigger_schedule("metrics_collection")
        testing.wait_for(lambda: metrics().failures == 2, what="the second failed run")
        failing = metrics()
        assert failing.state == "failing" and failing.consecutive_failures == 2
        assert failing.last_status == "failed" and failing.last_run is not None
        testing.wait_for(lambda: manager.get_all_stats()["cache_cleanup"].state == "ok",
                         what="the first cache cleanup to be done")  # fmt: skip

        service.failing = False
        manager.restart_task("metrics_collection")
        testing.wait_for(lambda: metrics().state == "ok", what="a successful run")
    recovered = metrics()
    assert (recovered.runs, recovered.failures, recovered.consecutive_failures) == (3, 2, 0)
    assert recovered.next_run is not None and recovered.next_run > datetime.now(UTC)


@pytest.mark.parametrize(("name", "path"), [("health_check", "/health"),
                                           ("metrics_collection", "/stats")])  # fmt: skip
def test_stop_cancels_a_task_stuck_on_io_within_a_second(
    bot: ChatBot, manager: TaskManager, service: ServiceDouble, name: str, path: str
) -> None:
    service.hang()  # the rate limiter takes its time answering
    task = f"chat_bot.{name}"
    with testing.worker(bot.app, concurrency=8, scheduler=True):
        testing.wait_for(lambda: path in service.requests, what=f"{name} to ask the service")
        running = testing.wait_for(lambda: bot.app.list_jobs(status="running", task=task).jobs,
                                   what=f"{name} to run")  # fmt: skip
        asked = time.monotonic()
        cancelled = manager.stop_task(name)
        assert [job.id for job in cancelled] == [running[0].id]
        testing.wait_for(lambda: (job := bot.app.get_job(running[0].id)) and job.finished,
                         what=f"{name} to stop")  # fmt: skip
        took = time.monotonic() - asked
        service.release()
    done = bot.app.get_job(running[0].id)
    assert done is not None and done.status is underway.Status.CANCELLED
    assert took < 1.0, f"{name} took {took:.2f} s to stop"
    assert manager.get_all_stats()[name].state == "paused"
