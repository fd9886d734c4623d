"""Fixtures of the process tests.

`harness` builds on the root conftest's `database_url`, so it runs once per store kind (SQLite
always, PostgreSQL when UNDERWAY_TEST_POSTGRES_URL is set) on a database of the test's own; the
PostgreSQL schema is dropped after the harness has stopped its workers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from process_harness import Harness  # noqa: E402

# The PostgreSQL fault tests need a server. The root conftest turns a missing server into an
# error under CI=true; elsewhere, without UNDERWAY_TEST_POSTGRES_URL, they are not collected.
# So do the tests of completing in the task's own transaction, which only PostgreSQL offers.
POSTGRES_ONLY = ["test_postgres_faults.py", "test_complete_in_transaction_processes.py"]
collect_ignore = [] if os.environ.get("UNDERWAY_TEST_POSTGRES_URL") else POSTGRES_ONLY


@pytest.fixture
def harness(tmp_path: Path, database_url: str) -> Iterator[Harness]:
    h = Harness(tmp_path, database_url)
    try:
        yield h
    finally:
        h.close()
