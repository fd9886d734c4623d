"""Fixtures of the fault and abuse suite (`./run test tests/faults`, `--full` for the
catalogue's sizes, `--faults-table PATH` to write the results table).

`scenario(name, **settings)` builds a `harness.Scenario` on this test's own database (the root
conftest's `database_url`: once per store, a PostgreSQL schema of its own, dropped after); its
workers are killed and its App closed at teardown. Every verdict a test checks becomes a row of
the table printed at the end of the run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import MakeScenario, Scenario, Sizes  # noqa: E402
from report import VERDICTS, table  # noqa: E402


@pytest.fixture
def sizes(request: pytest.FixtureRequest) -> Sizes:
    return Sizes(bool(request.config.getoption("--full")))


@pytest.fixture
def scenario(
    database_url: str, store_kind: str, tmp_path: Path, sizes: Sizes
) -> Iterator[MakeScenario]:
    made: list[Scenario] = []

    def make(name: str, **settings: Any) -> Scenario:
        s = Scenario(name, store_kind, database_url, tmp_path / f"s{len(made)}", sizes, settings)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not VERDICTS:
        return
    terminalreporter.section("fault suite")
    terminalreporter.write_line(table())
    path = config.getoption("--faults-table")
    if path:
        Path(path).write_text(table() + "\n")
