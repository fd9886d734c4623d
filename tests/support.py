"""What the in-process worker and schedule tests share (tests/integration and
tests/integration_schedules); their conftest.py files import the fixtures from here.

- `FAST`: settings with short timings, so a worker notices work, cancel requests and stops
  within a fraction of a second.
- `fast_app(**settings)`: an App on this test's database with the FAST timings.
- `start_worker(app, concurrency=1, queues=None, scheduler=None)`: a running
  `underway.testing.RunningWorker`; any still running at teardown is stopped at once (jobs
  handed back), and an error a worker raised fails the test there.

Everything else comes from `underway.testing`, as in a user's own tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import underway
from underway import testing

FAST: dict[str, Any] = {
    "poll_seconds": 0.05,
    "heartbeat_seconds": 0.1,
    "lease_seconds": 1.0,
    "progress_flush_seconds": 0.05,
    "shutdown_grace_seconds": 0.2,
}


@pytest.fixture
def fast_app(make_app: Callable[..., underway.App]) -> Callable[..., underway.App]:
    """`fast_app(**settings)` -> an App with the FAST timings, overridden by `settings`."""

    def make(**settings: Any) -> underway.App:
        return make_app(**{**FAST, **settings})

    return make


@pytest.fixture
def start_worker(
    make_app: Callable[..., underway.App],
) -> Iterator[Callable[..., testing.RunningWorker]]:
    """`start_worker(app, concurrency=1, queues=None, scheduler=None)` -> a running worker.

    Asks for `make_app` so that its teardown (closing the apps) runs after this one."""
    started: list[testing.RunningWorker] = []
    with contextlib.ExitStack() as stack:

        def start(
            app: underway.App,
            concurrency: int = 1,
            queues: Sequence[str] | None = None,
            scheduler: bool | None = None,
        ) -> testing.RunningWorker:
            running = stack.enter_context(
                testing.worker(app, queues=queues, concurrency=concurrency, scheduler=scheduler)
            )
            started.append(running)
            return running

        yield start
        for running in started:
            if running.alive:  # the test left it running: no need to wait out its grace
                running.worker.stop(now=True)
