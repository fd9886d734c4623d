"""After a scenario: classify every job and check the invariants, the same way for all.

Classification (rabbitmq's jepsen total-queue):
- lost: an `ok` enqueue whose job is not finished (completed, failed, cancelled) by the end;
- duplicated: more than one effect for a probe;
- unexpected: an effect for a probe whose enqueue was refused, or that the store never held;
- recovered: an `unknown` enqueue whose job ran.
A duplicate is allowed only where the scenario allows it: by default only for a probe that an
incarnation started and was then killed (SIGKILL) before the store recorded that attempt's
outcome (the set K). `partitioned` names incarnations cut off from the store (F06's zombie):
their running probes may have run twice too, as a killed incarnation's.

Invariants:
- I1 no job still `running` whose lease expired more than a sweep (a heartbeat) ago;
- I2 every change of status in the feed is an allowed edge of the state machine;
- I3 attempts within max_attempts; rescues within max_rescues (the rescue that fails a job
  for good is the one past it);
- I4 at most one job per (schedule, slot, tenant);
- I5 one holder at a time (no two attempts in the store's history overlap), and a completed
  job's result was written by its last attempt (a stale holder's writes change nothing).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledger import Event, Outcome, Tally, read

from underway.model import TRANSITIONS, Status
from underway.stores.messages import ChangeFilter

if TYPE_CHECKING:
    from harness import JobRow, Scenario


@dataclass
class Verdict:
    scenario: str
    store: str
    jobs: int
    faults: list[str]
    lost: set[str]
    duplicated: set[str]
    allowed_duplicates: set[str]
    unexpected: set[str]
    recovered: set[str]
    invariants: dict[str, list[str]]
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    logs: str = ""

    @property
    def excess_duplicates(self) -> set[str]:
        return self.duplicated - self.allowed_duplicates

    @property
    def passed(self) -> bool:
        return (
            not self.lost
            and not self.unexpected
            and not self.excess_duplicates
            and not any(self.invariants.values())
            and all(ok for ok, _ in self.checks.values())
        )

    def require(self, name: str, ok: bool, detail: str = "") -> Verdict:
        """A scenario's own pass criterion, recorded beside the shared ones."""
        self.checks[name] = (ok, detail)
        return self

    def summary(self) -> str:
        broken = {k: v[:5] for k, v in self.invariants.items() if v}
        failed = {k: d for k, (ok, d) in self.checks.items() if not ok}
        return (
            f"{self.scenario} [{self.store}]: jobs={self.jobs} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)} (allowed {len(self.allowed_duplicates)}) "
            f"unexpected={len(self.unexpected)} recovered={len(self.recovered)}\n"
            f"  lost: {sorted(self.lost)[:5]}\n  excess duplicates: "
            f"{sorted(self.excess_duplicates)[:5]}\n  unexpected: {sorted(self.unexpected)[:5]}\n"
            f"  invariants broken: {broken}\n  checks failed: {failed}"
        )

    def check(self) -> Verdict:
        """Record this verdict for the report, then fail the test unless it passed."""
        from report import record

        record(self)
        assert self.passed, f"{self.summary()}\n{self.logs}"
        return self


def judge(
    s: Scenario, allow_duplicates: str = "killed", partitioned: frozenset[str] = frozenset()
) -> Verdict:
    rows = s.raw.jobs()
    tally = Tally(read(s.ledger))
    effects = tally.effects()
    probes = set(s.client.outcomes)
    ok = s.client.with_outcome(Outcome.OK)
    refused = s.client.with_outcome(Outcome.ERROR)
    unknown = s.client.with_outcome(Outcome.UNKNOWN)

    lost = {p for p in ok if p not in rows or not rows[p].finished}
    duplicated = {p for p, n in effects.items() if n > 1}
    unexpected = {p for p in effects if p in refused or p not in rows}
    recovered = {p for p in unknown if p in tally.started()}
    if allow_duplicates == "killed":
        allowed = _killed_in_flight(tally, s.fleet.killed_incarnations() | partitioned, rows)
    elif allow_duplicates == "none":
        allowed = set()
    else:
        raise ValueError(allow_duplicates)

    invariants = {
        "I1 no expired lease left running": _expired_leases(s, rows),
        "I2 only allowed transitions": _transitions(s),
        "I3 attempts within bounds": _bounds(s, rows),
        "I4 one job per schedule slot": _one_per_slot(rows),
        "I5 one holder at a time": _one_holder(s, tally, rows),
    }
    return Verdict(
        s.name, s.store, len(probes) or len(rows), list(s.faults), lost, duplicated, allowed,
        unexpected, recovered, invariants, logs=s.fleet.logs(),
    )  # fmt: skip


