"""A schedule put at run time in this process is fired by a scheduler in another process whose
code never declared it (it only registers the task), and removing it stops it there; the
listing tells whether a scheduler is alive. On a SQLite file, and on a PostgreSQL schema when
UNDERWAY_TEST_POSTGRES_URL is set.

The scheduler runs `python -m schedapp bare` (see schedapp.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schedapp
from test_schedulers_processes import FIRED_LINE, Fleet

import underway

pytestmark = pytest.mark.process

NAME = "stored-fast"
EVERY = 0.2


def stored_jobs(app: underway.App) -> list[underway.Job]:
    return [j for j in app.list_jobs(limit=10_000).jobs if j.schedule == NAME]


@pytest.fixture(name="fleet")
def fleet_fixture(tmp_path: Path, database_url: str) -> Iterator[Fleet]:
    processes = Fleet(tmp_path, database_url)
    yield processes
    processes.close()


def wait_for(what: str, done: Callable[[], bool], processes: Fleet, seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        processes.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds} s\n{processes.logs()}")
        time.sleep(0.1)


def test_put_here_fired_there_removed_stops(fleet: Fleet, database_url: str) -> None:
    app = schedapp.make_bare_app(database_url)  # registers the task; runs no scheduler
    app.migrate()
    try:
        bare = fleet.start("bare")
        wait_for("the scheduler's beat", lambda: app.store.schedulers_alive() == 1, fleet)
        app.schedule(schedapp.STORED_TASK, every=EVERY, name=NAME, stored=True)
        wait_for("five slots fired", lambda: len(stored_jobs(app)) >= 5, fleet)
        (info,) = [i for i in app.list_schedules() if i.name == NAME]
        assert (info.stored, info.registered, info.schedulers_alive) == (True, False, 1)
        assert info.state != "no scheduler"

        app.remove_schedule(NAME)
        after_removal = len(stored_jobs(app))
        time.sleep(20 * EVERY)  # twenty slots' worth: none may fire now
        fleet.check_alive()
        assert len(stored_jobs(app)) == after_removal

        codes = fleet.stop_all()
        assert codes == {bare.name: 0}, fleet.logs()
        assert app.store.schedulers_alive() == 0  # it said it stopped
        fired = Counter(job_id for name, job_id, _ in FIRED_LINE.findall(bare.stderr())
                        if name == NAME)  # fmt: skip
        assert fired == Counter({str(job.id): 1 for job in stored_jobs(app)}), fleet.logs()
        keys = Counter(job.key for job in stored_jobs(app))
        assert all(n == 1 for n in keys.values()) and None not in keys
    finally:
        app.close()
