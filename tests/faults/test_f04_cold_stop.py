"""F04 whole-fleet cold stop (PostgreSQL only). Catalogue: SIGKILL every process (workers,
schedulers, API) at a random point of a 10k-job run; restart after 60 s.

Pass: lost = 0; duplicated only among the jobs in flight at the kill (K); every job in flight
at the kill rescued within lease + sweep of the restart, counted from when the first restarted
worker runs (logged its start): the interpreter's own start-up on a loaded host is not
underway's. Every process here is a worker, each
with its scheduler; the producer (the test's App) is not killed: nothing is enqueued after the
kill. Not tested: missed cron slots (F18's policy), as no schedule runs here.

CI size: 1,000 jobs of U(0.02 s, 0.3 s) on 3 workers x 4 slots, killed at a random point of the
first half of the run, restarted after 3 s (longer than a lease: every lease has expired and
the restarted fleet must rescue them); `--full`: 10,000 jobs, 8 slots, 60 s down.
"""

from __future__ import annotations

import random
import re
import time
from datetime import datetime

import pytest
from fleet import Member
from harness import MakeScenario, rescue_latencies


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


@pytest.mark.parametrize("seed", [4, 40, 400])
def test_f04_whole_fleet_cold_stop(scenario: MakeScenario, seed: int) -> None:
    s = scenario("F04 whole-fleet cold stop")
    lease, sweep = s.settings["lease_seconds"], s.settings["heartbeat_seconds"]
    jobs, slots = s.sizes.pick(1000, 10_000), s.sizes.pick(4, 8)
    down = 60.0 if s.sizes.full else 3.0
    rng = random.Random(seed)
    s.enqueue("faults.probe", [{"seconds": rng.uniform(0.02, 0.3)} for _ in range(jobs)])
    workers = s.fleet.start_many(3, concurrency=slots)
    assert all(s.fleet.wait_ready(w) for w in workers), s.fleet.logs()
    # the run lasts about jobs x 0.16 s / (3 x slots); the kill lands in its first half
    time.sleep(rng.uniform(0.1, 0.5) * jobs * 0.16 / (3 * slots))
    for worker in workers:
        s.fleet.kill(worker)
    s.fault(f"SIGKILL of all 3 workers at once, restarted {down:g} s later")
    unfinished_at_kill = s.raw.unfinished()
    time.sleep(down)
    again = [s.fleet.start(w.concurrency, w.slot) for w in workers]
    ready = all(s.fleet.wait_ready(w) for w in again)
    restarted_at = min(_started_at(w) for w in again) if ready else time.time()
    settled = s.settle(timeout=60 + jobs * 0.16 / (3 * slots))

    verdict = s.verdict()
    killed_at = max(k.at for k in s.fleet.kills)
    # rescue_latencies counts from the kill; nothing can rescue before a worker is back
    latencies = {p: t + killed_at - restarted_at for p, t in rescue_latencies(s).items()}
    slow = {p[:8]: round(t, 2) for p, t in latencies.items() if t > lease + sweep}
    worst = max(latencies.values(), default=0.0)
    (
        verdict.require("the fleet came back", ready, "")
        .require("every job finished", settled, f"{unfinished_at_kill} left at the kill")
        .require("the kill hit running jobs", bool(latencies), "no job was in flight")
        .require("rescued within lease + sweep of the restart", not slow,
                 f"{len(latencies)} in flight, worst {worst:.2f} s: {slow}")
        .check()
    )  # fmt: skip


def _started_at(member: Member) -> float:
    """When the worker logged its start (faultapp's log lines carry local time)."""
    text = member.stderr_path.read_text(errors="replace")
    found = re.search(r"^(\S+ \S+) \S+ INFO worker \S+ started", text, re.MULTILINE)
    assert found, text
    return datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
