"""F11 transactional enqueue atomicity (PostgreSQL: SQLite has no enqueue on the caller's
connection, and says so, see tests/postgres/test_pg_transactional_enqueue.py). Catalogue:
10,000 application transactions, each inserting a business row and enqueuing a job on the same
connection; 50 % ROLLBACK (seeded), 2 % the client SIGKILLed between INSERT and COMMIT, 1 % its
connection reset before COMMIT; a worker polling every 10 ms.

Pass: the set of jobs equals the set of committed business rows exactly; unexpected = 0; no
job starts before its transaction's COMMIT was sent.

CI size: 600 transactions (the client process restarts after each kill and reset); `--full`:
10,000."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from harness import MakeScenario
from ledger import Event, Outcome, Tally, read
from psycopg import sql

from underway.ids import uuid7
from underway.stores.postgres.store import _split_url

HERE = Path(__file__).resolve().parent
OUTCOMES = {"ok": Outcome.OK, "rolled_back": Outcome.ERROR, "killed": Outcome.ERROR,
            "unknown": Outcome.UNKNOWN}  # fmt: skip


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


def test_f11_a_job_exists_exactly_when_its_transaction_committed(
    scenario: MakeScenario, tmp_path: Path
) -> None:
    s = scenario("F11 transactional enqueue atomicity", poll_seconds=0.01)
    conninfo, schema = _split_url(s.url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id uuid PRIMARY KEY)")
                     .format(sql.Identifier(schema or "public", "orders")))  # fmt: skip
    rng = random.Random(11)
    plan = [(str(uuid7()), rng.choices(["rollback", "kill", "reset", "commit"],
                                       weights=[50, 2, 1, 47])[0])
            for _ in range(s.sizes.pick(600, 10_000))]  # fmt: skip
    plan_path, results = tmp_path / "plan.json", tmp_path / "results.log"
    plan_path.write_text(json.dumps(plan))
    results.touch()
    s.fleet.start(concurrency=4)

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    start, restarts = 0, 0
    while start < len(plan):
        client = subprocess.run(
            [sys.executable, str(HERE / "f11_client.py"), s.url, str(plan_path), str(results),
             str(start)],
            env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        lines = results.read_text().split()
        done = max((int(i) for i in lines[0::4]), default=-1)
        assert done >= start or client.returncode == 0, client.stderr.decode()[-3000:]
        start, restarts = done + 1, restarts + 1
    s.fault(f"{len(plan)} transactions: ~50% rolled back, the client SIGKILLed before COMMIT "
            f"and its connection terminated before COMMIT ({restarts - 1} restarts)")  # fmt: skip

    sent_at: dict[str, float] = {}
    for index, probe, outcome, sent in zip(*[iter(results.read_text().split())] * 4,
                                           strict=True):  # fmt: skip
        s.client.record(probe, OUTCOMES[outcome])
        sent_at[probe] = float(sent)
        assert plan[int(index)][0] == probe
    settled = s.settle(timeout=60)

    orders = sql.SQL("SELECT id FROM {}").format(sql.Identifier(schema or "public", "orders"))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = {str(r[0]) for r in conn.execute(orders)}
    jobs = set(s.raw.jobs())
    ok = s.client.with_outcome(Outcome.OK)
    refused = s.client.with_outcome(Outcome.ERROR)
    unknown = s.client.with_outcome(Outcome.UNKNOWN)
    starts = Tally(read(s.ledger)).by_probe(Event.START)
    early = [p for p in ok if p in starts and min(e.at for e in starts[p]) < sent_at[p]]
    verdict = s.verdict(allow_duplicates="none")
    (
        verdict.require("every job finished", settled, "")
        .require("jobs == committed business rows", jobs == rows,
                 f"{len(jobs - rows)} jobs without a row, {len(rows - jobs)} rows without a job")
        .require("every ok transaction has its job", ok <= jobs, "")
        .require("no rolled-back or killed transaction left a job", not (refused & jobs), "")
        .require("an unknown commit left both or neither", all((p in jobs) == (p in rows)
                                                               for p in unknown), "")
        .require("every kind of outcome happened", bool(ok and refused and unknown), "")
        .require("no job started before its COMMIT was sent", not early, f"{early[:3]}")
        .check()
    )  # fmt: skip
