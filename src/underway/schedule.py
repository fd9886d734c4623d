"""Schedules: interval and cron rules, and the plan of which slots to fire.

Everything here is pure: given a rule, the schedule's shared state and the store's time, `plan`
says which slots become jobs. The scheduler (scheduler.py) asks the store to fire each one; the
store fires a slot only if no other scheduler fired it yet, so any number of schedulers may run.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigurationError

# cronsim has no @daily and friends; these are the usual meanings.
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
    "@minutely": "* * * * *",
}


class CatchUp(enum.StrEnum):
    """What to do with slots that passed while no scheduler ran."""

    ALL = "all"  # run every missed slot (at most `max_catch_up` of them)
    LATEST = "latest"  # run once, for the latest missed slot
    SKIP = "skip"  # run none of them; wait for the next slot


class Overlap(enum.StrEnum):
    """What to do when a slot comes while the schedule's previous job is still unfinished."""

    ALLOW = "allow"  # start it anyway
    SKIP = "skip"  # drop this slot
    WAIT = "wait"  # fire it once the previous job finished (late)


#: the longest interval or initial delay of an `Every` rule
MAX_INTERVAL_SECONDS = 100 * 365 * 86400.0
#: the shortest interval: below it a scheduler would spend its life counting slots
MIN_INTERVAL_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class Every:
    """Fire every `seconds`. The first slot (the anchor, shared by every process) comes either
    `initial_delay` after the schedule first appeared in the store, once in its life, or
    `first_after_boot` after each scheduler process starts: every boot moves the anchor there
    (0 fires at once after each restart). Give at most one of the two."""

    seconds: float
    initial_delay: float = 0.0
    first_after_boot: float | None = None

    def __post_init__(self) -> None:
        # Past a century the next slot's date overflows datetime (year 9999 at most).
        if not (
            math.isfinite(self.seconds)
            and MIN_INTERVAL_SECONDS <= self.seconds <= MAX_INTERVAL_SECONDS
        ):
            raise ConfigurationError(
                f"an interval must be at least {MIN_INTERVAL_SECONDS} seconds and at most "
                f"{MAX_INTERVAL_SECONDS:,.0f} (100 years), got {self.seconds}"
            )
        if not (
            math.isfinite(self.initial_delay) and 0 <= self.initial_delay <= MAX_INTERVAL_SECONDS
        ):
            raise ConfigurationError(
                f"initial_delay must be between 0 and {MAX_INTERVAL_SECONDS:,.0f} seconds "
                f"(100 years), got {self.initial_delay}"
            )
        boot = self.first_after_boot
        if boot is not None:
            if self.initial_delay:
                raise ConfigurationError(
                    "give initial_delay (counted once, from the schedule's first registration) "
                    "or first_after_boot (counted from each scheduler start), not both"
                )
            if not (math.isfinite(boot) and 0 <= boot <= MAX_INTERVAL_SECONDS):
                raise ConfigurationError(
                    f"first_after_boot must be between 0 and {MAX_INTERVAL_SECONDS:,.0f} "
                    f"seconds (100 years), got {boot}"
                )

    @property
    def first_delay(self) -> float:
        """How long after its anchoring moment the first slot comes."""
        return self.initial_delay if self.first_after_boot is None else self.first_after_boot

    def describe(self) -> str:
        if self.first_after_boot is not None:
            boot = _human(self.first_after_boot)
            return f"every {_human(self.seconds)} (first {boot} after each boot)"
        return f"every {_human(self.seconds)}" + (
            f" (first after {_human(self.initial_delay)})" if self.initial_delay else ""
        )

    def slots(self, anchor: datetime, after: datetime | None, until: datetime) -> list[datetime]:
        """Slots s with after < s <= until (all from the anchor when `after` is None), oldest
        first; at most the latest MAX_SLOTS."""
        last_k = self._last_at_or_before(anchor, until)
        if last_k < 0:
            return []
        first_k = 0 if after is None else self._last_at_or_before(anchor, after) + 1
        first_k = max(first_k, 0, last_k - MAX_SLOTS + 1)
        return [self._slot(anchor, k) for k in range(first_k, last_k + 1)]

    def next_after(self, anchor: datetime, moment: datetime) -> datetime:
        return self._slot(anchor, max(self._last_at_or_before(anchor, moment) + 1, 0))

    def _slot(self, anchor: datetime, k: int) -> datetime:
        return anchor + timedelta(seconds=k * self.seconds)

    def _last_at_or_before(self, anchor: datetime, moment: datetime) -> int:
        """The largest k whose slot is <= moment (-1 when moment is before the anchor). Float
        division only estimates it (0.3 / 0.1 is 2.999...); comparing real slots settles it."""
        k = math.floor((moment - anchor).total_seconds() / self.seconds)
        while self._slot(anchor, k + 1) <= moment:
            k += 1
        while k >= 0 and self._slot(anchor, k) > moment:
            k -= 1
        return max(k, -1)


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression (five fields, or @hourly, @daily, ...) in a time zone. Daylight-saving
    changes follow Debian cron: a time skipped by the spring change runs once right after the
    jump; a time that happens twice in the autumn runs once."""

    expression: str
    timezone: str = "UTC"
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from cronsim import CronSim, CronSimError

        expression = CRON_ALIASES.get(self.expression.strip().lower(), self.expression.strip())
        object.__setattr__(self, "expression", expression)
        try:
            object.__setattr__(self, "zone", ZoneInfo(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"unknown time zone {self.timezone!r}; use an IANA name like 'Europe/Berlin'"
            ) from None
        try:
            CronSim(expression, datetime.now(self.zone))
        except CronSimError as exc:
            raise ConfigurationError(f"bad cron expression {self.expression!r}: {exc}") from None

    def describe(self) -> str:
        return f"cron {self.expression} ({self.timezone})"

    def slots(self, anchor: datetime, after: datetime | None, until: datetime) -> list[datetime]:
        start = anchor - timedelta(microseconds=1)
        if after is not None:
            start = max(start, after)
        # Only the latest MAX_SLOTS matter: look back a day first, and further only while that
        # finds too few, so a long downtime of a minutely rule never walks a year of minutes.
        window = timedelta(days=1)
        while True:
            begin = max(start, until - window)
            found = list(itertools.takewhile(lambda slot: slot <= until, self._after(begin)))
            if begin == start or len(found) >= MAX_SLOTS:
                return found[-MAX_SLOTS:]
            window *= 8

    def next_after(self, anchor: datetime, moment: datetime) -> datetime:
        """The first slot strictly after `moment`, in UTC."""
        return next(self._after(moment))

    def _after(self, moment: datetime) -> Iterator[datetime]:
        """Slots strictly after `moment`, in UTC, strictly increasing."""
        if self._wildcard_hour:
            return self._after_by_offset(moment)
        return self._after_by_wall_clock(moment)

    def _after_by_wall_clock(self, moment: datetime) -> Iterator[datetime]:
        # A fixed hour fires once a local date: cronsim's walk of local times gives the first
        # of a time that happens twice, and the time right after a jump that skips it. The
        # walk starts a few hours early: in the hour that repeats when clocks go back, a walk
        # started inside it would see local times again that already passed.
        from cronsim import CronSim

        last = moment
        for local in CronSim(self.expression, (moment - timedelta(hours=3)).astimezone(self.zone)):
            slot = local.astimezone(UTC)
            if slot > last:
                last = slot
                yield slot

    def _after_by_offset(self, moment: datetime) -> Iterator[datetime]:
        # A wildcard hour fires at every instant whose local time matches: twice in a time
        # that repeats, never in one that is skipped. So the rule runs on the zone's offset of
        # the moment, as a fixed one, up to the offset's next change, and on from there with
        # the next. (cronsim's own walk missed some of these in half-hour changes: Lord Howe's
        # second 01:30 for `30 * * * *`, its only 02:45 for `45 * * * *`.)
        from cronsim import CronSim

        at, last = moment, moment  # the offset in force from `at`; slots after `last`
        while True:
            offset = at.astimezone(self.zone).utcoffset() or timedelta(0)
            stop = _offset_change(self.zone, at, offset) or at + OFFSET_LOOKAHEAD
            for local in CronSim(self.expression, last.astimezone(timezone(offset))):
                slot = local.astimezone(UTC)
                if slot >= stop:
                    break
                if slot > last:
                    last = slot
                    yield slot
            at = stop
            # a slot exactly at the change belongs to the next offset: walk from just before
            last = max(last, stop - timedelta(microseconds=1))

    @property
    def _wildcard_hour(self) -> bool:
        fields = {"@hourly": "0 * * * *"}.get(self.expression.strip(), self.expression).split()
        return len(fields) >= 5 and fields[1] == "*"


#: how far ahead a wildcard-hour rule looks for its zone's next offset change at a time
OFFSET_LOOKAHEAD = timedelta(days=1)


def _offset_change(zone: ZoneInfo, start: datetime, offset: timedelta) -> datetime | None:
    """The first instant within OFFSET_LOOKAHEAD after `start` at which `zone`'s offset is no
    longer `offset` (changes fall on whole minutes), or None."""
    end = start + OFFSET_LOOKAHEAD
    if end.astimezone(zone).utcoffset() == offset:
        return None  # zones change at most a few times a year: never twice within a day
    low = start.replace(second=0, microsecond=0)  # the offset of `low` is `offset`
    high = end
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        middle = middle.replace(second=0, microsecond=0)
        if middle <= low:
            middle = low + timedelta(minutes=1)
        if middle.astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high


Rule = Every | Cron

#: a function listing the tenants a slot fires for, called at each slot (sync or async)
TenantLister = Callable[[], Iterable[str] | Awaitable[Iterable[str]]]

#: No plan ever lists more slots than this: after a long downtime a frequent schedule would
#: otherwise enumerate millions of them.
MAX_SLOTS = 1000


@dataclass(frozen=True, slots=True)
class Schedule:
    """A task fired on a rule. Built by `@app.periodic(...)` or `app.schedule(...)`."""

    name: str
    task: str
    rule: Rule
    catch_up: CatchUp = CatchUp.LATEST
    max_catch_up: int = 100
    #: a slot fired later than this after its time counts as missed
    misfire_grace: float = 60.0
    overlap: Overlap = Overlap.ALLOW
    args: dict[str, Any] = field(default_factory=dict)
    #: the tenant every job of the schedule carries (None: none)
    tenant: str | None = None
    #: run once per tenant: each slot fires one job for each of these (or of those the
    #: function lists at that slot), carrying its tenant (None: one job per slot)
    tenants: tuple[str, ...] | TenantLister | None = None

    def __post_init__(self) -> None:
        if self.tenant is not None and self.tenants is not None:
            raise ConfigurationError(
                "give a schedule tenant= (one tenant for all its jobs) or tenants= (a job per "
                "tenant at each slot), not both"
            )
        if self.max_catch_up < 1:
            raise ConfigurationError("max_catch_up must be >= 1")
        if not math.isfinite(self.misfire_grace) or self.misfire_grace < 0:
            raise ConfigurationError("misfire_grace must be >= 0 seconds")

    def describe(self) -> str:
        return self.rule.describe()

    def key(self, slot: datetime, tenant: str | None = None) -> str:
        """The unique key of the job for one slot (and one tenant of a schedule run per
        tenant): the same in every process."""
        key = f"schedule:{self.name}:{slot.astimezone(UTC).isoformat()}"
        return key if self.tenants is None or tenant is None else f"{key}:tenant:{tenant}"


@dataclass(frozen=True, slots=True)
class Plan:
    fire: list[datetime]  # slots to turn into jobs, oldest first
    advance_to: datetime | None  # the latest slot handled (fired or dropped)
    next_run: datetime  # the next slot after `now`


def plan(schedule: Schedule, anchor: datetime, last_slot: datetime | None, now: datetime) -> Plan:
    """Which slots to fire at `now`, given the latest slot already handled."""
    due = schedule.rule.slots(anchor, last_slot, now)
    next_run = schedule.rule.next_after(anchor, now)
    if not due:
        return Plan([], None, next_run)
    grace = timedelta(seconds=schedule.misfire_grace)
    on_time = [slot for slot in due if now - slot <= grace]
    missed = due[: len(due) - len(on_time)]
    if schedule.catch_up is CatchUp.ALL:
        fire = due[-schedule.max_catch_up :]
    elif schedule.catch_up is CatchUp.LATEST:
        # One run stands for all the missed slots, unless a slot on time runs anyway.
        fire = on_time or missed[-1:]
    else:
        fire = on_time
    return Plan(fire, due[-1], next_run)


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
