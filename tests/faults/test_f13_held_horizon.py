"""F13 long transaction holding the xmin horizon, PostgreSQL. Catalogue: 800 enqueues/s, 4
workers, 10 min baseline; a REPEATABLE READ transaction holds its snapshot for 30 min. Pass:
throughput >= 80 % of the baseline, claim p99 <= 50 ms; the health check warns "xmin horizon
held by pid N for > 5 min" within 5 min; `n_dead_tup` back under 2x the baseline within 10 min
after the transaction ends.

A producer enqueues at a steady rate in batches, four worker processes run the jobs (no-op
probes). After the baseline a session opens a REPEATABLE READ transaction and reads the job
table, so its snapshot holds the horizon: no row that dies meanwhile can be vacuumed. Claim
latency is each job's pickup (due to started, by the database's clock), which holds the claim
statement and more. The health check (`underway.health.check`, what `GET /health` answers)
is asked every second with the scenario's threshold. The server runs with autovacuum on (its
default; this machine's server has it off) at a 1 s naptime, scaled like the rest: dead rows
are then vacuumed within seconds whenever the horizon lets them go. Baseline dead rows = the
most the baseline saw (autovacuum keeps them at its threshold).

CI size: 200 enqueues/s, 15 s baseline, 30 s hold, warning threshold 10 s, recovery within
30 s. `--full`: 800/s, 10 min baseline, 30 min hold, 5 min threshold, 10 min recovery, with
autovacuum's default 1 min naptime."""

from __future__ import annotations

import statistics
import threading
import time

import psycopg
import pytest
from harness import MakeScenario, Scenario
from postgres_server import configured, dead_rows
from psycopg import sql

from underway import health
from underway.stores.postgres.store import _split_url


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


class Producer:
    """Enqueues `rate` probes a second, in batches of a tenth of a second, until stopped."""

    def __init__(self, s: Scenario, rate: int) -> None:
        self.s, self.batch = s, max(1, rate // 10)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.s.enqueue("faults.probe", [{}] * self.batch, batch=self.batch)
            next_at += 0.1
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def window(s: Scenario, since: float, until: float) -> tuple[float, list[float]]:
    """Jobs completed per second in [since, until) (database clock), and the pickups (ms) of
    the jobs started in it."""
    rows = s.raw._query(
        "SELECT extract(epoch FROM completed_at), "
        "extract(epoch FROM started_at - run_at) * 1000 FROM {jobs} "
        f"WHERE started_at >= to_timestamp({since}) AND started_at < to_timestamp({until})"
    )
    done = sum(1 for c, _ in rows if c is not None and since <= float(c) < until)
    return done / (until - since), [float(p) for _, p in rows]


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else 0.0


def test_f13_a_held_horizon_slows_nothing_and_health_names_it(scenario: MakeScenario) -> None:
    s = scenario("F13 long transaction holding the xmin horizon")
    full = s.sizes.full
    rate = s.sizes.pick(200, 800)
    baseline_s, hold_s, threshold, recover_s = (
        (600.0, 1800.0, 300.0, 600.0) if full else (15.0, 30.0, 10.0, 30.0)
    )
    naptime = "1min" if full else "1s"
    conninfo, schema = _split_url(s.url)
    jobs = sql.Identifier(schema or "public", "underway_jobs")
    with configured(s.url, autovacuum="on", autovacuum_naptime=naptime):
        for worker in s.fleet.start_many(4, concurrency=8):
            assert s.fleet.wait_ready(worker), s.fleet.logs()
        producer = Producer(s, rate)
        try:
            time.sleep(2.0)  # past the start: the baseline is the steady state
            base_from = s.raw.now()
            baseline_dead = 0
            while s.raw.now() < base_from + baseline_s:
                baseline_dead = max(baseline_dead, dead_rows(s.url))
                time.sleep(0.5)
            base_until = s.raw.now()
            with psycopg.connect(conninfo, application_name="f13 report") as holder:
                holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                holder.execute(sql.SQL("SELECT count(*) FROM {}").format(jobs)).fetchall()
                pid, held_from = holder.info.backend_pid, s.raw.now()
                s.fault(f"REPEATABLE READ snapshot held {hold_s:g} s at {rate}/s enqueued")
                warned_after: float | None = None
                while s.raw.now() < held_from + hold_s:
                    found = health.check(s.app, horizon=threshold)
                    named = any(f"pid {pid} for" in w for w in found.warnings)
                    if named and warned_after is None:
                        warned_after = s.raw.now() - held_from
                    time.sleep(1.0)
                held_dead = dead_rows(s.url)
                held_until = s.raw.now()
                holder.rollback()
            recovered_after: float | None = None
            while s.raw.now() < held_until + recover_s:
                if dead_rows(s.url) < 2 * max(baseline_dead, 1):
                    recovered_after = s.raw.now() - held_until
                    break
                time.sleep(0.5)
            after = health.check(s.app, horizon=threshold)
        finally:
            producer.stop()
        settled = s.settle(timeout=60)

    verdict = s.verdict()
    base_rate, base_pickups = window(s, base_from, base_until)
    held_rate, held_pickups = window(s, held_from + 2.0, held_until)  # past the first claim
    ratio = held_rate / base_rate if base_rate else 0.0
    (
        verdict.require("settled", settled, f"{s.raw.unfinished()} unfinished")
        .require(
            "throughput >= 80% of the baseline",
            ratio >= 0.8,
            f"{held_rate:.0f} vs {base_rate:.0f} jobs/s ({ratio:.0%})",
        )
        .require(
            "claim (pickup) p99 <= 50 ms while held",
            p99(held_pickups) <= 50.0,
            f"p99 {p99(held_pickups):.1f} ms held, {p99(base_pickups):.1f} ms baseline",
        )
        .require(
            "health names the holder within 5 s of the threshold",
            warned_after is not None and warned_after <= threshold + 5.0,
            f"after {warned_after} s (threshold {threshold:g} s)",
        )
        .require(
            "the hold kept dead rows (the fault took)",
            held_dead > 2 * max(baseline_dead, 1),
            f"{held_dead} dead rows held vs {baseline_dead} in the baseline",
        )
        .require(
            "dead rows back under 2x the baseline",
            recovered_after is not None,
            f"after {recovered_after} s (within {recover_s:g} s); baseline {baseline_dead}",
        )
        .require(
            "no warning once it ended",
            not any(f"pid {pid} for" in w for w in after.warnings),
            f"{after.warnings}",
        )
        .check()
    )
