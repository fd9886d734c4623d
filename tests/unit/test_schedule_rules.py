"""Schedule rules and the pure plan (underway/schedule.py): interval and cron slots, cron aliases,
bad rules, daylight-saving days, and the catch-up policies. Nothing here touches a store.

Rule computations that could loop run under `returns_within`: a slot loop that stops making
progress fails its test instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from underway import App, ConfigurationError, InvalidArguments
from underway.schedule import MAX_SLOTS, CatchUp, Cron, Every, Overlap, Rule, Schedule, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
TENTH = Every(0.1)  # 0.3 / 0.1 == 2.9999999999999996: slot arithmetic must not trust floats


class Hung(Exception):
    """A rule computation did not return in time."""


#: A hang never returns; the bound only has to lie far above the slowest honest run. It counts
#: this process's CPU time, not the wall clock, so other work on the machine cannot trip it
#: (2,160 next_after calls once took over 2 s of wall time on a loaded 2-core machine).
HANG_SECONDS = 20.0


@contextlib.contextmanager
def returns_within(seconds: float, what: str) -> Iterator[None]:
    """Raise `Hung` inside the block once it has used `seconds` of CPU time (SIGVTALRM, main
    thread): a rule computation that loops forever. Leaves pytest-timeout's SIGALRM alone."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"{what} did not return within {seconds} s of CPU time")

    previous = signal.signal(signal.SIGVTALRM, on_alarm)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def cron_slots(
    rule: Cron, anchor: datetime, after: datetime | None, until: datetime
) -> list[datetime]:
    with returns_within(HANG_SECONDS, f"{rule.describe()}.slots(anchor={anchor}, until={until})"):
        return rule.slots(anchor, after, until)


def grid(rule: Every, anchor: datetime, k: int) -> datetime:
    """The k-th slot of an interval rule: the definition every process agrees on."""
    return anchor + timedelta(seconds=k * rule.seconds)


def at(rule: Every, anchor: datetime, position: int | float) -> datetime:
    """An int position is exactly that slot; a float one is anywhere on the time line."""
    if isinstance(position, int):
        return grid(rule, anchor, position)
    return anchor + timedelta(seconds=position * rule.seconds)


def expected_every(
    rule: Every, anchor: datetime, after: datetime | None, until: datetime
) -> list[datetime]:
    last = math.ceil((until - anchor).total_seconds() / rule.seconds) + 1
    points = (grid(rule, anchor, k) for k in range(max(last, -1) + 1))
    inside = [p for p in points if (after is None or p > after) and p <= until]
    return inside[-MAX_SLOTS:]


def cronsim_oracle(
    rule: Cron, anchor: datetime, after: datetime | None, until: datetime
) -> list[datetime]:
    """The slots of one uninterrupted cronsim walk (for zones without daylight saving)."""
    start = anchor - US if after is None else max(after, anchor)
    walk = CronSim(rule.expression, start.astimezone(rule.zone))
    found = []
    while (slot := next(walk).astimezone(UTC)) <= until:
        found.append(slot)
    return found[-MAX_SLOTS:]


# --- strategies -------------------------------------------------------------------------------

INTERVALS = st.one_of(
    st.sampled_from([0.1, 0.2, 0.3, 0.7, 1.0, 1.5, 2.5, 60.0, 90.0, 3600.0, 86400.0]),
    st.floats(min_value=0.01, max_value=86_400, allow_nan=False, allow_infinity=False),
)
ANCHORS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)
#: where on the time line, in intervals from the anchor: an int is exactly that slot
POSITIONS = st.one_of(
    st.integers(0, 300), st.floats(-5, 300, allow_nan=False, allow_infinity=False)
)

EXPRESSIONS = [
    "* * * * *",
    "*/5 * * * *",
    "*/20 * * * *",
    "0 * * * *",
    "15,45 * * * *",
    "30 2 * * *",
    "30 1 * * *",
    "0 0 * * *",
    "0 9 * * 1-5",
    "@hourly",
    "@daily",
]
DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]
FIXED_ZONES = ["UTC", "Asia/Kolkata"]


def offset_changes(zone_name: str, year: int = 2026) -> list[datetime]:
    """The hours (UTC) in which the zone's UTC offset changes during `year`."""
    zone = ZoneInfo(zone_name)
    start = datetime(year, 1, 1, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(366 * 24)]
    return [
        b for a, b in itertools.pairwise(hours)
        if a.astimezone(zone).utcoffset() != b.astimezone(zone).utcoffset()
    ]  # fmt: skip


