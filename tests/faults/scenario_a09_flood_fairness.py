"""A09 flooding and fairness, both stores. Catalogue: tenant A enqueues 10k/s for 60 s, tenant
B 10/s. Pass: A gets 429 above its quota; B's enqueue p99 and start-latency p99 stay under 2x
baseline; the DB connection pool is never exhausted.

Everything goes through the HTTP API served by `underway serve` in a process of its own, with
two worker processes. Phases:

1. baseline: B alone, 10 jobs/s, idle workers;
2. flood (the catalogue's): A's flood (its own process, never backing off) at `RATE`
   requests/s over a quota of `QUOTA` jobs/s, while B goes on at 10 jobs/s and the workers run
   what A's quota let in;
3. fairness (beyond the catalogue, which does not say what A has waiting): a backlog of A's
   jobs, put at once beyond any quota, keeps every worker slot busy while B goes on at 10
   jobs/s until the backlog has started. Claimed by priority and age alone, B's jobs would
   wait behind all of it.

Checks: A's taken jobs stay within the quota (burst + rate x elapsed + 1) and every refusal is
a 429 with Retry-After; B is never refused and its p99s during the flood stay under 2x the
baseline's; no request of either gets a 5xx or an error; on PostgreSQL the connections in use
stay below max_connections; beside the backlog, B's start-latency p99 stays under a tenth of
the time the backlog took to start (it would be about all of it without fair claiming), and
the share each tenant got of the starts meanwhile is reported.

CI size: A at 1,000 requests/s for 10 s, a backlog of 3,000 jobs; `--full` 10,000/s for 60 s,
a backlog of 20,000.

Out of the default run (the file is not named test_*), because it does not pass reliably yet
on the 2-core machine CI runs on, where the flooding client, the server, the workers and the
database share two cores: the quota holds, no request errs, and B is not starved by A's
backlog, but B's p99s during the flood go past 2x their baselines (always on PostgreSQL, in
some runs on SQLite); docs/reliability.md has the numbers. Run it with

    ./run test -s tests/faults/scenario_a09_flood_fairness.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faultapp
import httpx
import pytest
from abuse import free_port
from harness import MakeScenario, Scenario
from ledger import Outcome

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
QUOTA = 50.0  # A's (and every tenant's) jobs/s; the burst is as many
WORKERS, SLOTS = 2, 8
JOB = {"seconds": 0.01}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def p99(values: list[float]) -> float:
    return max(values) if len(values) < 100 else statistics.quantiles(values, n=100)[98]


@contextmanager
def api_server(s: Scenario) -> Iterator[str]:
    """`underway serve faultapp:app` on a loopback port, with the scenario's settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")}
    env.update({f"UNDERWAY_{name.upper()}": str(value) for name, value in s.settings.items()})
    env["UNDERWAY_DATABASE_URL"] = s.url
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(SRC), env.get("PYTHONPATH")) if p
    )
    log = (s.fleet.tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "underway", "serve", "faultapp:app", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, cwd=HERE, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(30)
        log.close()


class Steady:
    """B: one job every 0.1 s over HTTP, each request's latency and answer recorded."""

    def __init__(self, url: str, key: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                   timeout=30.0)  # fmt: skip
        self.latencies: list[float] = []
        self.jobs: list[str] = []
        self.failures: list[str] = []

    def run(self, seconds: float, rate: float = 10.0) -> list[str]:
        """Enqueue for `seconds`; the ids taken in this run."""
        mine: list[str] = []
        start = time.monotonic()
        for index in range(int(seconds * rate)):
            if (wait := start + index / rate - time.monotonic()) > 0:
                time.sleep(wait)
            job = str(uuid.uuid4())
            sent = time.perf_counter()
            try:
                answer = self.client.post("/api/v1/jobs", json={"task": "faults.probe",
                                                               "args": JOB, "id": job})  # fmt: skip
            except httpx.HTTPError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            self.latencies.append(time.perf_counter() - sent)
            if answer.status_code == 201:
                mine.append(job)
            else:
                self.failures.append(f"{answer.status_code} {answer.text[:200]}")
        self.jobs += mine
        return mine


def start_latencies(s: Scenario, ids: list[str]) -> list[float]:
    out = []
    for job_id in ids:
        job = s.app.get_job(job_id)
        if job is not None and job.started_at is not None:
            out.append((job.started_at - job.created_at).total_seconds())
    return out


def connections_in_use(s: Scenario, stop: threading.Event, peak: list[int]) -> None:
    """PostgreSQL: sample the server's connections until `stop`; the most seen goes to peak."""
    import psycopg

    base = s.url.split("?")[0]
    with psycopg.connect(base, autocommit=True) as conn:
        while not stop.wait(0.2):
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                               "'client backend'").fetchone()  # fmt: skip
            peak[0] = max(peak[0], int(row[0]) if row else 0)


def max_connections(s: Scenario) -> int:
    import psycopg

    with psycopg.connect(s.url.split("?")[0], autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        ).fetchone()
    return int(row[0]) if row else 0


