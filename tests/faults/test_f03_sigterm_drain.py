"""F03 graceful SIGTERM drain, both stores. Catalogue: 400 jobs of 1-5 s and 100 cooperative
jobs of 120 s that look for a cancel every second; grace 30 s; SIGTERM to every worker at
t = 10 s.

Pass: 0 claims after the signal; every short job succeeds (those running at the signal finish
in that attempt, within the grace); the long jobs see the stop within 1 s of the grace's end
and are handed back by the exiting process itself (not by a rescue) within grace + 5 s,
without spending an attempt; exit code 0; a second SIGTERM makes a worker exit at once, and
what it ran is back in the queue within lease + sweep. Nothing lost, nothing run twice.

CI size: 3 workers x 4 slots, 80 short jobs of U(0.2 s, 1 s), 6 long jobs of 60 s that look
every 0.05 s, grace 2 s, SIGTERM 1 s after every long job started; `--full` runs 400 + 100
jobs on 3 x 40 slots."""

from __future__ import annotations

import random
import time

from harness import MakeScenario
from ledger import Event, Tally, read


def test_f03_sigterm_drains_then_hands_back(scenario: MakeScenario) -> None:
    s = scenario("F03 graceful SIGTERM drain")
    grace, lease = s.settings["shutdown_grace_seconds"], s.settings["lease_seconds"]
    sweep = s.settings["heartbeat_seconds"]
    rng = random.Random(3)
    long_jobs = set(s.enqueue("faults.probe", [{"seconds": 60.0}] * s.sizes.pick(6, 100)))
    shorts = [{"seconds": rng.uniform(0.2, 1.0)} for _ in range(s.sizes.pick(80, 400))]
    short_jobs = set(s.enqueue("faults.probe", shorts))
    workers = s.fleet.start_many(3, concurrency=s.sizes.pick(4, 40))
    assert s.started(long_jobs, timeout=30), s.fleet.logs()
    time.sleep(1.0)  # short jobs under way beside them
    signalled = time.time()
    for worker in workers:
        s.fleet.terminate(worker)
    s.fault(f"SIGTERM to all {len(workers)} workers mid-run, grace {grace:g} s")
    codes = [s.fleet.wait_exit(w, timeout=grace + 5) for w in workers]
    exited = time.time()

    # What the first stop did, before anything else runs.
    rows = s.raw.jobs()
    tally = Tally(read(s.ledger))
    starts = tally.by_probe(Event.START)
    ended = {e.probe for e in tally.entries if e.event is Event.END}
    stops = tally.by_probe(Event.STOPPED)
    late_claims = [p for p, es in starts.items() if any(e.at > signalled for e in es)]
    short_cut = [p for p in short_jobs if p in starts and p not in ended]
    long_running = {p for p in long_jobs if p in starts}
    slow_stop = [p for p in long_running
                 if not stops.get(p) or stops[p][0].at > signalled + grace + 1.0]  # fmt: skip
    not_handed_back = [p for p in long_running if rows[p].status != "pending"
                       or rows[p].rescues or rows[p].attempt]  # fmt: skip

    # A second SIGTERM: out at once, its jobs back in the queue.
    second = s.fleet.start(concurrency=4)
    assert s.fleet.wait_ready(second), s.fleet.logs()
    time.sleep(0.5)  # jobs claimed
    s.fleet.terminate(second)  # the first of two
    time.sleep(0.5)
    twice = time.time()
    second.proc.send_signal(15)
    second_code = s.fleet.wait_exit(second, timeout=5)
    out_after = time.time() - twice
    back = s.none_running(timeout=lease + sweep)

    s.fleet.start_many(3, concurrency=s.sizes.pick(4, 40))  # finish the rest, short and long
    for p in long_jobs:
        s.app.cancel(p)  # a minute each is not worth waiting for: a cancel ends them
    settled = s.settle(timeout=60)
    verdict = s.verdict(allow_duplicates="none")
    final = s.raw.jobs()
    failed_short = [p for p in short_jobs if final[p].status != "completed"]
    (
        verdict.require("no claim after the signal", not late_claims, f"{late_claims[:3]}")
        .require("exit code 0 within grace + 5 s", codes == [0] * len(workers), f"{codes}")
        .require("short jobs running at the signal finish", not short_cut, f"{short_cut[:3]}")
        .require("long jobs were running at the signal", bool(long_running), "none started")
        .require("long jobs stop within 1 s of the grace", not slow_stop, f"{slow_stop[:3]}")
        .require("handed back by the exiting worker, attempt refunded", not not_handed_back,
                 f"{[(p, rows[p].status, rows[p].rescues) for p in not_handed_back[:3]]}")
        .require("a second SIGTERM exits at once", second_code == 0 and out_after < 1.0,
                 f"code {second_code} after {out_after:.2f} s")
        .require("its jobs back within lease + sweep", back, "")
        .require("every short job succeeds", settled and not failed_short, f"{failed_short[:3]}")
        .require("the first stop took at most grace + 5 s", exited - signalled <= grace + 5, "")
        .check()
    )  # fmt: skip
