"""The ledger: what the jobs of a fault scenario really did, kept outside the queue's tables.

A job body appends one line per event to a plain file (one `os.write` on an `O_APPEND`
descriptor, so lines from many processes never interleave, and a restart or a stall of the
database cannot touch it):

    <unix time> <event> <probe> <attempt> <incarnation> [<detail>]

`start` when the body begins, `effect` for the side effect whose duplicates we count, `end`
when it is done, `stopped` when it gave up before its effect (a cancel, a shutdown). The
probe is the job's id (the test chooses it); the incarnation names one start of one worker
process, so a probe started by an incarnation that was killed is known.

The client log is the producer's side: each enqueue's outcome, `ok`, `error` (refused: nothing
was stored) or `unknown` (the call failed in a way that may or may not have stored it), as in
Jepsen's invoke/ok/info.
"""

from __future__ import annotations

import enum
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

LEDGER_VAR = "FAULTS_LEDGER"
INCARNATION_VAR = "FAULTS_INCARNATION"


class Event(enum.StrEnum):
    START = "start"
    EFFECT = "effect"
    END = "end"
    STOPPED = "stopped"  # handed back or cancelled before its effect


@dataclass(frozen=True, slots=True)
class Entry:
    at: float
    event: Event
    probe: str
    attempt: int
    incarnation: str
    detail: str = ""


def write(path: str, event: Event, probe: str, attempt: int, detail: str = "") -> None:
    """Append one line; called from inside job bodies, in the worker processes."""
    incarnation = os.environ.get(INCARNATION_VAR, f"pid{os.getpid()}")
    line = f"{time.time():.6f} {event} {probe} {attempt} {incarnation} {detail}".rstrip() + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read(path: Path) -> list[Entry]:
    entries = []
    for line in path.read_text().splitlines():
        at, event, probe, attempt, incarnation, *detail = line.split(" ", 5)
        entries.append(Entry(float(at), Event(event), probe, int(attempt), incarnation,
                             " ".join(detail)))  # fmt: skip
    return entries


class Outcome(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    UNKNOWN = "unknown"


@dataclass
class ClientLog:
    """Every enqueue the scenario made, by probe, with its outcome and when it returned."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    returned_at: dict[str, float] = field(default_factory=dict)

    def record(self, probe: str, outcome: Outcome) -> None:
        self.outcomes[probe] = outcome
        self.returned_at[probe] = time.time()

    def with_outcome(self, outcome: Outcome) -> set[str]:
        return {p for p, o in self.outcomes.items() if o is outcome}


@dataclass(frozen=True)
class Tally:
    """The ledger grouped by probe."""

    entries: list[Entry]

    def by_probe(self, event: Event) -> dict[str, list[Entry]]:
        grouped: dict[str, list[Entry]] = defaultdict(list)
        for entry in self.entries:
            if entry.event is event:
                grouped[entry.probe].append(entry)
        return grouped

    def effects(self) -> dict[str, int]:
        return {probe: len(es) for probe, es in self.by_probe(Event.EFFECT).items()}

    def started(self) -> set[str]:
        return set(self.by_probe(Event.START))
