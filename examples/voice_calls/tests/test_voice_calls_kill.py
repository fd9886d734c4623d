"""Exactness when a worker process is killed with `kill -9` in the middle of a per-minute run
(each test on SQLite and on PostgreSQL): another worker rescues the run, and still every call
is charged each minute once, none skipped, no balance below zero, and the job completed once.

On PostgreSQL the killed run's charges roll back with its transaction and the rescued run does
them all (`ctx.complete_in`); on SQLite the killed run's calls stay charged and the rescued run
skips them (the (call, minute) key)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from voice_calls.config import Services
from voice_calls.jobs import PAUSE_VAR
from voice_calls_support import START, assert_exact, minutes_charged, population

import underway
from underway import testing

T = TypeVar("T")
DEDUCT = "voice_calls.deduct_per_minute_coins"


class Workers:
    """`python -m voice_calls worker` processes of one test, killed at teardown."""

    def __init__(self, env: dict[str, Any], tmp_path: Path) -> None:
        self.env = env
        self.tmp_path = tmp_path
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"worker{len(self.procs) + 1}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "voice_calls", "worker", "--concurrency", "2"],
                env={**self.env, **env}, cwd=self.tmp_path, stdin=subprocess.DEVNULL,
                stdout=out, stderr=out,
            )  # fmt: skip
        self.procs.append((proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')}"
                         for _, log in self.procs)  # fmt: skip

    def wait_until(self, probe: Callable[[], T], what: str, timeout: float = 30.0) -> T:
        deadline = time.monotonic() + timeout
        while not (value := probe()):
            if time.monotonic() > deadline:
                pytest.fail(f"gave up after {timeout} s waiting for {what}\n{self.logs()}")
            time.sleep(0.05)
        return value

    def close(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def workers(worker_env: dict[str, Any], tmp_path: Path) -> Iterator[Workers]:
    w = Workers(worker_env, tmp_path)
    yield w
    w.close()


def slot_job(app: underway.App, minutes: int) -> underway.Job:
    """The job of the slot `minutes` after START's minute, fired after downtime."""
    clock = testing.Clock(START)
    scheduler = testing.scheduler(app, clock=clock)
    scheduler.tick()
    clock.advance(timedelta(minutes=minutes))
    jobs = [job for job in scheduler.tick() if job.task == DEDUCT]
    assert len(jobs) == 1
    return jobs[0]


def test_a_worker_killed_mid_run_leaves_every_minute_charged_once(
    app: underway.App, services: Services, workers: Workers
) -> None:
    callers = population(16, poor=2)
    job = slot_job(app, minutes=3)
    first = workers.start(**{PAUSE_VAR: "0.2"})

    def midway() -> bool:
        current = app.get_job(job.id)
        return current is not None and (current.progress or 0) >= 0.25

    workers.wait_until(midway, "the first run to be a quarter through")
    first.kill()
    assert first.wait(10) == -signal.SIGKILL
    charged = sum(len(m) for m in minutes_charged(services).values())
    if services.db.is_postgres:
        assert charged == 0  # the run's transaction rolled back, its completion with it
    else:
        assert 0 < charged < 14 * 3 + 2 * 2  # the calls charged so far stay charged

    second = workers.start()
    done = app.wait(job.id, timeout=60)
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0, workers.logs()

    assert (done.status, done.attempt, done.rescues) == ("completed", 2, 1), workers.logs()
    assert [a.outcome for a in app.attempts(job.id)] == ["rescued", "completed"]
    assert sum(c.completed for c in app.store.counters() if c.task == DEDUCT) == 1
    assert_exact(services, callers, through=3)
