"""F01 SIGKILL mid-job, both stores. Catalogue: 4 worker processes x 8 slots, 1,000 jobs of
U(0.2 s, 5 s), SIGKILL a random worker every 15 s (5 kills), a supervisor restarts it.

Pass: lost = 0, unexpected = 0; every job finished within (longest job + lease + sweep + 30 s)
of the last kill; duplicated only among the jobs a killed incarnation was running (K); each
rescue adds exactly one attempt; each rescue within lease + sweep of the kill; I1-I5 hold.

CI size: 4 x 4 slots, 200 jobs of U(0.05 s, 1 s), a kill every 2 s (5 kills); `--full` runs
the catalogue's sizes. Timings are the harness's (lease 2 s, sweep 0.4 s)."""

from __future__ import annotations

import random
import time

from harness import MakeScenario


def test_f01_sigkill_mid_job(scenario: MakeScenario) -> None:
    s = scenario("F01 SIGKILL mid-job")
    full = s.sizes.full
    jobs, slots = s.sizes.pick(200, 1000), s.sizes.pick(4, 8)
    longest, every, kills = (5.0, 15.0, 5) if full else (1.0, 2.0, 5)
    rng = random.Random(1)
    s.enqueue("faults.probe", [{"seconds": rng.uniform(longest / 25, longest)}
                               for _ in range(jobs)])  # fmt: skip
    s.fleet.start_many(4, concurrency=slots)
    s.fleet.supervise()
    for _ in range(kills):
        time.sleep(every)
        victim = rng.choice(s.fleet.alive())
        s.fleet.kill(victim)
    s.fault(f"{kills} x SIGKILL of a random worker, one every {every:g} s, each restarted")
    lease, sweep = s.settings["lease_seconds"], s.settings["heartbeat_seconds"]
    bound = longest + lease + sweep + 30
    settled = s.settle(timeout=bound)

    verdict = s.verdict()
    rows = s.raw.jobs()
    extra_attempts = [r.id for r in rows.values()
                      if r.status == "completed" and r.attempt != 1 + r.rescues]  # fmt: skip
    from harness import rescue_latencies

    latencies = rescue_latencies(s)
    slow = {p: round(t, 2) for p, t in latencies.items() if t > lease + sweep}
    worst = max(latencies.values(), default=0.0)
    (
        verdict.require("finished within the bound", settled, f"{bound:g} s after the last kill")
        .require("one attempt per rescue", not extra_attempts, f"{extra_attempts[:5]}")
        .require("rescue within lease + sweep", not slow, f"worst {worst:.2f} s: {slow}")
        .require("the kills hit running jobs", bool(latencies), "no job was in flight")
        .check()
    )
