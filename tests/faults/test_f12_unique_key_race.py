"""F12 unique-key race, both stores. Catalogue: 64 concurrent clients on 2 app nodes
(PostgreSQL) or 8 processes (SQLite) enqueue under the same unique key 1,000 times each while
workers complete the jobs.

Pass: at most one job per key in the unique states (pending, running) at any moment, by the
database's own constraint and by sampling; a duplicate returns the existing job, never an
error; deadlocks and serialization failures are retried inside, never shown to callers.

How: each app node is a process of its own (f12_client.py) with its own App and pool; its
threads enqueue under one of three keys at random, each call with an id chosen by the client,
so a call that returned its own id created the job and any other id is the existing one. Two
workers complete the jobs (up to 20 ms each), so keys keep coming free and being taken again.
This process samples the unique states all along. CI: each client stops after 8 s (or 1,000
calls); `--full`: 1,000 calls each, however long they take.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from harness import MakeScenario, Scenario
from ledger import Outcome

HERE = Path(__file__).resolve().parent
KEYS = ["f12:a", "f12:b", "f12:c"]


def unique_index(s: Scenario) -> bool:
    """The database holds a unique index over the key of unfinished jobs."""
    if s.raw.is_postgres:
        rows = s.raw._query("SELECT indexdef FROM pg_indexes WHERE indexname = 'underway_jobs_key'")
    else:
        rows = s.raw._query("SELECT sql FROM sqlite_master WHERE name = 'underway_jobs_key'")
    text = " ".join(str(r[0]) for r in rows).lower()
    return "unique" in text and "pending" in text and "running" in text


def doubled_keys(s: Scenario) -> list[tuple[str, int]]:
    """Keys held by more than one unfinished job right now."""
    rows = s.raw._query(
        "SELECT key, count(*) FROM {jobs} WHERE key IS NOT NULL AND status IN "
        "('pending', 'running') GROUP BY key HAVING count(*) > 1"
    )
    return [(str(k), int(n)) for k, n in rows]


def test_f12_unique_key_race(scenario: MakeScenario, tmp_path: Path) -> None:
    s = scenario("F12 unique-key race")
    nodes, threads = (2, 32) if s.store == "postgresql" else (8, 8)
    calls, seconds = (1000, 3600.0) if s.sizes.full else (1000, 8.0)
    workers = s.fleet.start_many(2, concurrency=4)
    assert all(s.fleet.wait_ready(w) for w in workers), s.fleet.logs()
    results = tmp_path / "f12.log"
    results.touch()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("UNDERWAY_")},
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1] / "src"),
                                       os.environ.get("PYTHONPATH", "")]),
    }  # fmt: skip
    stop, samples, doubled = threading.Event(), [0], []

    def sample() -> None:
        while not stop.wait(0.01):
            doubled.extend(doubled_keys(s))
            samples[0] += 1

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "f12_client.py"),
                s.url,
                str(threads),
                str(calls),
                str(seconds),
                ",".join(KEYS),
                str(results),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(nodes)
    ]
    exits = [c.wait(timeout=seconds + 120) for c in clients]
    stop.set()
    sampler.join(5)
    s.fault(f"{nodes} app nodes x {threads} threads enqueueing under {len(KEYS)} unique keys")
    rows = s.raw.jobs()
    created, existing, errors = [], [], []
    for line in results.read_text().splitlines():
        key, chosen, returned, *_rest = line.split(" ", 3)
        if returned == "error":
            errors.append(line)
        elif returned == chosen:
            created.append((key, chosen))
        else:
            existing.append((key, returned))
    for _, job_id in created:
        s.client.record(job_id, Outcome.OK)  # each must finish: lost = 0
    settled = s.settle(timeout=60)

    verdict = s.verdict(allow_duplicates="none")
    wrong = [(k, j) for k, j in existing if j not in rows or rows[j].task != "faults.probe"]
    keyed = Counter(k for k, _ in created)
    stderr = [c.stderr.read().decode()[-2000:] for c in clients if c.stderr]
    (
        verdict.require("every client exited cleanly", exits == [0] * nodes,
                        f"{exits}: {stderr}")
        .require("every job finished", settled, "")
        .require("the database's unique index holds", unique_index(s), "")
        .require("at most one unfinished job per key, sampled", not doubled and samples[0] > 10,
                 f"{samples[0]} samples; doubled {doubled[:5]}")
        .require("duplicates returned the existing job", bool(existing) and not wrong,
                 f"{len(existing)} duplicates, {len(wrong)} unknown ids {wrong[:3]}")
        .require("no caller saw an error", not errors, f"{len(errors)}: {errors[:3]}")
        .require("keys came free and were taken again", all(keyed[k] > 1 for k in KEYS),
                 f"{dict(keyed)} created of {len(created) + len(existing) + len(errors)} calls")
        .check()
    )  # fmt: skip
