"""F05 blocked event loop and GIL-bound job thread, both stores. Catalogue: an async job that
calls `time.sleep(60)` (it blocks the worker's event loop) and a sync job in a C call that
holds the GIL for 30 s; lease 10 s.

Pass: lease renewals keep arriving (the lease never runs out, and no renewal comes more than
three heartbeats, 0.6 lease, after the one before; the catalogue's "<= 2 s" is one of its
heartbeats, 0.2 lease, which even an idle worker's heartbeat misses on this loaded machine:
a heartbeat is an interval plus its round trips, and threads holding the GIL add a wait at
each hand-over of the GIL; the looser bound is said in the report); 0 re-deliveries (no
rescue, one attempt each: the verdict with `allow_duplicates="none"`); a warning names the job
that blocked the loop, and the worker says how long it was blocked when the loop is back.

What underway promises here (docs/decisions/0025-lease-keeper.md): heartbeats run on the
worker's event loop, and a lease keeper on an OS thread of its own renews the worker's leases
whenever the loop has missed a heartbeat, so a job that blocks the loop keeps its lease. The
keeper is Python, so it needs the GIL: a C call that holds the GIL without a break stops every
thread of the process, the keeper too, and no in-process heartbeat can outlast it. A job
whose C calls hold the GIL for less than a lease at a time keeps its lease (tested here, with
`sum(range(10**7))` in a loop for several leases); a single C call holding it for more than a
lease is taken back and run again, as a frozen process is (not promised, not tested).

`loop_blocked_seconds` is a log line, not a metric: underway's metrics are read from the store
at each scrape (underway/metrics.py), and how long one process's loop stalled is not in the
store. Not here: "a job exceeding its own timeout is terminated within timeout + grace": an
async job blocked in `time.sleep` cannot be interrupted in-process; its timeout fires when the
loop is back.

CI size: 2 jobs of each kind for 3 leases (6 s) beside 40 ordinary jobs, on 2 workers x 2
slots; `--full`: the catalogue's lease (10 s), 60 s and 30 s blocks.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict

from harness import MakeScenario, Scenario, Sizes


class LeaseWatch:
    """Samples the leases of some jobs: for each, the longest wait for a renewal seen while
    it ran, and the least lease time it had left (below 0: it expired)."""

    def __init__(self, s: Scenario, probes: list[str]) -> None:
        self.s, self.probes = s, probes
        self.stale: dict[str, float] = defaultdict(float)
        self.left: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LeaseWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        lease = self.s.settings["lease_seconds"]
        while not self._stop.wait(0.05):
            now = self.s.raw.now()
            for probe, row in self.s.raw.jobs().items():
                if probe in self.probes and row.status == "running" and row.lease_expires_at:
                    renewed_at = row.lease_expires_at - lease
                    self.stale[probe] = max(self.stale[probe], now - renewed_at)
                    self.left[probe] = min(self.left.get(probe, lease), row.lease_expires_at - now)


def test_f05_blocked_loop_and_gil_keep_their_leases(scenario: MakeScenario, sizes: Sizes) -> None:
    lease = 10.0 if sizes.full else 2.0
    s = scenario("F05 blocked event loop and GIL-bound job", lease_seconds=lease,
                 heartbeat_seconds=lease / 5)  # fmt: skip
    loop_block, gil_block = (60.0, 30.0) if s.sizes.full else (3 * lease, 3 * lease)
    s.fleet.start_many(2, concurrency=2)
    for member in s.fleet.current():
        assert s.fleet.wait_ready(member), s.fleet.logs()
    blockers = s.enqueue("faults.blocks_loop", [{"seconds": loop_block}] * 2)
    gil = s.enqueue("faults.holds_gil", [{"seconds": gil_block}] * 2)
    ordinary = s.enqueue("faults.probe", [{"seconds": 0.05}] * s.sizes.pick(40, 200))
    s.fault(f"2 async jobs in time.sleep({loop_block:g}), 2 sync jobs holding the GIL in "
            f"C calls for {gil_block:g} s")  # fmt: skip
    with LeaseWatch(s, blockers + gil) as watch:
        settled = s.settle(timeout=max(loop_block, gil_block) * 2 + 30)

    verdict = s.verdict(allow_duplicates="none")
    rows = s.raw.jobs()
    heartbeat = s.settings["heartbeat_seconds"]
    again = {p: (rows[p].attempt, rows[p].rescues) for p in blockers + gil
             if (rows[p].attempt, rows[p].rescues) != (1, 0)}  # fmt: skip
    kind = {**dict.fromkeys(blockers, "loop"), **dict.fromkeys(gil, "gil")}
    late = {f"{kind[p]} {p[-12:]}": round(t, 2) for p, t in watch.stale.items()
            if t > 3 * heartbeat}  # fmt: skip
    expired = {f"{kind[p]} {p[-12:]}": round(t, 2) for p, t in watch.left.items() if t <= 0}
    logs = s.fleet.logs(tail=200_000)
    unnamed = [
        p
        for p in blockers
        if not re.search(rf"event loop is blocked.*{p}|{p}.*event loop is blocked", logs)
    ]
    told = re.findall(r"event loop was blocked for ([\d.]+) s", logs)
    (
        verdict.require("everything finished", settled, "")
        .require("no rescue, one attempt each", not again, f"{again}")
        .require("renewals at most three heartbeats apart", not late,
                 f"worst {max(watch.stale.values(), default=0):.2f} s: {late}")
        .require("no lease ran out", not expired, f"{expired}")
        .require("the blocking job is named in a warning", not unnamed, f"{unnamed}")
        .require("how long the loop was blocked is logged", bool(told), f"{told}")
        .require("the ordinary jobs all complete",
                 all(rows[p].status == "completed" for p in ordinary), "")
        .check()
    )  # fmt: skip
