"""The shared harness of the fault scenarios: one store of the test's own, the test's App (the
producer and observer), the ledger, the client log, the worker fleet and the faults done.

    def test_f01(scenario):
        s = scenario("F01 SIGKILL mid-job", jobs=200)
        s.fleet.start_many(4, concurrency=4)
        s.enqueue("faults.probe", [{"seconds": 0.5}] * 200)
        ...                                       # the faults, each noted with s.fault(...)
        s.settle(timeout=60)                      # every job finished, or the deadline
        s.verdict().check()                       # classification + invariants, recorded

`RawStore` reads the queue's rows directly (lease expiry, rescues), which the invariants
need and the public API rightly does not show.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faultapp
from fleet import Fleet
from ledger import ClientLog, Outcome

import underway
from underway.ids import uuid7

#: The catalogue's short test defaults, scaled by 1/5 so that faults heal within seconds:
#: lease 10 s -> 2 s, heartbeat (which is also the rescue sweep) 2 s -> 0.4 s, poll 1 s -> 0.2 s.
SETTINGS: dict[str, float] = {
    "lease_seconds": 2.0,
    "heartbeat_seconds": 0.4,
    "poll_seconds": 0.2,
    "shutdown_grace_seconds": 2.0,
    "max_rescues": 3,
}


@dataclass(frozen=True)
class JobRow:
    id: str
    task: str
    status: str
    attempt: int
    max_attempts: int
    rescues: int
    lease_expires_at: float | None
    result: Any
    schedule: str | None
    slot: float | None
    tenant: str | None
    error_type: str | None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class RawStore:
    """Direct reads of the queue's tables on either store, and the database's clock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_postgres = url.startswith(("postgresql:", "postgres:"))

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.is_postgres:
            with sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30) as lite:
                return lite.execute(sql.format(jobs="underway_jobs")).fetchall()
        import psycopg
        from psycopg import sql as pgsql

        from underway.stores.postgres.store import _split_url

        conninfo, schema = _split_url(self.url)
        table = pgsql.Identifier(schema or "public", "underway_jobs").as_string()
        with psycopg.connect(conninfo, autocommit=True) as pg:
            return pg.execute(sql.format(jobs=table)).fetchall()  # type: ignore[arg-type]

    def now(self) -> float:
        if not self.is_postgres:
            return time.time()
        return float(self._query("SELECT extract(epoch FROM now())")[0][0])

    def jobs(self) -> dict[str, JobRow]:
        epoch = (lambda c: f"extract(epoch FROM {c})") if self.is_postgres else (lambda c: c)
        rows = self._query(
            "SELECT id, task, status, attempt, max_attempts, rescues, "
            f"{epoch('lease_expires_at')}, result, schedule, {epoch('slot')}, tenant, error_type "
            "FROM {jobs}"
        )
        out = {}
        for r in rows:
            result = json.loads(r[7]) if isinstance(r[7], str) else r[7]
            lease = None if r[6] is None else float(r[6])
            slot = None if r[9] is None else float(r[9])
            out[str(uuid.UUID(str(r[0])))] = JobRow(
                str(uuid.UUID(str(r[0]))), r[1], r[2], r[3], r[4], r[5], lease, result,
                r[8], slot, r[10], r[11],
            )  # fmt: skip
        return out

    def unfinished(self) -> int:
        return int(self._query("SELECT count(*) FROM {jobs} WHERE status IN "
                               "('pending', 'running')")[0][0])  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    """CI sizes by default; the catalogue's own with `--full`."""

    full: bool

    def pick(self, ci: int, full: int) -> int:
        return full if self.full else ci