def test_a09_a_flood_is_throttled_and_the_other_tenant_keeps_its_latency(
    scenario: MakeScenario,
) -> None:
    s = scenario("A09 flooding and fairness", tenant_enqueue_rate=QUOTA)
    full = s.sizes.full
    rate, seconds = (10_000.0, 60.0) if full else (1_000.0, 10.0)
    backlog = s.sizes.pick(3_000, 20_000)
    _, a_key = s.app.create_key(name="flooder", tenant="acme")
    _, b_key = s.app.create_key(name="steady", tenant="globex")
    s.fleet.start_many(WORKERS, concurrency=SLOTS)
    assert all(s.fleet.wait_ready(m) for m in s.fleet.members)
    with api_server(s) as url:
        b = Steady(url, b_key)
        b.run(1.0)  # warm up: connections, prepared statements
        baseline = b.run(5.0)
        baseline_enqueue = p99(b.latencies[-len(baseline) :])
        time.sleep(0.5)  # the baseline's last jobs start
        baseline_start = p99(start_latencies(s, baseline))

        # 1. the catalogue's flood: A over its quota, B at 10 jobs/s
        peak, stop = [0], threading.Event()
        sampler = None
        if s.store == "postgresql":
            sampler = threading.Thread(target=connections_in_use, args=(s, stop, peak))
            sampler.start()
        flood = subprocess.Popen(
            [sys.executable, str(HERE / "a09_flood.py"), url, a_key, str(rate), str(seconds),
             "32", json.dumps(JOB)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        s.fault(f"tenant A floods {rate:g} requests/s for {seconds:g} s over a {QUOTA:g}/s "
                f"quota; then a backlog of {backlog} of A's jobs")  # fmt: skip
        during = b.run(seconds)
        out, err = flood.communicate(timeout=seconds + 120)
        stop.set()
        if sampler is not None:
            sampler.join()
        assert flood.returncode == 0, err.decode()[-2000:]
        a = json.loads(out)
        for job in a["taken"]:
            s.client.record(job, Outcome.OK)
        for job in a["refused"]:
            s.client.record(job, Outcome.ERROR)
        for job in a["unknown"]:
            s.client.record(job, Outcome.UNKNOWN)
        flood_enqueue = p99(b.latencies[-len(during) :]) if during else float("inf")
        time.sleep(0.5)
        flood_start = p99(start_latencies(s, during)) if during else float("inf")

        # 2. fairness: A's backlog (put beyond any quota, by an unmetered app on the same
        # store) keeps every worker slot busy while B goes on at 10 jobs/s
        loader = faultapp.make_app(s.url, **{k: v for k, v in s.settings.items()
                                              if not k.startswith("tenant_")})  # fmt: skip
        probes = [str(uuid.uuid4()) for _ in range(backlog)]
        task = loader.tasks["faults.probe"]
        put = time.time()
        task.enqueue_many([task.options(id=p, tenant="acme").prepare(**JOB) for p in probes])
        loader.close()
        for p in probes:
            s.client.record(p, Outcome.OK)
        beside: list[str] = []
        while not _all_started(s) and time.time() - put < backlog / 10 + 60:
            beside += b.run(1.0)
        drained = time.time()
        for job in b.jobs:
            s.client.record(job, Outcome.OK)
        settled = s.settle(timeout=120)

    allowed = QUOTA + QUOTA * a["seconds"] + 1
    rows = s.raw.jobs()
    started = [r for r in rows.values() if r.tenant in ("acme", "globex")]
    in_window = _starts_in(s, started, put, drained)
    share = {t: n / max(1, sum(in_window.values())) for t, n in in_window.items()}
    beside_start = p99(start_latencies(s, beside)) if beside else float("inf")
    drain = drained - put
    verdict = s.verdict(allow_duplicates="none")
    (
        verdict.require("A gets 429 above its quota", len(a["refused"]) > 0
                        and len(a["taken"]) <= allowed and a["bare_429"] == 0,
                        f"A: {len(a['taken'])} taken (quota allows {allowed:.0f} in "
                        f"{a['seconds']:.1f} s), {len(a['refused'])} refused with 429, "
                        f"{a['bare_429']} 429s without Retry-After")
        .require("no request errs (5xx, lost connection) for A or B",
                 not a["unknown"] and not b.failures,
                 f"A: {a['others']}; B: {b.failures[:3]}")
        .require("B's enqueue p99 < 2x baseline", flood_enqueue < 2 * baseline_enqueue,
                 f"{flood_enqueue * 1000:.1f} ms vs baseline {baseline_enqueue * 1000:.1f} ms")
        .require("B's start-latency p99 < 2x baseline", flood_start < 2 * baseline_start,
                 f"{flood_start * 1000:.1f} ms vs baseline {baseline_start * 1000:.1f} ms")
        .require("B is not starved by A's backlog: its start p99 < 10% of the drain",
                 beside_start < 0.1 * drain,
                 f"{beside_start * 1000:.1f} ms while {backlog} jobs of A drained in "
                 f"{drain:.1f} s; share of starts: "
                 + ", ".join(f"{t} {v:.1%}" for t, v in sorted(share.items())))
        .require("all jobs finish", settled, f"{s.raw.unfinished()} unfinished")
    )  # fmt: skip
    if s.store == "postgresql":
        limit = max_connections(s)
        verdict.require("connections stay below max_connections", peak[0] < limit,
                        f"peak {peak[0]} of {limit}")  # fmt: skip
    for name, (ok, detail) in verdict.checks.items():  # the measurements, also when passed
        print(f"A09 [{s.store}] {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    verdict.check()


def _all_started(s: Scenario) -> bool:
    """Whether A's jobs have all started (none is pending)."""
    return s.app.stats(tenant="acme").by_status.get("pending", 0) == 0


def _starts_in(s: Scenario, rows: list[Any], since: float, until: float) -> dict[str, int]:
    """Jobs started between `since` and `until` (the ledger's start lines), by tenant."""
    from ledger import Event, Tally, read

    tenant = {r.id: r.tenant for r in rows}
    counts: dict[str, int] = {}
    for probe, entries in Tally(read(s.ledger)).by_probe(Event.START).items():
        if probe in tenant and since <= entries[0].at <= until:
            counts[tenant[probe]] = counts.get(tenant[probe], 0) + 1
    return counts
