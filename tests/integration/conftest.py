"""Fixtures of the in-process worker tests. Each runs once per store kind (see
tests/conftest.py): SQLite always, PostgreSQL when UNDERWAY_TEST_POSTGRES_URL is set.

- `fast_app(**settings)`: an App on this test's database with the FAST timings.
- `drain(app, concurrency=1)`: `underway.testing.drain`, a burst worker in this thread;
  returns the jobs it processed.
- `start_worker(app, concurrency=1, queues=None)`: a running `underway.testing.RunningWorker`;
  any still running at teardown is stopped before the apps are closed.

`fast_app` and `start_worker` are shared with tests/integration_schedules (tests/support.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from underway import testing

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):  # this directory's modules, and tests/support.py
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from support import fast_app, start_worker  # noqa: E402

__all__ = ["drain", "fast_app", "start_worker"]


@pytest.fixture
def drain() -> Callable[..., int]:
    """`drain(app, concurrency=1)` -> how many jobs a burst worker processed."""
    return testing.drain
