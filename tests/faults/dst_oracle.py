"""A brute-force oracle of when a cron rule fires across daylight-saving changes (F19): every
minute of a UTC window is converted to the zone's local time and judged, with none of the
schedule code's arithmetic. The policy it encodes is underway's (docs/guide.md, Schedules),
which is Debian cron's:

- a rule with a wildcard hour (`M * * * *`) fires at every instant whose local minute is M:
  an hour that repeats in autumn fires twice, an hour skipped in spring not at all;
- a rule with a fixed hour (`M H * * *`) fires once per local date: at the first instant whose
  local time is H:M (a time that happens twice runs once, at its first), or, when the spring
  jump skips H:M, at the first instant after it (right after the jump)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

UTC = ZoneInfo("UTC")


def minutes(start: datetime, end: datetime) -> list[datetime]:
    """Every whole UTC minute in [start, end)."""
    first = start.astimezone(UTC).replace(second=0, microsecond=0)
    if first < start:
        first += timedelta(minutes=1)
    count = int((end - first).total_seconds() // 60)
    return [first + timedelta(minutes=i) for i in range(max(0, count))]


def fires(
    minute: int, hour: int | None, zone: str, start: datetime, end: datetime
) -> list[datetime]:
    """When `M H * * *` (`hour` None: `M * * * *`) fires in [start, end), for the local dates
    wholly inside it when the hour is fixed."""
    tz = ZoneInfo(zone)
    scan = [(m, m.astimezone(tz)) for m in minutes(start, end)]
    if hour is None:
        return [m for m, local in scan if local.minute == minute]
    out = []
    dates = sorted({local.date() for _, local in scan})
    for day in dates[1:-1]:  # the first and last may be cut by the window
        on_day = [(m, local) for m, local in scan if local.date() == day]
        exact = [m for m, local in on_day if (local.hour, local.minute) == (hour, minute)]
        later = [m for m, local in on_day if (local.hour, local.minute) >= (hour, minute)]
        if exact:
            out.append(exact[0])
        elif later:
            out.append(later[0])
    return out


def local_day(zone: str, day: date) -> tuple[datetime, datetime]:
    """The UTC span of one local date in `zone`."""
    tz = ZoneInfo(zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = start + timedelta(days=1)
    return start.astimezone(UTC), datetime(end.year, end.month, end.day, tzinfo=tz).astimezone(UTC)
