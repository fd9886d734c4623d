"""Fixtures of the in-process worker tests. Each runs once per store kind (see
tests/conftest.py): SQLite always, PostgreSQL when UNDERWAY_TEST_POSTGRES_URL is set.

- `fast_app(**settings)`: an App on this test's database with the FAST timings.
- `drain(app, concurrency=1)`: a burst worker in this thread; returns the jobs it processed.
- `start_worker(app, concurrency=1, queues=None)`: a running `WorkerThread`; any still running
  at teardown is stopped before the apps are closed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import underway

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from worker_support import FAST, WorkerThread, drain_app  # noqa: E402


@pytest.fixture
def fast_app(make_app: Callable[..., underway.App]) -> Callable[..., underway.App]:
    """`fast_app(**settings)` -> an App with the FAST timings, overridden by `settings`."""

    def make(**settings: Any) -> underway.App:
        return make_app(**{**FAST, **settings})

    return make


@pytest.fixture
def drain() -> Callable[..., int]:
    """`drain(app, concurrency=1)` -> how many jobs a burst worker processed."""
    return drain_app


@pytest.fixture
def start_worker(
    make_app: Callable[..., underway.App],
) -> Iterator[Callable[..., WorkerThread]]:
    """`start_worker(app, concurrency=1, queues=None)` -> a running WorkerThread.

    Asks for `make_app` so that its teardown (closing the apps) runs after this one."""
    started: list[WorkerThread] = []

    def start(
        app: underway.App, concurrency: int = 1, queues: Sequence[str] | None = None
    ) -> WorkerThread:
        worker = WorkerThread(app, concurrency, queues)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.alive:
            worker.worker.stop(now=True)
    for worker in started:
        worker.thread.join(10.0)