class Scenario:
    """One scenario on one store. `settings` override SETTINGS for the workers and the App."""

    def __init__(
        self,
        name: str,
        store: str,
        url: str,
        tmp_path: Path,
        sizes: Sizes,
        settings: Mapping[str, float] | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.url = url
        self.sizes = sizes
        self.settings = {**SETTINGS, **(settings or {})}
        self.app = faultapp.make_app(url, **self.settings)
        self.app.migrate()
        self.feed_start = self.app.store.change_head()  # the feed from here on is the scenario's
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.ledger = tmp_path / "ledger.log"
        self.ledger.touch()
        self.client = ClientLog()
        self.fleet = Fleet(tmp_path, url, self.ledger, self.settings)
        self.raw = RawStore(url)
        self.faults: list[str] = []
        self.started_at = time.time()

    def fault(self, what: str) -> None:
        """Note a fault done (the report's "faults injected" column)."""
        self.faults.append(what)

    def enqueue(
        self,
        task: str,
        calls: Iterable[Mapping[str, Any]],
        batch: int = 500,
        delays: Sequence[float] | None = None,
    ) -> list[str]:
        """Enqueue one job per call in batches (one transaction each), each with an id chosen
        here, so an enqueue whose outcome is unknown can be looked for later; `delays` makes
        the i-th job due that many seconds after the store's now. Returns the probes; each
        batch's outcome goes to the client log."""
        bound = self.app.tasks[task]
        probes: list[str] = []
        pending: list[tuple[str, Mapping[str, Any]]] = [(str(uuid7()), c) for c in calls]
        delay = list(delays) if delays is not None else [0.0] * len(pending)
        for start in range(0, len(pending), batch):
            chunk = pending[start : start + batch]
            items = [
                bound.options(id=probe, delay=delay[start + i]).prepare(**args)
                for i, (probe, args) in enumerate(chunk)
            ]
            outcome = self._try(bound.enqueue_many, items)
            for probe, _ in chunk:
                self.client.record(probe, outcome)
                probes.append(probe)
        return probes

    @staticmethod
    def _try(call: Any, *args: Any) -> Outcome:
        try:
            call(*args)
        except (underway.InvalidArguments, underway.JobExists):
            return Outcome.ERROR  # refused before anything was written
        except Exception:
            return Outcome.UNKNOWN  # the store may or may not have committed it
        return Outcome.OK

    def settle(self, timeout: float) -> bool:
        """Wait until no job is pending or running; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.raw.unfinished() == 0:
                    return True
            except Exception:
                pass  # the store is still coming back from a fault
            time.sleep(0.2)
        return False

    def none_running(self, timeout: float) -> bool:
        """Wait until no job is `running`; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(r.status == "running" for r in self.raw.jobs().values()):
                return True
            time.sleep(0.05)
        return False

    def started(self, probes: Iterable[str], timeout: float) -> bool:
        """Wait until every probe's body has started; False if `timeout` passed first."""
        from ledger import Event, Tally, read

        wanted = set(probes)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if wanted <= set(Tally(read(self.ledger)).by_probe(Event.START)):
                return True
            time.sleep(0.05)
        return False

    def verdict(self, **policy: Any) -> Any:
        from verdict import judge

        return judge(self, **policy)

    def close(self) -> None:
        self.fleet.close()
        self.app.close()


def rescue_latencies(s: Scenario) -> dict[str, float]:
    """For each probe that was running in an incarnation when it was killed: seconds from the
    kill to the store taking the job back (its first LeaseExpired change after the kill)."""
    from ledger import Event, Tally, read

    from underway.stores.messages import ChangeFilter

    killed_at = {k.incarnation: k.at for k in s.fleet.kills}
    tally = Tally(read(s.ledger))
    done = {
        (e.probe, e.incarnation) for e in tally.entries if e.event in (Event.END, Event.STOPPED)
    }
    in_flight = {
        e.probe: killed_at[e.incarnation]
        for e in tally.entries
        if e.event is Event.START and e.incarnation in killed_at
        and (e.probe, e.incarnation) not in done
    }  # fmt: skip
    latencies: dict[str, float] = {}
    cursor = s.feed_start
    while batch := s.app.store.changes(cursor, ChangeFilter(), 1000):
        for change in batch:
            cursor = change.cursor
            probe = str(change.job.id)
            error = change.job.error
            if (
                probe in in_flight
                and probe not in latencies
                and error is not None
                and error.type == "LeaseExpired"
                and change.job.status.value != "running"
            ):
                seconds = change.at.timestamp() - in_flight[probe]
                if seconds >= 0:
                    latencies[probe] = seconds
    return {p: latencies.get(p, float("inf")) for p in in_flight}


#: what the `scenario` fixture gives a test: `scenario(name, **settings)` -> a Scenario. Test
#: modules import it from here, never from conftest: with several test folders in one run,
#: `conftest` is whichever folder's conftest was loaded last.
MakeScenario = Callable[..., Scenario]