TRANSITIONS = {zone: offset_changes(zone) for zone in DST_ZONES}


@st.composite
def cron_cases(draw: st.DrawFn, zones: list[str]) -> tuple[Cron, datetime]:
    """A cron rule and an anchor; in zones with daylight saving, half of the anchors lie just
    before a change of the clocks. Anchors sit on, just before or anywhere around a minute."""
    zone = draw(st.sampled_from(zones))
    rule = Cron(draw(st.sampled_from(EXPRESSIONS)), zone)
    if zone in TRANSITIONS and draw(st.booleans()):
        base = draw(st.sampled_from(TRANSITIONS[zone]))
        base += timedelta(minutes=draw(st.integers(-26 * 60, 60)))
    else:
        base = draw(
            st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC))
        ).replace(second=0, microsecond=0)
    nudge = draw(
        st.one_of(
            st.just(0.0),
            st.floats(-1.0, 0.0, allow_nan=False),
            st.floats(-60.0, 60.0, allow_nan=False),
        )
    )
    return rule, base + timedelta(seconds=nudge)


NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


# --- Every ------------------------------------------------------------------------------------


@given(rule=INTERVALS.map(Every), anchor=ANCHORS, after=st.none() | POSITIONS, until=POSITIONS)
@example(rule=Every(0.1), anchor=T0, after=3, until=5)  # 0.3 / 0.1 == 2.9999999999999996
@example(rule=Every(0.2), anchor=T0, after=3, until=5)
@example(rule=Every(0.1), anchor=T0, after=None, until=3)  # `until` exactly on slot 3
def test_every_slots_are_increasing_unique_and_inside_the_window(
    rule: Every, anchor: datetime, after: int | float | None, until: int | float
) -> None:
    after_t = None if after is None else at(rule, anchor, after)
    until_t = at(rule, anchor, until)
    slots = rule.slots(anchor, after_t, until_t)
    assert len(slots) <= MAX_SLOTS
    assert all(a < b for a, b in itertools.pairwise(slots)), "not strictly increasing"
    assert len(set(slots)) == len(slots)
    assert all(s >= anchor and s <= until_t for s in slots)
    if after_t is not None:
        assert all(s > after_t for s in slots), f"a slot <= after={after_t}: {slots[:3]}"


@given(rule=INTERVALS.map(Every), anchor=ANCHORS, after=st.none() | POSITIONS, until=POSITIONS)
@example(rule=Every(0.1), anchor=T0, after=3, until=5)
@example(rule=Every(0.1), anchor=T0, after=None, until=3)
def test_every_slots_are_exactly_the_grid_points_in_the_window(
    rule: Every, anchor: datetime, after: int | float | None, until: int | float
) -> None:
    after_t = None if after is None else at(rule, anchor, after)
    until_t = at(rule, anchor, until)
    assert rule.slots(anchor, after_t, until_t) == expected_every(rule, anchor, after_t, until_t)


def test_every_slot_after_a_handled_slot_is_the_next_one_for_fractional_intervals() -> None:
    """The scheduler passes the last fired slot back as `after`; it must never come back."""
    rule = Every(0.1)
    slot3, slot4, slot5 = (grid(rule, T0, k) for k in (3, 4, 5))
    assert rule.slots(T0, slot3, slot5) == [slot4, slot5]
    assert rule.next_after(T0, slot3) == slot4


def test_every_slots_start_at_the_anchor_and_step_by_the_interval() -> None:
    rule = Every(90)
    assert rule.slots(T0, None, T0 + timedelta(seconds=300)) == [
        T0 + timedelta(seconds=s) for s in (0, 90, 180, 270)
    ]
    assert rule.slots(T0, None, T0 - US) == []
    assert rule.slots(T0, T0, T0 + timedelta(seconds=180)) == [
        T0 + timedelta(seconds=90),
        T0 + timedelta(seconds=180),
    ]
    assert rule.slots(T0, T0 + timedelta(seconds=200), T0 + timedelta(seconds=260)) == []


