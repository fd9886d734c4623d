"""Fixtures of the schedule integration tests. Each runs once per store kind (see
tests/conftest.py): SQLite always, PostgreSQL when UNDERWAY_TEST_POSTGRES_URL is set.

- `fast_app(**settings)`: an App on this test's database with short timings.
- `start_worker(app, **options)`: a running `WorkerThread`, stopped at teardown if still running.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from schedule_support import FAST, WorkerThread  # noqa: E402

import underway  # noqa: E402


@pytest.fixture
def fast_app(make_app: Callable[..., underway.App]) -> Callable[..., underway.App]:
    def make(**settings: Any) -> underway.App:
        return make_app(**{**FAST, **settings})

    return make


@pytest.fixture
def start_worker(make_app: Callable[..., underway.App]) -> Iterator[Callable[..., WorkerThread]]:
    """Asks for `make_app` so that its teardown (closing the apps) runs after this one."""
    started: list[WorkerThread] = []

    def start(app: underway.App, **options: Any) -> WorkerThread:
        worker = WorkerThread(app, **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.thread.is_alive():
            worker.worker.stop(now=True)
            worker.thread.join(10.0)
