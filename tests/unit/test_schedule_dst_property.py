"""Cron rules across daylight-saving changes (fault suite F19's property): for random zones,
rules and windows around the zones' transitions of 2026 and 2027, the fire times are strictly
increasing in UTC, unique, and equal to a brute-force scan of every minute
(tests/faults/dst_oracle.py)."""

from __future__ import annotations

import functools
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from underway.schedule import Cron

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from dst_oracle import fires

ZONES = ("America/New_York", "Europe/London", "Australia/Lord_Howe", "Europe/Berlin",
         "America/Santiago", "America/Havana", "Pacific/Chatham")  # fmt: skip


@functools.cache
def transitions(zone: str) -> list[datetime]:
    """The instants of 2026 and 2027 at which `zone`'s offset changes, to the hour."""
    tz, found = ZoneInfo(zone), []
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    while moment.year < 2028:
        after = moment + timedelta(hours=1)
        if moment.astimezone(tz).utcoffset() != after.astimezone(tz).utcoffset():
            found.append(after)
        moment = after
    return found


@settings(max_examples=150, deadline=None)
# Lord Howe's half-hour changes, which cronsim's own walk got wrong (found by this test):
# the second 01:30 when 02:00 goes back to 01:30, the only 02:45 when 02:00 jumps to 02:30
@example(zone="Australia/Lord_Howe", minute=30, hour=None, which=0, before=0)
@example(zone="Australia/Lord_Howe", minute=45, hour=None, which=1, before=15)
@given(
    zone=st.sampled_from(ZONES),
    minute=st.sampled_from([0, 15, 30, 45]),
    hour=st.sampled_from([None, 0, 1, 2, 3, 23]),
    which=st.integers(0, 3),
    before=st.integers(0, 3 * 24 * 60),
)
def test_fire_times_match_a_minute_scan(
    zone: str, minute: int, hour: int | None, which: int, before: int
) -> None:
    start = transitions(zone)[which] - timedelta(minutes=before)
    end = start + timedelta(days=5)
    rule = Cron(f"{minute} {'*' if hour is None else hour} * * *", zone)
    got = []
    moment = start - timedelta(microseconds=1)
    while (moment := rule.next_after(start, moment)) < end:
        got.append(moment)
    assert got == sorted(set(got)), "strictly increasing and unique"
    expected = fires(minute, hour, zone, start, end)
    if hour is not None:  # the oracle judges the local dates wholly inside the window
        got = [g for g in got if expected[0] <= g <= expected[-1]]
    assert got == expected