def test_initial_delay_moves_the_first_slot_to_the_anchor() -> None:
    """The scheduler anchors an interval at (first registration + initial_delay)."""
    rule = Every(60, initial_delay=30)
    registered = T0
    anchor = registered + timedelta(seconds=rule.initial_delay)
    assert rule.slots(anchor, None, registered) == []
    assert rule.slots(anchor, None, anchor - US) == []
    assert rule.slots(anchor, None, anchor) == [anchor]
    assert rule.slots(anchor, None, anchor + timedelta(seconds=60)) == [
        anchor,
        anchor + timedelta(seconds=60),
    ]
    assert rule.describe() == "every 1m (first after 30s)"
    assert Every(3600).describe() == "every 1h"
    assert Every(0.2).describe() == "every 0.2s"


def test_every_slots_are_bounded_by_max_slots_and_keep_the_latest() -> None:
    rule = Every(1)
    until = T0 + timedelta(seconds=5000)
    slots = rule.slots(T0, None, until)
    assert len(slots) == MAX_SLOTS
    assert slots[-1] == until
    assert slots[0] == until - timedelta(seconds=MAX_SLOTS - 1)
    far = T0 + timedelta(days=365 * 50)  # a decade-long downtime does not enumerate 1.5e9 slots
    assert len(rule.slots(T0, T0, far)) == MAX_SLOTS


@given(rule=INTERVALS.map(Every), anchor=ANCHORS, moment=POSITIONS)
@example(rule=Every(0.1), anchor=T0, moment=3)
@example(rule=Every(0.2), anchor=T0, moment=3)
def test_every_next_after_is_the_first_slot_strictly_after(
    rule: Every, anchor: datetime, moment: int | float
) -> None:
    m = at(rule, anchor, moment)
    k = max(math.floor((m - anchor).total_seconds() / rule.seconds) - 2, 0)
    while grid(rule, anchor, k) <= m:
        k += 1
    assert rule.next_after(anchor, m) == grid(rule, anchor, k)


@pytest.mark.parametrize(
    "args",
    [(0,), (-1,), (math.nan,), (math.inf,), (60, -1), (60, math.nan), (60, math.inf)],
)
def test_bad_intervals_raise_configuration_error(args: tuple[float, ...]) -> None:
    with pytest.raises(ConfigurationError):
        Every(*args)


# --- Cron -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "expression"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@minutely", "* * * * *"),
        ("  @Daily ", "0 0 * * *"),
    ],
)
def test_cron_aliases_mean_their_expressions(alias: str, expression: str) -> None:
    rule = Cron(alias, "Europe/Berlin")
    assert rule.expression == expression
    assert rule.describe() == f"cron {expression} (Europe/Berlin)"
    anchor = T0 - timedelta(minutes=30)
    until = T0 + timedelta(days=2 if expression.startswith(("*", "0 *")) else 400)
    assert cron_slots(rule, anchor, None, until) == cron_slots(
        Cron(expression, "Europe/Berlin"), anchor, None, until
    )


def test_hourly_and_daily_slots_in_utc() -> None:
    anchor = T0 - timedelta(minutes=30)
    day = T0 + timedelta(days=1)
    assert cron_slots(Cron("@hourly"), anchor, None, day) == [
        T0 + timedelta(hours=h) for h in range(25)
    ]
    assert cron_slots(Cron("@daily"), anchor, None, T0 + timedelta(days=3)) == [
        T0 + timedelta(days=d) for d in range(4)
    ]
    assert cron_slots(Cron("*/15 * * * *"), anchor, T0, T0 + timedelta(hours=1)) == [
        T0 + timedelta(minutes=m) for m in (15, 30, 45, 60)
    ]


def test_daily_in_a_zone_fires_at_local_midnight() -> None:
    rule = Cron("@daily", "Asia/Kolkata")
    slots = cron_slots(rule, T0, None, T0 + timedelta(days=2))
    assert [s.astimezone(rule.zone).strftime("%H:%M") for s in slots] == ["00:00", "00:00"]
    assert slots[0] == datetime(2026, 1, 1, 18, 30, tzinfo=UTC)


def test_cron_slots_are_bounded_by_max_slots_and_keep_the_latest() -> None:
    rule = Cron("* * * * *")
    until = T0 + timedelta(days=3)
    slots = cron_slots(rule, T0 - timedelta(minutes=1), T0 - timedelta(minutes=1), until)
    assert len(slots) == MAX_SLOTS
    assert slots[-1] == until
    assert slots[0] == until - timedelta(minutes=MAX_SLOTS - 1)


