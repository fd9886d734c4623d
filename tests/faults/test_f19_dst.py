"""F19 daylight-saving time, both stores. Catalogue: zones America/New_York, Europe/London and
Australia/Lord_Howe (a 30-minute shift); the 2026 spring-forward and fall-back dates; schedules
`0 * * * *`, `30 1 * * *`, `30 2 * * *`. Pass: the hourly job fires once per real hour (23 on
the spring day, 25 on the fall day); `30 1` fires once on the fall day (the first occurrence);
`30 2` fires once on the spring day, at 03:00, never twice. Property test: fire times strictly
increasing in UTC, unique, equal to a brute-force minute-scan oracle
(`tests/unit/test_schedule_dst_property.py`, around the transitions of 2026 and 2027).

Two schedulers (two apps on the store, as two processes would be) run the nine schedules on
one injected clock, stepped 15 minutes at a time through each zone's two transition days, and
each step both tick. The jobs in the store are then counted per schedule and local date, and
their slots compared with the oracle (tests/faults/dst_oracle.py), which knows nothing of the
schedule code. The policy is underway's (docs/guide.md), Debian cron's: a rule with a wildcard
hour fires at each real hour (an hour that repeats fires twice); a fixed time that repeats
fires once, at its first occurrence; one the spring jump skips fires once, right after it.

Lord Howe's clocks move by 30 minutes at 02:00, so its hourly rule fires 23 times on the
spring day (23.5 real hours: 02:00 does not exist) and 24 on the autumn day (24.5 hours, no
top of an hour repeats); the oracle counts them the same way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from abuse import abuse_verdict
from dst_oracle import fires, local_day

import underway
from underway import testing

#: each zone's 2026 (spring-forward, fall-back) dates, local
DAYS = {
    "America/New_York": (date(2026, 3, 8), date(2026, 11, 1)),
    "Europe/London": (date(2026, 3, 29), date(2026, 10, 25)),
    "Australia/Lord_Howe": (date(2026, 10, 4), date(2026, 4, 5)),
}
RULES = {"hourly": (0, None), "01:30": (30, 1), "02:30": (30, 2)}
STEP = timedelta(minutes=15)


def make(make_app: Callable[..., underway.App]) -> underway.App:
    app = make_app()

    @app.task(name="f19.tick")
    def tick() -> None: ...

    for zone in DAYS:
        for label, (minute, hour) in RULES.items():
            app.schedule(tick, cron=f"{minute} {'*' if hour is None else hour} * * *",
                         timezone=zone, name=f"{zone}:{label}", catch_up="skip")  # fmt: skip
    return app


def run_days(apps: list[underway.App]) -> list[underway.Job]:
    """Both schedulers through every zone's transition days on one clock; the jobs fired."""
    clock = testing.Clock(datetime(2026, 3, 1, tzinfo=ZoneInfo("UTC")))
    schedulers = [testing.scheduler(app, clock=clock) for app in apps]
    spans = sorted(local_day(zone, day) for zone, days in DAYS.items() for day in days)
    for start, end in spans:
        clock.set(start - timedelta(hours=2))  # catch_up="skip": the jump fires nothing
        while clock() <= end + timedelta(hours=1):
            for scheduler in schedulers:
                scheduler.tick()
            clock.advance(STEP)
    return apps[0].list_jobs(task="f19.tick", limit=1000).jobs


def compare(by_schedule: dict[str, list[datetime]]) -> tuple[list[str], dict[str, int]]:
    """Each schedule's slots on each transition day against the oracle's; the counts."""
    wrong, counts = [], {}
    for zone, days in DAYS.items():
        tz = ZoneInfo(zone)
        for kind, day in zip(("spring", "fall"), days, strict=True):
            start, end = local_day(zone, day)
            for label, (minute, hour) in RULES.items():
                name = f"{zone}:{label}"
                got = sorted(s for s in by_schedule.get(name, []) if start <= s < end)
                # the oracle's fixed-hour answer needs whole local dates: a wider scan
                wide = fires(minute, hour, zone, start - timedelta(days=1), end + timedelta(days=1))
                expected = [s for s in wide if start <= s < end]
                counts[f"{name} {kind}"] = len(got)
                if got != expected:
                    local = [s.astimezone(tz).isoformat() for s in got][:6]
                    wrong.append(f"{name} on {day}: {len(got)}, expected {len(expected)}: {local}")
    return wrong, counts


def test_f19_schedules_fire_once_per_slot_across_dst(
    make_app: Callable[..., underway.App], store_kind: str
) -> None:
    apps = [make(make_app) for _ in range(2)]
    apps[0].migrate()
    jobs = run_days(apps)
    by_schedule: dict[str, list[datetime]] = {}
    for job in jobs:
        assert job.schedule is not None and job.slot is not None
        by_schedule.setdefault(job.schedule, []).append(job.slot)
    wrong, counts = compare(by_schedule)
    duplicates = len(jobs) - len({(j.schedule, j.slot) for j in jobs})
    ny, spring = ZoneInfo("America/New_York"), DAYS["America/New_York"][0]
    at_0230 = [s.astimezone(ny).strftime("%H:%M") for s in by_schedule["America/New_York:02:30"]
               if s.astimezone(ny).date() == spring]  # fmt: skip
    hourly = {k: v for k, v in counts.items() if "hourly" in k}
    (
        abuse_verdict("F19 DST", store_kind, len(jobs), [
            "3 zones x (spring-forward, fall-back) days x 3 cron rules, 2 schedulers on one "
            "injected clock stepped 15 min",
        ])
        .require("every schedule's slots on each DST day equal the minute-scan oracle's",
                 not wrong, f"{wrong[:3]}")
        .require("hourly: 23 on the spring day, 25 on the fall day (New York, London)",
                 all(counts[f"{z}:hourly {k}"] == n for z in ("America/New_York", "Europe/London")
                     for k, n in (("spring", 23), ("fall", 25))), f"{hourly}")
        .require("01:30 once on the fall day; 02:30 once on the spring day, at 03:00 (New York)",
                 counts["America/New_York:01:30 fall"] == 1 and at_0230 == ["03:00"],
                 f"{counts['America/New_York:01:30 fall']} at 01:30; 02:30 fired at {at_0230}")
        .require("never two jobs for one (schedule, slot), with two schedulers", duplicates == 0,
                 f"{duplicates} duplicates of {len(jobs)}")
        .check()
    )  # fmt: skip
