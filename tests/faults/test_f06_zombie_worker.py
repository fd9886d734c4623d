"""F06 partitioned zombie worker, fencing (PostgreSQL only). Catalogue: one worker's database
traffic is dropped for 3 x lease while its long job keeps running; then the network heals.

Pass: the job is leased again elsewhere within lease + sweep; after healing, the zombie's
heartbeat and completion writes change nothing (its lease token is stale), it stops its copy of
the job within one heartbeat and logs that its lease was lost; the store records exactly one
completion per job; ledger effects <= 2 (the zombie's duplicate at most).

How: the zombie reaches PostgreSQL through a proxy in this process (tests/pgproxy.py), two
healthy workers and the test's App connect directly. The zombie claims two jobs: a cooperative
probe that outlasts the partition (it must see the lost lease and stop), and a stubborn job that
ends during the partition (its completion waits in the proxy and must land on a stale lease).
The partition holds bytes back rather than swallowing them, as an iptables DROP does: TCP
resends them once the route heals, so the zombie's writes from before the heal do reach the
server afterwards. Every connection of the zombie is cut, new ones included. CI: 3 x lease
(6 s) at the harness's lease of 2 s; `--full` holds 3 x a 10 s lease.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from faultapp import STEP
from harness import MakeScenario, Scenario, Sizes
from ledger import Event, Tally, read

from pgproxy import Proxy
from underway.model import Change
from underway.stores.messages import ChangeFilter


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


def worker_id(stderr: str) -> str:
    found = re.search(r"worker ([0-9a-f]{32}) started", stderr)
    assert found, stderr
    return found[1]


def test_f06_partitioned_zombie_is_fenced(
    scenario: MakeScenario, proxy: Proxy, sizes: Sizes
) -> None:
    full = {"lease_seconds": 10.0, "heartbeat_seconds": 2.0} if sizes.full else {}
    s = scenario("F06 partitioned zombie worker", **full)
    lease, beat = s.settings["lease_seconds"], s.settings["heartbeat_seconds"]
    cut = 3 * lease
    direct = s.fleet.url
    s.fleet.url = proxy.url(direct)
    zombie = s.fleet.start(concurrency=2)
    s.fleet.url = direct
    assert s.fleet.wait_ready(zombie), s.fleet.logs()
    (long,) = s.enqueue("faults.probe", [{"seconds": cut + 4 * lease}])
    (stubborn,) = s.enqueue("faults.stubborn", [{"seconds": cut / 2}])
    assert s.started([long, stubborn], timeout=15), s.fleet.logs()
    healthy = s.fleet.start_many(2, concurrency=2)
    assert all(s.fleet.wait_ready(w) for w in healthy), s.fleet.logs()

    time.sleep(beat)  # the healthy workers are sweeping
    proxy.partition()
    cut_at = time.time()
    time.sleep(cut)
    proxy.heal()
    healed_at = time.time()
    s.fault(f"every byte of one worker's connections held back for {cut:g} s (3 x lease)")
    stopped_in = _zombie_stop(s, long, zombie.incarnation, timeout=5 + 2 * beat)
    settled = s.settle(timeout=cut + 8 * lease + 30)

    verdict = s.verdict(partitioned=frozenset({zombie.incarnation}))
    rows = s.raw.jobs()
    effects = Tally(read(s.ledger)).effects()
    zombie_id = worker_id(zombie.stderr_path.read_text(errors="replace"))
    releases = _released_at(s, {long, stubborn})
    late = {p[:8]: round(t - cut_at, 2) for p, t in releases.items()
            if t - cut_at > lease + beat}  # fmt: skip
    elsewhere = {p for p in (long, stubborn)
                 if any(e.incarnation != zombie.incarnation
                        for e in Tally(read(s.ledger)).by_probe(Event.START)[p])}  # fmt: skip
    zombie_attempts = {p: [a for a in s.app.attempts(p) if a.worker_id == zombie_id]
                       for p in (long, stubborn)}  # fmt: skip
    fenced = {
        p: [(a.outcome, a.ended_at.timestamp() if a.ended_at else None) for a in attempts]
        for p, attempts in zombie_attempts.items()
        if [a.outcome for a in attempts] != ["rescued"]
        or attempts[0].ended_at is None or attempts[0].ended_at.timestamp() > healed_at
    }  # fmt: skip
    by_zombie = [p for p in (long, stubborn) if isinstance(rows[p].result, dict)
                 and rows[p].result.get("incarnation") == zombie.incarnation]  # fmt: skip
    completions = _completions(s)
    logs = zombie.stderr_path.read_text(errors="replace")
    (
        verdict.require("every job finished", settled, "")
        .require("re-leased elsewhere within lease + sweep", not late and len(releases) == 2
                 and elsewhere == {long, stubborn}, f"{late}; rescued {len(releases)} of 2")
        .require("the zombie's writes after healing changed nothing", not fenced and not by_zombie,
                 f"zombie attempts {fenced}; results written by the zombie {by_zombie}")
        .require("the zombie stopped its copy within one heartbeat of healing",
                 stopped_in is not None and stopped_in - healed_at <= beat + STEP,
                 f"{None if stopped_in is None else round(stopped_in - healed_at, 2)} s")
        .require("the zombie logged its lost leases",
                 "its lease was taken back by another worker" in logs
                 and "discarded: the lease was lost" in logs, "")
        .require("exactly one completion per job",
                 all(completions[p] == 1 and rows[p].status == "completed"
                     for p in (long, stubborn)), f"{dict(completions)}")
        .require("ledger effects <= 2", all(effects.get(p, 0) <= 2 for p in (long, stubborn)),
                 f"long {effects.get(long, 0)}, stubborn {effects.get(stubborn, 0)}")
        .check()
    )  # fmt: skip


def _zombie_stop(s: Scenario, probe: str, incarnation: str, timeout: float) -> float | None:
    """When the zombie's copy of `probe` wrote `stopped` to the ledger, waiting up to
    `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in Tally(read(s.ledger)).by_probe(Event.STOPPED).get(probe, []):
            if e.incarnation == incarnation:
                return e.at
        time.sleep(0.02)
    return None


def _changes(s: Scenario) -> Iterator[Change]:
    cursor = s.feed_start
    while batch := s.app.store.changes(cursor, ChangeFilter(), 1000):
        for change in batch:
            cursor = change.cursor
            yield change


def _released_at(s: Scenario, probes: set[str]) -> dict[str, float]:
    """When the store took each probe back from the zombie (its LeaseExpired rescue)."""
    out: dict[str, float] = {}
    for change in _changes(s):
        job = change.job
        probe = str(job.id)
        rescued = job.error is not None and job.error.type == "LeaseExpired"
        if probe in probes and probe not in out and rescued and job.status.value != "running":
            out[probe] = change.at.timestamp()
    return out


def _completions(s: Scenario) -> Counter[str]:
    """Completions the feed recorded, by job: a status step into `completed`."""
    last: dict[str, str] = {}
    counted: Counter[str] = Counter()
    for change in _changes(s):
        job = change.job
        probe, status = str(job.id), job.status.value
        if status == "completed" and last.get(probe) != "completed":
            counted[probe] += 1
        last[probe] = status
    return counted