@pytest.mark.parametrize(
    "expression",
    ["* * *", "61 * * * *", "0 25 * * *", "0 0 30 2 *", "nope", "", "@fortnightly",
     "* * * * * * *"],
)  # fmt: skip
def test_bad_cron_expressions_raise_configuration_error(expression: str) -> None:
    with pytest.raises(ConfigurationError, match="cron expression"):
        Cron(expression)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "Europe/Berlin/", "../etc/passwd", "utc"])
def test_bad_time_zones_raise_configuration_error(zone: str) -> None:
    with pytest.raises(ConfigurationError, match="time zone"):
        Cron("0 * * * *", zone)


@pytest.mark.parametrize("offset", [0.5, 1.0, 0.001])
def test_cron_next_after_a_moment_just_before_a_slot_is_that_slot(offset: float) -> None:
    rule = Cron("0 12 * * *")
    slot = datetime(2026, 1, 1, 12, tzinfo=UTC)
    moment = slot - timedelta(seconds=offset)
    assert rule.next_after(T0, moment) == slot


def test_a_cron_schedule_anchored_in_the_last_second_before_a_slot_fires_that_slot() -> None:
    rule = Cron("0 12 * * *")
    slot = datetime(2026, 1, 1, 12, tzinfo=UTC)
    anchor = slot - timedelta(seconds=0.5)  # the schedule first registered at 11:59:59.5
    now = slot + timedelta(seconds=30)
    assert cron_slots(rule, anchor, None, now) == [slot]
    assert plan(Schedule("noon", "t", rule), anchor, None, now).fire == [slot]


def test_a_cron_slot_exactly_at_the_anchor_belongs_to_the_schedule() -> None:
    slot = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert cron_slots(Cron("0 12 * * *"), slot, None, slot + timedelta(hours=1)) == [slot]


# --- daylight saving --------------------------------------------------------------------------


def one_slot_per_local_day(rule: Cron, first: date, last: date) -> dict[date, datetime]:
    anchor = datetime.combine(first, datetime.min.time(), rule.zone).astimezone(UTC)
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), rule.zone)
    slots = cron_slots(rule, anchor, None, until.astimezone(UTC) - US)
    per_day = Counter(s.astimezone(rule.zone).date() for s in slots)
    days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
    assert {d: per_day[d] for d in days} == dict.fromkeys(days, 1), "not once per local day"
    return {s.astimezone(rule.zone).date(): s.astimezone(rule.zone) for s in slots}


def test_berlin_0230_runs_once_a_day_across_both_clock_changes_of_2026() -> None:
    rule = Cron("30 2 * * *", "Europe/Berlin")
    local = one_slot_per_local_day(rule, date(2026, 3, 1), date(2026, 11, 30))
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    # 02:30 does not exist on 29 March (02:00 -> 03:00): it runs once, right after the jump.
    assert local[spring].strftime("%H:%M %z") == "03:00 +0200"
    # 02:30 happens twice on 25 October (03:00 -> 02:00): it runs once.
    assert local[autumn].strftime("%H:%M") == "02:30"
    others = {d: t.strftime("%H:%M") for d, t in local.items() if d != spring}
    assert set(others.values()) == {"02:30"}


def test_new_york_0130_runs_once_on_the_fall_back_day_and_0230_once_on_spring_day() -> None:
    fall = one_slot_per_local_day(
        Cron("30 1 * * *", "America/New_York"), date(2026, 10, 25), date(2026, 11, 8)
    )
    assert {t.strftime("%H:%M") for t in fall.values()} == {"01:30"}
    spring = one_slot_per_local_day(
        Cron("30 2 * * *", "America/New_York"), date(2026, 3, 1), date(2026, 3, 15)
    )
    assert spring[date(2026, 3, 8)].strftime("%H:%M") == "03:00"


@pytest.mark.parametrize(
    ("expression", "zone", "start", "step"),
    [
        ("0 * * * *", "Europe/Berlin", datetime(2026, 10, 24, 22, tzinfo=UTC), 60),
        ("@hourly", "Europe/Berlin", datetime(2026, 10, 24, 22, tzinfo=UTC), 60),
        ("*/20 * * * *", "Europe/Berlin", datetime(2026, 10, 24, 22, tzinfo=UTC), 20),
        ("* * * * *", "Europe/Berlin", datetime(2026, 10, 25, 0, 30, tzinfo=UTC), 1),
        ("0 * * * *", "America/New_York", datetime(2026, 11, 1, 3, tzinfo=UTC), 60),
    ],
)
def test_wildcard_hour_rules_keep_their_pace_through_the_fall_back_hour(
    expression: str, zone: str, start: datetime, step: int
) -> None:
    """When the clocks go back, an hourly rule still runs every hour of real time (and an
    every-20-minutes rule every 20 minutes): the slot walk goes forward and ends."""
    rule = Cron(expression, zone)
    until = start + timedelta(hours=5)
    expected = [start + timedelta(minutes=m) for m in range(0, 5 * 60 + 1, step)]
    assert cron_slots(rule, start - US, None, until) == expected
    with returns_within(HANG_SECONDS, "next_after across the fall-back hour"):
        moment = start
        for slot in expected[1:]:
            moment = rule.next_after(start, moment)
            assert moment == slot


