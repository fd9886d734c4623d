"""Fixtures of the schedule integration tests. Each runs once per store kind (see
tests/conftest.py): SQLite always, PostgreSQL when UNDERWAY_TEST_POSTGRES_URL is set.

- `fast_app(**settings)`: an App on this test's database with short timings.
- `start_worker(app, **options)`: a running `underway.testing.RunningWorker`, stopped at
  teardown if still running.

Both are shared with tests/integration (tests/support.py); clocks and schedulers come from
`underway.testing`.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):  # this directory's modules, and tests/support.py
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from support import fast_app, start_worker  # noqa: E402

__all__ = ["fast_app", "start_worker"]
