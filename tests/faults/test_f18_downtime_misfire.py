"""F18 downtime and misfire policy, PostgreSQL. Catalogue: all schedulers down for 3
simulated hours; three policies: `skip`, `latest` (Hangfire Relaxed), `all` within a 1 h
catch-up window. Pass: skip -> 0 catch-up runs; latest -> exactly 1 per schedule, carrying the
latest missed slot; all -> exactly the slots inside the window (60 for a per-minute schedule),
none older; `schedule_missed_total` equals the dropped slots.

underway's policies (Schedule.catch_up): `skip`, `latest` and `all`, whose limit is a count
(`max_catch_up`), not a time window: the catalogue's 1 h window of a per-minute schedule is
`max_catch_up=60` here. A slot is missed once it is `misfire_grace` late (10 s here; the
restart comes 30 s after a minute, so no slot is still on time). underway has no
`schedule_missed_total` metric, so that row is not asserted.

The schedulers run in this process on `underway.testing.Clock`: one ticks every simulated
minute for 10 minutes, is dropped, the clock jumps 3 h, and a new one starts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from harness import MakeScenario, Scenario

import underway
from underway.testing import Clock

MINUTE = timedelta(minutes=1)


@pytest.fixture
def store_kind() -> str:
    return "postgresql"


def skipped() -> None: ...


def latest() -> None: ...


def every_slot() -> None: ...


def make_app(url: str) -> underway.App:
    app = underway.App(url)
    for fn, policy in ((skipped, "skip"), (latest, "latest"), (every_slot, "all")):
        app.periodic(cron="* * * * *", catch_up=policy, max_catch_up=60, misfire_grace=10,
                     schedule_name=f"f18.{policy}")(fn)  # fmt: skip
    return app


def test_f18_downtime_and_misfire_policies(scenario: MakeScenario) -> None:
    s = scenario("F18 downtime and misfire policy")
    app, clock = make_app(s.url), Clock()
    try:
        before = app.scheduler(clock)
        for _ in range(11):  # on time at 12:00 ... 12:10
            before.tick()
            clock.advance(MINUTE)
        last_on_time = clock() - MINUTE
        clock.advance(timedelta(hours=3) - MINUTE + timedelta(seconds=30))
        s.fault("every scheduler down for 3 simulated hours")
        latest_missed = clock().replace(second=0)
        app.scheduler(clock).tick()  # a new scheduler after the downtime
        caught_up = slots_after(s, last_on_time.timestamp())
        clock.advance(timedelta(seconds=30))  # the first slot after the restart
        app.scheduler(clock).tick()
        resumed = slots_after(s, latest_missed.timestamp())
    finally:
        app.close()
    window = {(latest_missed - n * MINUTE).timestamp() for n in range(60)}
    next_slot = {(latest_missed + MINUTE).timestamp()}
    on_time = {(last_on_time - n * MINUTE).timestamp() for n in range(11)}
    ran_on_time = {p: set(slots_after(s, 0)[p]) - set(caught_up[p]) - set(resumed[p])
                   for p in ("skip", "latest", "all")}  # fmt: skip
    (
        s.verdict(allow_duplicates="none")
        .require("on time: one run per minute before the downtime",
                 all(v == on_time for v in ran_on_time.values()), f"{ran_on_time}")
        .require("skip: 0 catch-up runs", caught_up["skip"] == [], f"{caught_up['skip']}")
        .require("latest: exactly 1 run, for the latest missed slot",
                 caught_up["latest"] == [latest_missed.timestamp()], f"{caught_up['latest']}")
        .require("all: exactly the 60 slots of the window, none older",
                 set(caught_up["all"]) == window and len(caught_up["all"]) == 60,
                 f"{len(caught_up['all'])} runs, oldest {min(caught_up['all'], default=0)}")
        .require("after the catch-up every policy runs the next slot once",
                 all(set(v) == next_slot and len(v) == 1 for v in resumed.values()),
                 f"{resumed}")
        .check()
    )  # fmt: skip


def slots_after(s: Scenario, after: float) -> dict[str, list[float]]:
    """The slots of each policy's jobs later than `after` (epoch seconds), oldest first."""
    found: dict[str, list[float]] = {"skip": [], "latest": [], "all": []}
    for row in s.raw.jobs().values():
        if row.schedule and row.slot is not None and row.slot > after:
            found[row.schedule.removeprefix("f18.")].append(row.slot)
    return {policy: sorted(slots) for policy, slots in found.items()}