# --- property tests over both rule kinds -------------------------------------------------------


@settings(max_examples=60, deadline=None, phases=NO_SHRINK)
@given(case=cron_cases(DST_ZONES + FIXED_ZONES), span_minutes=st.integers(0, 36 * 60))
def test_cron_slots_are_increasing_unique_inside_the_window_and_chain_by_next_after(
    case: tuple[Cron, datetime], span_minutes: int
) -> None:
    rule, anchor = case
    until = anchor + timedelta(minutes=span_minutes)
    slots = cron_slots(rule, anchor, None, until)
    assert len(slots) <= MAX_SLOTS
    assert all(a < b for a, b in itertools.pairwise(slots)), "not strictly increasing"
    assert all(anchor <= s <= until for s in slots)
    with returns_within(HANG_SECONDS, f"{rule.describe()}.next_after"):
        for a, b in itertools.pairwise(slots):
            assert rule.next_after(anchor, a) == b
        if slots:
            assert rule.next_after(anchor, slots[-1]) > until
    if len(slots) > 2:
        middle = slots[len(slots) // 2]
        assert cron_slots(rule, anchor, middle, until) == [s for s in slots if s > middle]


@settings(max_examples=60, deadline=None, phases=NO_SHRINK)
@given(
    case=cron_cases(FIXED_ZONES),
    after_minutes=st.none() | st.floats(0, 600, allow_nan=False),
    span_minutes=st.integers(0, 24 * 60),
)
def test_cron_slots_in_zones_without_dst_match_one_cronsim_walk(
    case: tuple[Cron, datetime], after_minutes: float | None, span_minutes: int
) -> None:
    rule, anchor = case
    after = None if after_minutes is None else anchor + timedelta(minutes=after_minutes)
    until = anchor + timedelta(minutes=span_minutes)
    assert cron_slots(rule, anchor, after, until) == cronsim_oracle(rule, anchor, after, until)


@st.composite
def plan_cases(draw: st.DrawFn) -> tuple[Schedule, datetime, datetime | None, datetime]:
    """A schedule, its anchor, the latest slot handled (a slot of the rule, or None) and now."""
    anchor = draw(ANCHORS)
    rule: Rule
    if draw(st.booleans()):
        rule = Every(draw(INTERVALS))
        last_k = draw(st.none() | st.integers(0, 200))
        last = None if last_k is None else grid(rule, anchor, last_k)
        now = (last or anchor) + timedelta(
            seconds=draw(st.floats(-1, 300, allow_nan=False)) * rule.seconds
        )
    else:
        rule = Cron(draw(st.sampled_from(EXPRESSIONS)), draw(st.sampled_from(FIXED_ZONES)))
        anchor = anchor.replace(year=2026)
        slots = rule.slots(anchor, None, anchor + timedelta(days=3))
        last = draw(st.none() | st.sampled_from(slots)) if slots else None
        now = (last or anchor) + timedelta(minutes=draw(st.floats(-1, 2000, allow_nan=False)))
    schedule = Schedule(
        "s",
        "t",
        rule,
        catch_up=draw(st.sampled_from(list(CatchUp))),
        max_catch_up=draw(st.integers(1, 50)),
        misfire_grace=draw(st.floats(0, 7200, allow_nan=False)),
    )
    return schedule, anchor, last, now


@given(case=plan_cases())
@example(
    case=(Schedule("s", "t", Every(0.1)), T0, grid(Every(0.1), T0, 3), grid(Every(0.1), T0, 5))
)
def test_plan_never_fires_a_handled_slot_and_a_second_plan_at_the_same_time_fires_nothing(
    case: tuple[Schedule, datetime, datetime | None, datetime],
) -> None:
    schedule, anchor, last, now = case
    first = plan(schedule, anchor, last, now)
    assert all(a < b for a, b in zip(first.fire, first.fire[1:], strict=False)), "not oldest-first"
    assert all(slot <= now for slot in first.fire)
    if last is not None:
        assert all(slot > last for slot in first.fire), f"fired a handled slot: {first.fire[:3]}"
    assert first.next_run > now
    if first.advance_to is None:
        assert first.fire == []
    else:
        assert first.advance_to <= now
        assert all(slot <= first.advance_to for slot in first.fire)
    # Fire those slots (the store's last slot becomes advance_to) and plan again at `now`.
    handled = first.advance_to if first.advance_to is not None else last
    again = plan(schedule, anchor, handled, now)
    assert again.fire == [], f"re-planning at the same time fires {again.fire[:3]}"
    assert again.advance_to is None


# --- catch-up policies ------------------------------------------------------------------------


@st.composite
def downtimes(
    draw: st.DrawFn, late: bool
) -> tuple[Every, datetime, datetime | None, int, float, datetime, list[datetime]]:
    """A downtime of N slots of an interval rule: the schedule had handled `last` (a slot, or
    nothing yet), and now N more slots are due. With `late`, all of them are later than the
    misfire grace; otherwise the latest is within it."""
    seconds = draw(st.integers(2, 86_400))
    rule = Every(float(seconds))
    anchor = draw(ANCHORS)
    grace = draw(st.floats(0, seconds - 1.5, allow_nan=False))
    last_k = draw(st.none() | st.integers(0, 100))
    n = draw(st.integers(1, 150))
    first_k = 0 if last_k is None else last_k + 1
    missed = [grid(rule, anchor, k) for k in range(first_k, first_k + n)]
    lateness = (
        draw(st.floats(grace + 0.5, seconds - 0.5, allow_nan=False))
        if late
        else draw(st.floats(0, grace, allow_nan=False))
    )
    now = missed[-1] + timedelta(seconds=lateness)
    last = None if last_k is None else grid(rule, anchor, last_k)
    return rule, anchor, last, n, grace, now, missed


def schedule_for(rule: Every, catch_up: CatchUp, grace: float, max_catch_up: int = 100) -> Any:
    return Schedule(
        "s", "t", rule, catch_up=catch_up, max_catch_up=max_catch_up, misfire_grace=grace
    )


@given(case=downtimes(late=True), max_catch_up=st.integers(1, 200))
def test_catch_up_all_fires_the_latest_min_n_max_catch_up_slots_oldest_first(
    case: tuple[Every, datetime, datetime | None, int, float, datetime, list[datetime]],
    max_catch_up: int,
) -> None:
    rule, anchor, last, n, grace, now, missed = case
    result = plan(schedule_for(rule, CatchUp.ALL, grace, max_catch_up), anchor, last, now)
    assert len(result.fire) == min(n, max_catch_up)
    assert result.fire == missed[-min(n, max_catch_up) :]
    assert result.advance_to == missed[-1]


@given(case=downtimes(late=True))
def test_catch_up_latest_fires_exactly_the_latest_missed_slot(
    case: tuple[Every, datetime, datetime | None, int, float, datetime, list[datetime]],
) -> None:
    rule, anchor, last, _n, grace, now, missed = case
    result = plan(schedule_for(rule, CatchUp.LATEST, grace), anchor, last, now)
    assert result.fire == [missed[-1]]
    assert result.advance_to == missed[-1]


@given(case=downtimes(late=True))
def test_catch_up_skip_fires_none_of_the_missed_slots(
    case: tuple[Every, datetime, datetime | None, int, float, datetime, list[datetime]],
) -> None:
    rule, anchor, last, _n, grace, now, missed = case
    result = plan(schedule_for(rule, CatchUp.SKIP, grace), anchor, last, now)
    assert result.fire == []
    assert result.advance_to == missed[-1]  # they count as handled: never fired later
    assert result.next_run == missed[-1] + timedelta(seconds=rule.seconds)


@given(case=downtimes(late=False), policy=st.sampled_from([CatchUp.SKIP, CatchUp.LATEST]))
def test_a_slot_within_the_misfire_grace_fires_under_skip_and_latest(
    case: tuple[Every, datetime, datetime | None, int, float, datetime, list[datetime]],
    policy: CatchUp,
) -> None:
    rule, anchor, last, _n, grace, now, missed = case
    result = plan(schedule_for(rule, policy, grace), anchor, last, now)
    assert result.fire == [missed[-1]]
    assert result.advance_to == missed[-1]


@given(case=downtimes(late=False), max_catch_up=st.integers(1, 200))
def test_catch_up_all_within_the_grace_still_fires_the_latest_min_n_max(
    case: tuple[Every, datetime, datetime | None, int, float, datetime, list[datetime]],
    max_catch_up: int,
) -> None:
    rule, anchor, last, n, grace, now, missed = case
    result = plan(schedule_for(rule, CatchUp.ALL, grace, max_catch_up), anchor, last, now)
    assert result.fire == missed[-min(n, max_catch_up) :]


def test_nothing_due_plans_nothing_and_says_when_next() -> None:
    schedule = Schedule("s", "t", Every(60))
    result = plan(schedule, T0, T0, T0 + timedelta(seconds=59))
    assert (result.fire, result.advance_to) == ([], None)
    assert result.next_run == T0 + timedelta(seconds=60)
    before = plan(schedule, T0 + timedelta(hours=1), None, T0)
    assert (before.fire, before.next_run) == ([], T0 + timedelta(hours=1))


# --- Schedule values and app-level configuration ------------------------------------------------


def test_schedule_key_is_the_same_slot_in_utc_everywhere() -> None:
    schedule = Schedule("nightly", "t", Every(60))
    berlin = T0.astimezone(ZoneInfo("Europe/Berlin"))
    assert schedule.key(T0) == "schedule:nightly:2026-01-01T00:00:00+00:00"
    assert schedule.key(berlin) == schedule.key(T0)
    assert schedule.key(T0 + timedelta(seconds=0.2)).endswith("00:00:00.200000+00:00")


@pytest.mark.parametrize(
    "options", [{"max_catch_up": 0}, {"misfire_grace": -1.0}, {"misfire_grace": math.nan}]
)
def test_bad_schedule_options_raise_configuration_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Schedule("s", "t", Every(60), **options)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """An app whose store is never opened: registering schedules is pure."""
    app = App(f"sqlite:///{tmp_path / 'never-opened.db'}")
    yield app
    app.close()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"every": 60, "cron": "* * * * *"},
        {"every": 0},
        {"every": timedelta(0)},
        {"every": -5},
        {"cron": "0 25 * * *"},
        {"cron": "@daily", "timezone": "Nowhere/City"},
        {"every": 60, "initial_delay": -1},
        {"every": 60, "max_catch_up": 0},
        {"every": 60, "misfire_grace": timedelta(seconds=-1)},
        {"every": 60, "catch_up": "sometimes"},
        {"every": 60, "overlap": "never"},
    ],
)
def test_bad_periodic_options_raise_configuration_error(app: App, options: dict[str, Any]) -> None:
    def job() -> None: ...

    task = app.task(name="job")(job)
    with pytest.raises(ConfigurationError):
        app.schedule(task, **options)
    assert app.schedules == {}


