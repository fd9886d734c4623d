"""F09 dead or half-open listener (PostgreSQL only). Catalogue: A, pg_terminate_backend on the
LISTEN sessions; B, the listeners' TCP path black-holed (no FIN, no RST) for 5 min.

Pass: while the listeners are dead, new jobs still start within the poll interval (the polling
backstop); a dead listener is noticed within 15 s and listens again; afterwards pickup p99
< 200 ms (wake-ups, not polling). Not tested: a `listener_reconnects_total` metric: underway's
metrics are read from the store and are the same in every process, so a per-process count has
no place there; each replaced listener logs a warning instead.

CI size: 4 workers reach PostgreSQL through a proxy in this process (tests/pgproxy.py) that can
swallow a connection's bytes; the test's own App (the producer) connects directly. Poll every
2 s, so a pickup by polling is told apart from one by a wake-up; "within the poll interval"
allows 0.25 s over it for the claim and the start of the job themselves (an enqueue lands just
after every worker polled: all were woken together by the last notice). Both the work and the
cancel LISTEN sessions of every worker are hit. B lasts 20 s (`--full`: 5 min); jobs are
enqueued one at a time, 0.3 s apart."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable

import psycopg
import pytest
from harness import MakeScenario, Scenario
from ledger import Event, Tally, read

from pgproxy import Link, Proxy
from underway.stores.postgres.store import _split_url

POLL = 2.0
#: what a pickup may take over the poll interval: the claim and the job's start
OVERHEAD = 0.25
DETECT_WITHIN = 15.0


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


def pickups(s: Scenario, count: int) -> list[float]:
    """Enqueue `count` jobs one by one; seconds from each enqueue to its start."""
    probes = []
    for _ in range(count):
        probes += s.enqueue("faults.probe", [{"seconds": 0.0}])
        time.sleep(0.3)
    deadline = time.monotonic() + 3 * POLL
    while True:
        starts = Tally(read(s.ledger)).by_probe(Event.START)
        if all(p in starts for p in probes) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return [starts[p][0].at - s.client.returned_at[p] if p in starts else float("inf")
            for p in probes]  # fmt: skip


def p99(values: list[float]) -> float:
    return max(values) if len(values) < 100 else statistics.quantiles(values, n=100)[98]


def listening(s: Scenario) -> Counter[str]:
    """The fleet's LISTEN sessions on the server, by channel."""
    with psycopg.connect(_split_url(s.url)[0], autocommit=True) as admin:
        rows = admin.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = %s "
            "AND query LIKE 'LISTEN%%'",
            (s.fleet.application_name,),
        ).fetchall()
    return Counter(row[0] for row in rows)


def wait_until(probe: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def test_f09_a_dead_listener_is_noticed_and_polling_covers_for_it(
    scenario: MakeScenario, proxy: Proxy
) -> None:
    s = scenario("F09 dead or half-open listener", poll_seconds=POLL)
    black_hole = s.sizes.pick(20, 300)
    s.fleet.url = proxy.url(s.fleet.url)
    workers = s.fleet.start_many(4, concurrency=2)
    for worker in workers:
        assert s.fleet.wait_ready(worker), s.fleet.logs()
    # each worker LISTENs for new work and for cancel requests
    everyone = lambda: sum(listening(s).values()) >= 2 * len(workers)  # noqa: E731
    assert wait_until(everyone, 15), (listening(s), s.fleet.logs())
    before = pickups(s, 10)

    # A: the LISTEN sessions terminated by the server.
    with psycopg.connect(_split_url(s.url)[0], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = %s AND query LIKE 'LISTEN%%'",
                      (s.fleet.application_name,))  # fmt: skip
    s.fault("pg_terminate_backend on every LISTEN session")
    during_a = pickups(s, 6)
    relisten_a = wait_until(everyone, DETECT_WITHIN)
    after_a = pickups(s, 10)

    # B: the listeners' TCP path swallows everything, closing nothing.
    held_at = time.monotonic()
    held = Counter(str(link.channel()) for link in proxy.hold(Link.listens))
    s.fault(f"{sum(held.values())} LISTEN sessions black-holed for {black_hole} s")
    during_b = pickups(s, 6)

    def replaced() -> bool:
        fresh = Counter(str(link.channel()) for link in proxy.links
                        if link.listens() and not link.held)  # fmt: skip
        return all(fresh[channel] >= n for channel, n in held.items())

    noticed = wait_until(replaced, max(0.0, DETECT_WITHIN - (time.monotonic() - held_at)))
    noticed_after = time.monotonic() - held_at
    time.sleep(max(0.0, black_hole - (time.monotonic() - held_at)))
    proxy.release()
    after_b = pickups(s, 10)
    settled = s.settle(timeout=30)

    verdict = s.verdict(allow_duplicates="none")
    dead = during_a + during_b
    exited = [m.incarnation for m in s.fleet.members if not m.alive]
    (
        verdict.require("every job finished", settled, "")
        .require("no worker exited", not exited, f"{exited}")
        .require("pickups by wake-up before the faults (p99 < 200 ms)", p99(before) < 0.2,
                 f"{p99(before):.3f} s")
        .require("while dead, pickups within the poll interval", max(dead) <= POLL + OVERHEAD,
                 f"max {max(dead):.2f} s (poll {POLL:g} s)")
        .require("A: listening again within 15 s", relisten_a, f"{listening(s)}")
        .require("A: afterwards pickup p99 < 200 ms", p99(after_a) < 0.2, f"{p99(after_a):.3f} s")
        .require("B: every black-holed listener noticed and replaced within 15 s", noticed,
                 f"{dict(held)}; {noticed_after:.1f} s")
        .require("B: afterwards pickup p99 < 200 ms", p99(after_b) < 0.2, f"{p99(after_b):.3f} s")
        .check()
    )  # fmt: skip
