"""F17 several schedulers over simulated hours, both stores. Catalogue: 3 scheduler instances;
schedules `* * * * *`, `*/5 * * * *`, `0 * * * *`, `@daily` and every 17 s; an injectable clock
runs 24 h fast. Faults: the active scheduler killed every 10 simulated minutes; one scheduler
stopped for 2 lease periods, then resumed (a stale leader). Pass: exactly one row per
(schedule, slot): 1,440 / 288 / 24 / 1 / 5,082; 0 missing slots; enqueue lag p99 <= 2 s; the
resumed scheduler creates no duplicate.

Three schedulers (three apps on the store, as three processes would be) run on one injected
clock, which moves from one due time to the next. Every 10 simulated minutes the scheduler
that fired the most recent slot is dropped and a fresh one takes its place (a killed process,
restarted: it registers its schedules again). Once, a scheduler is frozen for 2 lease periods
(it does not tick while the clock moves on) and then ticks again with the state it had. The
jobs in the store are counted per schedule and compared with the slots each rule has in the
window. underway has no leader: each slot's job is inserted once by the store whichever
scheduler gets there first, so "killing the leader" is killing the one that fired last.

Lag: each slot's job must be fired at the tick of its own due time (the clock stops at every
due time), so the lag in simulated time is 0 for every job, well inside 2 s; a slot fired at a
later tick would show it.

CI size: 6 simulated hours (360 / 72 / 6 / the daily slot if the window holds midnight: it
does / 1,271); `--full` the catalogue's 24 hours."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from abuse import abuse_verdict
from harness import RawStore, Sizes

import underway
from underway import testing
from underway.schedule import Cron, Every

RULES: dict[str, Cron | Every] = {
    "minutely": Cron("* * * * *"),
    "every 5 min": Cron("*/5 * * * *"),
    "hourly": Cron("0 * * * *"),
    "daily": Cron("0 0 * * *"),
    "every 17 s": Every(17.0),
}
START = datetime(2031, 5, 3, 22, 0, tzinfo=UTC)  # the window holds a midnight
KILL_EVERY = timedelta(minutes=10)


def make(make_app: Callable[..., underway.App]) -> underway.App:
    app = make_app()

    @app.task(name="f17.tick")
    def tick() -> None: ...

    for name, rule in RULES.items():
        if isinstance(rule, Every):
            app.schedule(tick, every=rule.seconds, name=name)
        else:
            app.schedule(tick, cron=rule.expression, name=name)
    return app


def expected_slots(end: datetime) -> dict[str, list[datetime]]:
    """Each rule's slots in [START, end), from the rule alone."""
    out = {}
    for name, rule in RULES.items():
        slots, moment = [], START - timedelta(microseconds=1)
        while (moment := rule.next_after(START, moment)) < end:
            slots.append(moment)
        out[name] = slots
    return out


def test_f17_three_schedulers_fire_each_slot_once(
    make_app: Callable[..., underway.App], store_kind: str, sizes: Sizes
) -> None:
    hours = 24 if sizes.full else 6
    end = START + timedelta(hours=hours)
    apps = [make(make_app) for _ in range(3)]
    apps[0].migrate()
    lease = apps[0].settings.lease_seconds
    clock = testing.Clock(START)
    schedulers = [testing.scheduler(app, clock=clock) for app in apps]
    due = sorted({s for slots in expected_slots(end).values() for s in slots})
    fired_at: dict[tuple[str, datetime], datetime] = {}
    kills, frozen_until, next_kill = 0, None, START + KILL_EVERY
    freeze_at = START + timedelta(hours=1, seconds=30)
    last_firer = 0
    for moment in due:
        clock.set(moment)
        if moment >= next_kill:  # the scheduler that fired last is killed and restarted
            schedulers[last_firer] = testing.scheduler(apps[last_firer], clock=clock)
            kills, next_kill = kills + 1, next_kill + KILL_EVERY
        if frozen_until is None and moment >= freeze_at:
            frozen_until = moment + timedelta(seconds=2 * lease)
        for index, scheduler in enumerate(schedulers):
            if index == 2 and frozen_until is not None and moment < frozen_until:
                continue  # frozen (SIGSTOP): it ticks again, stale, once the time has passed
            for job in scheduler.tick():
                assert job.schedule is not None and job.slot is not None
                fired_at[(job.schedule, job.slot)] = moment
                last_firer = index
    rows = RawStore(str(apps[0].settings.database_url))._query(
        "SELECT schedule, slot FROM {jobs} WHERE task = 'f17.tick'"
    )
    judge(store_kind, hours, rows, expected_slots(end), fired_at, kills, lease)


def judge(store_kind: str, hours: int, rows: list[tuple[object, ...]],
          expected: dict[str, list[datetime]], fired_at: dict[tuple[str, datetime], datetime],
          kills: int, lease: float) -> None:  # fmt: skip
    def as_time(value: object) -> datetime:
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.fromtimestamp(float(str(value)), UTC)  # SQLite: seconds since epoch

    got: dict[str, list[datetime]] = {name: [] for name in RULES}
    for schedule, slot in rows:
        got[str(schedule)].append(as_time(slot))
    counts = {name: len(slots) for name, slots in got.items()}
    wanted = {name: len(slots) for name, slots in expected.items()}
    duplicates = {n: len(s) - len(set(s)) for n, s in got.items() if len(s) != len(set(s))}
    missing = {
        n: len(set(expected[n]) - set(s)) for n, s in got.items() if set(expected[n]) - set(s)
    }
    extra = {n: len(set(s) - set(expected[n])) for n, s in got.items() if set(s) - set(expected[n])}
    lags = sorted((fired - slot).total_seconds() for (_, slot), fired in fired_at.items())
    p99 = lags[int(len(lags) * 0.99) - 1] if lags else float("inf")
    (
        abuse_verdict("F17 several schedulers", store_kind, len(rows), [
            f"3 schedulers on an injected clock over {hours} simulated hours; the last to fire "
            f"killed every 10 simulated minutes ({kills} times); one frozen for 2 lease "
            f"periods ({2 * lease:g} s) and resumed",
        ])
        .require("exactly one job per (schedule, slot)", not duplicates and counts == wanted,
                 f"jobs {counts}, slots {wanted}, duplicates {duplicates}")
        .require("no slot missing, none invented", not missing and not extra,
                 f"missing {missing}, not a slot {extra}")
        .require("enqueue lag p99 <= 2 s (simulated)", p99 <= 2.0, f"p99 {p99:g} s, max "
                 f"{lags[-1] if lags else 'n/a'} s")
        .check()
    )  # fmt: skip
