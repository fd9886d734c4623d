"""F07 worker identity reuse (PostgreSQL only). Catalogue: kill a worker with jobs in flight,
start a new one with the same hostname within the lease; prune the dead worker's row early.

Pass: the old incarnation's jobs are still rescued within lease + sweep; pruning worker rows
never hides a job. Nothing lost; only the killed incarnation's jobs run again.

underway's worker id is a UUIDv7 made by each process at its start (`Worker.id`), never
configured, so a new process never takes an old id by itself: the new incarnation here has
the same host (the fleet's, on one machine) and slot, and a stand-in keeps beating the *dead*
id in the registry, as a process reusing the id would. The dead worker's row is deleted right
after the kill (an eager pruner) and then kept alive by the stand-in: whichever the registry
says, rescue goes by the jobs' leases alone.

CI size: 3 workers x 4 slots, 120 jobs of 0.5-1.5 s, 3 kills; `--full`: 600 jobs, 8 slots.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time

import psycopg
import pytest
from harness import MakeScenario, rescue_latencies
from psycopg import sql

from underway.stores.messages import WorkerBeat
from underway.stores.postgres.store import _split_url


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


def worker_id(stderr: str) -> str:
    found = re.search(r"worker ([0-9a-f]{32}) started", stderr)
    assert found, stderr
    return found[1]


def delete_worker_row(url: str, dead: str) -> None:
    conninfo, schema = _split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE id = %s").format(
                sql.Identifier(schema or "public", "underway_workers")
            ),
            (dead,),
        )


def test_f07_worker_identity_reuse(scenario: MakeScenario) -> None:
    s = scenario("F07 worker identity reuse")
    lease, sweep = s.settings["lease_seconds"], s.settings["heartbeat_seconds"]
    rng = random.Random(7)
    jobs = s.sizes.pick(120, 600)
    s.enqueue("faults.probe", [{"seconds": rng.uniform(0.5, 1.5)} for _ in range(jobs)])
    workers = s.fleet.start_many(3, concurrency=s.sizes.pick(4, 8))
    assert all(s.fleet.wait_ready(w) for w in workers), s.fleet.logs()
    stop = threading.Event()
    impostors: list[str] = []

    def stand_in() -> None:  # beats the dead ids, as a process that reused them would
        while not stop.wait(sweep):
            for dead in list(impostors):
                beat = WorkerBeat(dead, socket.gethostname(), 1, None, 4, lease)
                s.app.store.beat_worker(beat)

    beating = threading.Thread(target=stand_in, daemon=True)
    beating.start()
    try:
        for _ in range(3):
            time.sleep(1.5)
            victim = rng.choice(s.fleet.alive())
            dead = worker_id(victim.stderr_path.read_text(errors="replace"))
            s.fleet.kill(victim)
            new = s.fleet.start(victim.concurrency, victim.slot)  # same host and slot, at once
            delete_worker_row(s.url, dead)  # pruned early
            impostors.append(dead)  # then beaten again under the dead id
            assert s.fleet.wait_ready(new), s.fleet.logs()
        s.fault("3 x SIGKILL, a new worker on the same host at once, the dead row deleted "
                "and then beaten again under the dead id")  # fmt: skip
        settled = s.settle(timeout=60)
    finally:
        stop.set()
        beating.join(5)
    verdict = s.verdict()
    latencies = rescue_latencies(s)
    slow = {p: round(t, 2) for p, t in latencies.items() if t > lease + sweep}
    worst = max(latencies.values(), default=0.0)
    hidden = [p for p, r in s.raw.jobs().items() if not r.finished]
    (
        verdict.require("every job finished", settled, "")
        .require("the kills hit running jobs", bool(latencies), "no job was in flight")
        .require("rescued within lease + sweep", not slow, f"worst {worst:.2f} s: {slow}")
        .require("registry pruning hides no job", not hidden, f"{hidden[:3]}")
        .check()
    )  # fmt: skip
