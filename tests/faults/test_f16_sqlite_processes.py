"""F16 SQLite multi-process (SQLite only). Catalogue: 6 worker processes + API + scheduler on
one WAL file, 50k jobs; 10 random SIGKILLs, including during a checkpoint.

Pass: 0 job failures from SQLITE_BUSY / "database is locked"; lost = 0; duplicated only among
jobs in flight at a kill; `PRAGMA integrity_check` = ok after each restart; I1-I5 hold.

CI size: 6 workers x 4 slots and this process enqueuing in batches while they run (every
worker also runs a scheduler), 3,000 jobs of up to 50 ms; 5 SIGKILLs, each while this process
forces a WAL checkpoint in a loop. `--full`: 50,000 jobs and 10 kills. Not measured: claim
p99 (a claim's own duration is not visible from outside the worker)."""

from __future__ import annotations

import random
import sqlite3
import threading
import time

import pytest
from harness import MakeScenario


@pytest.fixture
def store_kind() -> str:
    return "sqlite"


def test_f16_many_processes_on_one_sqlite_file(scenario: MakeScenario) -> None:
    s = scenario("F16 SQLite multi-process")
    path = s.url.removeprefix("sqlite:///")
    jobs, kills = s.sizes.pick(3000, 50_000), s.sizes.pick(5, 10)
    rng = random.Random(16)
    s.fleet.start_many(6, concurrency=4)
    s.fleet.supervise()

    def produce() -> None:
        for _ in range(0, jobs, 100):
            s.enqueue("faults.probe", [{"seconds": rng.uniform(0, 0.05)} for _ in range(100)])
            time.sleep(0.05)

    producer = threading.Thread(target=produce)
    producer.start()
    checkpointing = threading.Event()

    def checkpoint() -> None:
        with sqlite3.connect(path, timeout=30) as lite:
            while checkpointing.is_set():
                lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                time.sleep(0.005)

    integrity = []
    for _ in range(kills):
        time.sleep(1.5)
        checkpointing.set()
        checker = threading.Thread(target=checkpoint)
        checker.start()
        time.sleep(0.1)
        s.fleet.kill(rng.choice(s.fleet.alive()))
        checkpointing.clear()
        checker.join()
        with sqlite3.connect(path, timeout=30) as lite:
            integrity.append(lite.execute("PRAGMA integrity_check").fetchone()[0])
    s.fault(f"{kills} x SIGKILL during forced WAL checkpoints, each worker restarted")
    producer.join()
    settled = s.settle(timeout=120)

    verdict = s.verdict()
    rows = s.raw.jobs()
    failed = [(r.id, r.error_type) for r in rows.values() if r.status != "completed"]
    locked = [m.incarnation for m in s.fleet.members
              if "database is locked" in m.stderr_path.read_text(errors="replace")]  # fmt: skip
    (
        verdict.require("every job finished", settled, "")
        .require("every enqueue succeeded", len(s.client.outcomes) == jobs
                 and all(o.value == "ok" for o in s.client.outcomes.values()), "")
        .require("no job failed (database is locked or otherwise)", not failed, f"{failed[:3]}")
        .require("no worker logged 'database is locked'", not locked, f"{locked}")
        .require("integrity_check ok after each kill", integrity == ["ok"] * kills,
                 f"{integrity}")
        .check()
    )  # fmt: skip