def _killed_in_flight(tally: Tally, killed: set[str], rows: dict[str, JobRow]) -> set[str]:
    """K: probes an incarnation was running when it was killed: started by it, and not
    finished in the store by that attempt. The body's `end` is no proof: the worker records
    the outcome a moment after the body returns, and a kill in between rightly runs it again."""
    finished_by = {
        (r.id, r.result.get("attempt"), r.result.get("incarnation"))
        for r in rows.values()
        if r.status == "completed" and isinstance(r.result, dict)
    }
    return {
        e.probe
        for e in tally.entries
        if e.event is Event.START
        and e.incarnation in killed
        and (e.probe, e.attempt, e.incarnation) not in finished_by
    }


def _expired_leases(s: Scenario, rows: dict[str, JobRow]) -> list[str]:
    now = s.raw.now()
    sweep = s.settings["heartbeat_seconds"]
    return [
        f"{r.id} lease expired {now - r.lease_expires_at:.1f} s ago"
        for r in rows.values()
        if r.status == "running" and r.lease_expires_at is not None
        and r.lease_expires_at < now - sweep - s.settings["lease_seconds"]
    ]  # fmt: skip


def _transitions(s: Scenario) -> list[str]:
    """Every job's statuses along the feed, each step an edge of the state machine."""
    last: dict[str, Status] = {}
    broken: list[str] = []
    cursor = s.feed_start
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        batch = s.app.store.changes(cursor, ChangeFilter(), 1000)
        if not batch:
            break
        for change in batch:
            cursor = change.cursor
            job, status = str(change.job.id), change.job.status
            before = last.get(job)
            if before is None and status is not Status.PENDING:
                broken.append(f"{job} first seen {status} ({change.kind})")
            elif before is not None and before is not status and status not in TRANSITIONS[before]:
                broken.append(f"{job} {before} -> {status} ({change.kind})")
            last[job] = status
    return broken


def _bounds(s: Scenario, rows: dict[str, JobRow]) -> list[str]:
    cap = int(s.settings["max_rescues"])
    out = []
    for r in rows.values():
        if r.attempt > r.max_attempts:
            out.append(f"{r.id} attempt {r.attempt} > max_attempts {r.max_attempts}")
        if r.rescues > cap + 1 or (r.rescues == cap + 1 and r.status != "failed"):
            out.append(f"{r.id} rescued {r.rescues} times (max_rescues {cap}), now {r.status}")
    return out


def _one_per_slot(rows: dict[str, JobRow]) -> list[str]:
    seen: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for r in rows.values():
        if r.schedule is not None and r.slot is not None:
            seen[(r.schedule, r.slot, r.tenant)].append(r.id)
    return [f"{key}: {ids}" for key, ids in seen.items() if len(ids) > 1]


def _one_holder(s: Scenario, tally: Tally, rows: dict[str, JobRow]) -> list[str]:
    """No two attempts of a job held it at once, by the store's own attempt history (a run
    taken back from a stalled holder ends when it was taken back). Only jobs the ledger saw
    start more than once can break it. And a completed job's result came from its last
    attempt: a stale holder's late write changed nothing."""
    out = []
    for probe, starts in tally.by_probe(Event.START).items():
        if len(starts) < 2 or probe not in rows:
            continue
        held = sorted((a.started_at, a.ended_at, a.number) for a in s.app.attempts(probe))
        for (_, first_end, first), (second_start, _, second) in itertools.pairwise(held):
            if first_end is None or first_end > second_start:
                out.append(f"{probe} attempts {first} and {second} held it at once")
    for r in rows.values():
        written_by = r.result.get("attempt") if isinstance(r.result, dict) else None
        if r.status == "completed" and written_by is not None and written_by != r.attempt:
            out.append(f"{r.id} completed by attempt {written_by}, not {r.attempt}")
    return out
