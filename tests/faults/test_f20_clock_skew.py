"""F20 clock skew, PostgreSQL. Catalogue: libfaketime offsets -300 s and +300 s on workers and
schedulers, and one node drifting +2 s/min. Pass: no job starts before its `scheduled_at` in
database time; F17's invariants hold; no early lease expiry or rescue; the health endpoint
reports each node's skew against the database and warns above 1 s.

Four worker processes, each running its scheduler too: one with its clock 300 s behind, one
300 s ahead (libfaketime's FAKETIME), one drifting +2 s a minute from 0 (an offset file this
test rewrites every 0.5 s, which libfaketime reads each second), one on the true clock. Only
the wall clock is skewed: a machine's monotonic clock does not jump with NTP either. The jobs
are `clocked` probes due at random delays (set by the database's clock), working up to twice
the lease; the schedules fire every second, every 3 s and every minute, by whichever scheduler
gets there first. Each probe reads the database's clock as its body begins (its worker's own
clock would not tell), so "started before due" is measured, not assumed.

CI size: 60 s, 300 jobs due within 40 s (the drifting clock reaches +2 s); `--full` 10 min,
3,000 jobs due within 8 min (+20 s)."""

from __future__ import annotations

import glob
import itertools
import os
import random
import threading
import time
from pathlib import Path

import pytest
from harness import MakeScenario
from ledger import Event, read
from tasks_skew import EVERY

from underway import health

#: the skews of the four workers (None: the drifting one)
OFFSETS: list[float | None] = [-300.0, 300.0, None, 0.0]
DRIFT_PER_SECOND = 2.0 / 60


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("libfaketime is missing: `apt-get install faketime` (.ci/run does)")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    return found[0]


class Drift:
    """An offset file for libfaketime that gains DRIFT_PER_SECOND, rewritten every 0.5 s."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.began = time.time()
        self.path.write_text("+0\n")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def offset(self, at: float) -> float:
        return (at - self.began) * DRIFT_PER_SECOND

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(f"+{self.offset(time.time()):.3f}\n")
            tmp.replace(self.path)  # libfaketime never reads half a line

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_f20_skewed_clocks_start_nothing_early_and_lose_no_lease(
    scenario: MakeScenario, tmp_path: Path
) -> None:
    library = libfaketime()
    s = scenario("F20 clock skew")
    full = s.sizes.full
    jobs, due_within, runs_for = (3000, 480.0, 600.0) if full else (300, 40.0, 60.0)
    lease = s.settings["lease_seconds"]
    rng = random.Random(20)
    drift = Drift(tmp_path / "drift.offset")
    members = {}
    try:
        for offset in OFFSETS:
            env = {"LD_PRELOAD": library, "DONT_FAKE_MONOTONIC": "1", "FAULTS_SCHEDULES": "skew"}
            if offset is None:
                env |= {"FAKETIME_TIMESTAMP_FILE": str(drift.path), "FAKETIME_CACHE_DURATION": "1"}
            else:
                env["FAKETIME"] = f"{offset:+.0f}"
            members[s.fleet.start(concurrency=4, env=env).proc.pid] = offset
        s.fault("worker clocks at -300 s, +300 s, drifting +2 s/min, and true; each schedules")
        probes = s.enqueue(
            "faults.clocked",
            [{"seconds": rng.uniform(0.05, 2 * lease)} for _ in range(jobs)],
            batch=50,
            delays=[rng.uniform(0.0, due_within) for _ in range(jobs)],
        )
        time.sleep(max(0.0, runs_for - (time.time() - drift.began)))
        seen = {w.pid: w for w in s.app.workers()}
        checked = health.check(s.app)
        settled = s.settle(timeout=due_within + 4 * lease + 30)
    finally:
        drift.stop()

    verdict = s.verdict()
    rows = s.raw.jobs()
    due = dict(s.raw._query("SELECT id::text, extract(epoch FROM run_at) FROM {jobs}"))
    starts = [e for e in read(s.ledger) if e.event == Event.START]
    early = sorted(
        (round(due[e.probe] - float(e.detail.removeprefix("db=")), 3), e.probe)
        for e in starts
        if float(e.detail.removeprefix("db=")) < float(due[e.probe])
    )
    rescued = [r.id for r in rows.values() if r.rescues or r.attempt > 1]
    # the schedules: every slot of the every-second and every-3-s ones between the first
    # and the last fired has its one job, fired no earlier than its slot by the database
    fired = s.raw._query(
        "SELECT schedule, extract(epoch FROM slot), extract(epoch FROM created_at) FROM {jobs} "
        "WHERE schedule IS NOT NULL"
    )
    early_slots = [(name, float(slot)) for name, slot, made in fired if float(made) < float(slot)]
    gaps = {}
    for name, every in EVERY.items():
        slots = sorted(float(slot) for n, slot, _ in fired if n == name)
        missing = [a for a, b in itertools.pairwise(slots) if b - a > every * 1.5]
        gaps[name] = (len(slots), missing)
    skews = {pid: (members[pid], seen[pid].clock_skew) for pid in members if pid in seen}
    expected = {
        pid: drift.offset(seen[pid].last_beat_at.timestamp()) if offset is None else offset
        for pid, (offset, _) in skews.items()
    }
    off = {pid: (expected[pid], got) for pid, (_, got) in skews.items()
           if got is None or abs(got - expected[pid]) > 0.5}  # fmt: skip
    warned = " ".join(checked.warnings)
    named = {pid: f"(pid {pid})" in warned for pid in members}
    should = {pid: abs(expected.get(pid, 0.0)) > 1.0 for pid in members}
    (
        verdict.require("settled", settled, f"{s.raw.unfinished()} unfinished")
        .require("every probe started", len({e.probe for e in starts}) == len(probes), "")
        .require("no job started before it was due (database clock)", not early, f"{early[:5]}")
        .require("no rescue, one attempt each", not rescued, f"{rescued[:5]}")
        .require("every worker listed", len(skews) == len(members), f"{sorted(seen)}")
        .require("each worker's skew measured within 0.5 s", not off, f"{off}")
        .require("health warns of exactly the skewed workers", named == should, warned[:300])
        .require("health still ok", checked.ok, f"{checked.reasons}")
        .require("no schedule fired before its slot", not early_slots, f"{early_slots[:5]}")
        .require(
            "no slot missing between the first and the last",
            all(n > 10 and not missing for n, missing in gaps.values()),
            f"{gaps}",
        )
        .check()
    )