def test_periodic_refuses_arguments_that_do_not_fit_the_task(app: App) -> None:
    with pytest.raises(InvalidArguments):

        @app.periodic(every=60, args={"nope": 1})
        def report(day: str) -> None: ...

    assert app.schedules == {}


def test_periodic_builds_the_rule_and_policies_it_was_given(app: App) -> None:
    @app.periodic(
        every=timedelta(minutes=5), initial_delay=timedelta(seconds=30), catch_up="all",
        max_catch_up=7, misfire_grace=timedelta(seconds=10), overlap="skip",
        args={"size": 3}, schedule_name="sync", queue="bulk",
    )  # fmt: skip
    def sync(size: int) -> int:
        return size

    @app.periodic(cron="@daily", timezone="Europe/Berlin")
    def nightly() -> None: ...

    s = app.schedules["sync"]
    assert s.task == sync.name
    assert s.rule == Every(300.0, 30.0)
    assert (s.catch_up, s.max_catch_up, s.misfire_grace, s.overlap) == (
        CatchUp.ALL, 7, 10.0, Overlap.SKIP,
    )  # fmt: skip
    assert s.args == {"size": 3}
    assert app.tasks[sync.name].queue == "bulk"
    n = app.schedules[nightly.name]
    assert n.rule == Cron("0 0 * * *", "Europe/Berlin")
    assert (n.catch_up, n.overlap) == (CatchUp.LATEST, Overlap.ALLOW)
    assert sync(4) == 4  # still a plain function
