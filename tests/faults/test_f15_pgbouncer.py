"""F15 poll-only behind PgBouncer's transaction mode, PostgreSQL. Catalogue: run the full
functional suite through PgBouncer `pool_mode=transaction` with LISTEN off. Pass: all tests
green; no session state used (session advisory locks, LISTEN, plain `SET`); pickup p99 <= the
poll interval.

The URL says where the store is: `postgresql://...:6432/db?pooler=transaction` turns LISTEN
and prepared statements off (idle workers read the feed's newest row every 50 ms instead,
busy ones ask for cancel requests every 250 ms, watchers read the feed every 50 ms).

1. Every PostgreSQL test of the store contract, the integration and the schedules suites runs
   again, in a pytest of its own, with its URL on PgBouncer (Debian's 1.18, a pool of 4 server
   connections for all of them): all pass, none skipped. A session state carried from one
   transaction to the next (a LISTEN, a prepared statement, a `SET`) would land on another
   client's connection and fail them.
2. Two worker processes through PgBouncer run jobs enqueued one at a time at random gaps:
   pickup (due to started, by the server's clock) p99 <= poll_seconds; sampled meanwhile, no
   server session of theirs is in LISTEN and none holds a session-level advisory lock.

CI size: 150 jobs in step 2; `--full` 1,000."""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from harness import MakeScenario
from pgbouncer import installed, pgbouncer

from underway.stores.postgres.store import _split_url

ROOT = Path(__file__).resolve().parents[2]
SUITES = ["tests/contract", "tests/integration", "tests/integration_schedules"]


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


def _require_pgbouncer() -> None:
    if not installed():
        if os.environ.get("CI") == "true":
            pytest.fail("PgBouncer is missing: `apt-get install pgbouncer` (.ci/run does)")
        pytest.skip("PgBouncer is not installed (apt-get install pgbouncer)")


def _pooled(url: str, port: int) -> str:
    conninfo, schema = _split_url(url)
    base = conninfo.replace(":5432/", f":{port}/", 1)
    assert f":{port}/" in base, f"cannot point {conninfo} at PgBouncer"
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}pooler=transaction" + (f"&schema={schema}" if schema else "")


class Sessions:
    """Samples the server's sessions of an application: LISTENs, session advisory locks."""

    def __init__(self, url: str, application_name: str) -> None:
        self.conninfo = _split_url(url)[0]
        self.name = application_name
        self.listening = 0
        self.locked = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                [(listening, locked)] = conn.execute(
                    "SELECT count(*) FILTER (WHERE a.query LIKE 'LISTEN%%'), "
                    "count(*) FILTER (WHERE EXISTS (SELECT FROM pg_locks AS l WHERE "
                    "l.pid = a.pid AND l.locktype = 'advisory') AND a.state = 'idle') "
                    "FROM pg_stat_activity AS a WHERE a.application_name = %s",
                    (self.name,),
                ).fetchall()
                self.listening += listening
                self.locked += locked
                self.samples += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(1800)  # three suites run again inside
def test_f15_everything_works_poll_only_behind_a_transaction_pooler(
    scenario: MakeScenario,
) -> None:
    _require_pgbouncer()
    s = scenario("F15 poll-only behind PgBouncer transaction mode", poll_seconds=1.0)
    jobs = s.sizes.pick(150, 1000)
    poll = s.settings["poll_seconds"]
    with pgbouncer(pool_size=4) as port:
        base = os.environ["UNDERWAY_TEST_POSTGRES_URL"].replace(":5432/", f":{port}/", 1)
        separator = "&" if "?" in base else "?"
        env = {**os.environ, "UNDERWAY_TEST_POSTGRES_URL": f"{base}{separator}pooler=transaction"}
        suites = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "postgresql",
             "-rs", *SUITES],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500,
        )  # fmt: skip
        summary = suites.stdout.strip().splitlines()[-1] if suites.stdout.strip() else ""
        s.fault(f"the contract, integration and schedules suites through PgBouncer ({summary})")

        s.fleet.url = _pooled(s.fleet.url, port)
        for worker in s.fleet.start_many(2, concurrency=4):
            assert s.fleet.wait_ready(worker), s.fleet.logs()
        sessions = Sessions(s.url, s.fleet.application_name)
        rng = random.Random(15)
        for _ in range(jobs):
            s.enqueue("faults.probe", [{}], batch=1)
            time.sleep(rng.uniform(0.0, 0.06))
        settled = s.settle(timeout=60)
        sessions.stop()
        s.fault(f"{jobs} jobs one at a time to 2 workers through PgBouncer, poll {poll:g} s")

    pickups = [float(p) for (p,) in s.raw._query(
        "SELECT extract(epoch FROM started_at - run_at) FROM {jobs} WHERE started_at IS NOT NULL"
    )]  # fmt: skip
    p99 = statistics.quantiles(pickups, n=100)[98] if len(pickups) > 1 else float("inf")
    verdict = s.verdict()
    (
        verdict.require("the suites pass through PgBouncer", suites.returncode == 0
                        and " passed" in summary and "skipped" not in summary
                        and "failed" not in summary, summary + "\n" + suites.stdout[-3000:])
        .require("settled", settled, f"{s.raw.unfinished()} unfinished")
        .require("pickup p99 <= the poll interval", p99 <= poll,
                 f"p99 {p99 * 1000:.0f} ms, p50 {statistics.median(pickups) * 1000:.0f} ms")
        .require("no LISTEN and no session advisory lock", sessions.samples > 10
                 and sessions.listening == 0 and sessions.locked == 0,
                 f"{sessions.listening} LISTEN and {sessions.locked} locked in "
                 f"{sessions.samples} samples")
        .check()
    )  # fmt: skip
