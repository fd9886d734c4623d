"""F10 read-only primary (PostgreSQL only). Catalogue: `default_transaction_read_only = on`
for 60 s while workers run.

Pass: SQLSTATE 25006 is treated as a lost connection (drop and reconnect, no endless retry on
the same socket); <= 1 error log line per second per worker; no job stuck `running` once the
primary is writable again (within lease + sweep); jobs that never started keep their attempt
counter. Nothing lost, nothing run twice.

Other tests share the server, so the fault touches only this scenario's workers: they log in
as a role of their own (the server trusts local logins), and the fault is `ALTER ROLE ... SET
default_transaction_read_only = on` plus terminating that role's sessions, so every session
they open from then on is read-only. Writable again is `ALTER ROLE ... RESET` with no second
termination: the read-only sessions live on, and only a worker that drops a connection on
25006 gets a writable one. The producer (the test's App) stays writable throughout and keeps
enqueuing, so jobs pile up that no worker could start.

CI size: 3 workers x 4 slots, 300 jobs of 50-300 ms, 10 s read-only (5 leases) with 100 jobs
enqueued meanwhile; `--full`: 2,000 jobs and 60 s read-only.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from fleet import Fleet
from harness import MakeScenario
from ledger import Event, Tally, read
from psycopg import sql

from underway.stores.postgres.store import _split_url


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


class Role:
    """A login role of the scenario's own, with the rights its workers need on one schema."""

    def __init__(self, url: str) -> None:
        self.conninfo, schema = _split_url(url)
        self.schema = schema or "public"
        self.name = f"underway_f10_{uuid.uuid4().hex[:10]}"
        self.ident = sql.Identifier(self.name)

    def _run(self, *statements: sql.Composable) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def create(self) -> None:
        on = sql.Identifier(self.schema)
        database = sql.Identifier(str(psycopg.conninfo.conninfo_to_dict(self.conninfo)["dbname"]))
        self._run(
            sql.SQL("CREATE ROLE {} LOGIN").format(self.ident),
            # the workers' start runs the (already applied) migrations: CREATE SCHEMA IF NOT
            # EXISTS needs the right to create one
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(database, self.ident),
            sql.SQL("GRANT ALL ON SCHEMA {} TO {}").format(on, self.ident),
            sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA {} TO {}").format(on, self.ident),
            sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA {} TO {}").format(on, self.ident),
        )

    def url(self, url: str) -> str:
        return re.sub(r"//[^@/]*@", f"//{self.name}@", url, count=1)

    def read_only(self, on: bool) -> None:
        setting = (
            "SET default_transaction_read_only = on"
            if on
            else "RESET default_transaction_read_only"
        )
        self._run(sql.SQL("ALTER ROLE {} " + setting).format(self.ident))

    def terminate(self) -> int:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (self.name,),
            ).fetchall()
        return len(rows)

    def drop(self) -> None:
        self.terminate()
        self._run(
            sql.SQL("DROP OWNED BY {}").format(self.ident),
            sql.SQL("DROP ROLE {}").format(self.ident),
        )


@pytest.fixture
def role(database_url: str) -> Iterator[Role]:
    made = Role(database_url)
    yield made
    made.drop()


STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ (\w+) ")


def error_lines(stderr: Path, start: float, end: float) -> int:
    """Lines a worker wrote to stderr between `start` and `end` other than INFO records (a
    traceback's lines count, at the time of the record they follow)."""
    count, at, level = 0, 0.0, "INFO"
    for line in stderr.read_text(errors="replace").splitlines():
        if m := STAMP.match(line):
            at = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            level = m[2]
            if level in ("INFO", "DEBUG"):
                continue
        if start <= at <= end:
            count += 1
    return count


def test_f10_read_only_primary(role: Role, scenario: MakeScenario) -> None:
    s = scenario("F10 read-only primary")
    lease, sweep = s.settings["lease_seconds"], s.settings["heartbeat_seconds"]
    role.create()
    s.fleet = Fleet(s.fleet.tmp_path, role.url(s.url), s.ledger, s.settings)
    rng = random.Random(10)
    down = s.sizes.pick(10, 60)
    first = s.enqueue(
        "faults.probe",
        [{"seconds": rng.uniform(0.05, 0.3)} for _ in range(s.sizes.pick(300, 2000))],
    )
    workers = s.fleet.start_many(3, concurrency=4)
    assert all(s.fleet.wait_ready(w) for w in workers), s.fleet.logs()
    assert s.started(first[:20], timeout=30), s.fleet.logs()

    role.read_only(True)
    began = time.time()
    role.terminate()
    s.fault(f"workers' role read-only for {down} s (sessions terminated at its start)")
    time.sleep(1.0)  # the jobs whose outcome were being written when it began
    during = s.enqueue("faults.probe", [{"seconds": 0.05}] * s.sizes.pick(100, 500))
    time.sleep(max(0.0, began + down - time.time()))
    unstarted = {p: r for p, r in s.raw.jobs().items() if p not in Tally(read(s.ledger)).started()}
    role.read_only(False)
    writable = time.time()

    time.sleep(lease + sweep)
    now = s.raw.now()
    stuck = [r.id for r in s.raw.jobs().values()
             if r.status == "running" and (r.lease_expires_at or 0) < now]  # fmt: skip
    settled = s.settle(timeout=60)
    verdict = s.verdict(allow_duplicates="none")

    tally = Tally(read(s.ledger))
    lines = {w.incarnation: error_lines(w.stderr_path, began, writable + lease + sweep)
             for w in workers}  # fmt: skip
    window = writable + lease + sweep - began
    noisy = {w: n for w, n in lines.items() if n > window}
    spent = [p for p, r in unstarted.items() if r.attempt != 0]
    starts_of = tally.by_probe(Event.START)
    late_start = [
        p for p in during if min((e.at for e in starts_of.get(p, [])), default=writable) < writable
    ]
    resumed = min((e.at for p in during for e in starts_of.get(p, [])), default=float("inf"))
    exited = [m.incarnation for m in s.fleet.members if not m.alive]
    print(
        f"error lines {lines} in {window:.1f} s; {len(unstarted)} unstarted at attempt 0; "
        f"first start {resumed - writable:.1f} s after writable"
    )
    (
        verdict.require("no job stuck running lease + sweep after writable", not stuck,
                        f"{len(stuck)} stuck: {stuck[:3]}")
        .require("<= 1 error log line/s/worker", not noisy,
                 f"{lines} lines in {window:.1f} s")
        .require("unstarted jobs keep attempt 0", bool(unstarted) and not spent,
                 f"{len(unstarted)} unstarted, spent: {spent[:3]}")
        .require("nothing started while read-only", not late_start, f"{late_start[:3]}")
        .require("every job finished, on the same sessions' replacements", settled,
                 f"first start {resumed - writable:.1f} s after writable")
        .require("no worker exited", not exited, f"{exited}")
        .check()
    )  # fmt: skip
