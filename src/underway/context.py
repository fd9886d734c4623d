"""What a running task receives: its job, ways to report, cancellation and a logger."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import encoding
from .completion import InTransaction
from .errors import InvalidArguments
from .model import Job
from .stores.messages import Outcome

logger = logging.getLogger("underway.task")


class JobLogger(logging.LoggerAdapter[logging.Logger]):
    """Adds the job id, task and attempt to every line, as text and as record attributes."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"[{extra['job_id']} {extra['task']}#{extra['attempt']}] {msg}", kwargs


def job_logger(job: Job, base: logging.Logger = logger) -> JobLogger:
    return JobLogger(base, {"job_id": str(job.id), "task": job.task, "attempt": job.attempt})


class Context:
    """Given to a task whose first parameter is `ctx` (or annotated `Context`).

    >>> @app.task()
    ... def import_rows(ctx: underway.Context, path: str) -> int:
    ...     for i, row in enumerate(rows):
    ...         if ctx.cancelled:
    ...             break
    ...         ctx.report_progress(i / len(rows), f"row {i}")
    ...     return len(rows)

    Reports are cheap: they are kept in memory and written at most every
    `progress_flush_seconds`; the last one always lands with the job's outcome.
    """

    def __init__(
        self,
        job: Job,
        reports: Reports | None = None,
        cancellation: Cancellation | None = None,
        completion: InTransaction | None = None,
    ) -> None:
        self.job = job
        self.logger = job_logger(job)
        self._reports = reports or Reports(job)
        self._cancellation = cancellation or Cancellation()
        self._completion = completion or InTransaction(None, job.id, "")
        #: the job's dependencies, as declared with `@app.task(deps={...})`
        self.deps: Any = {}

    # --- reporting ----------------------------------------------------------------------------

    def report_progress(self, fraction: float, message: str | None = None) -> None:
        """Record progress between 0.0 and 1.0, with an optional status message."""
        fraction = float(fraction)
        if not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
            raise InvalidArguments(f"progress must be between 0.0 and 1.0, got {fraction}")
        self._reports.progress(fraction, None if message is None else str(message))

    def report_status(self, message: str) -> None:
        """Set the job's status message (for example "downloading page 3")."""
        self._reports.status(str(message))

    def set_payload(self, value: Any) -> None:
        """Attach any JSON value to the job for clients to read while it runs."""
        self._reports.payload(encoding.dumps(value, "payload"))

    # --- completing in the task's own transaction (PostgreSQL) --------------------------------

    def complete_in(self, connection: Any, result: Any = None) -> None:
        """Complete this job inside your own open transaction on `connection` (a psycopg
        Connection or Cursor on the store's database), so your effect and the completion
        commit together or not at all. Call it last, just before the commit:

        >>> with conn.transaction():
        ...     deduct_coins(conn, user, 1)  # your own statements on `conn`
        ...     ctx.complete_in(conn, result={"charged": 1})

        It writes what the worker's own completion writes (status, `result`, the latest
        reports, the attempt's history, the change feed, the counters), guarded by this
        attempt's lease. If the lease was lost it raises `LeaseLost`: let it propagate so the
        transaction rolls back. Once the task returns the worker sees the job completed and
        writes nothing more; if the transaction rolled back, the task's own outcome applies.
        Only the PostgreSQL store can do this; on SQLite it raises `ConfigurationError`
        naming the alternative (docs/decisions/0019-complete-in-transaction.md)."""
        self._completion.write(connection, self._completed(result))

    async def complete_in_async(self, connection: Any, result: Any = None) -> None:
        """`complete_in` on a psycopg AsyncConnection or AsyncCursor."""
        await self._completion.write_async(connection, self._completed(result))

    def _completed(self, result: Any) -> Outcome:
        outcome = self._completion.outcome(encoding.dumps(result, "the result"))
        snap = self._reports.snapshot()
        if snap.version == 0:
            return outcome
        return outcome.with_reports(snap.progress, snap.status_message, snap.payload_json)

    # --- cancellation -------------------------------------------------------------------------

    @property
    def slot(self) -> datetime | None:
        """The schedule slot this run is for: the time the rule made it due, the same on a
        retry and when a scheduler fires a missed slot late after downtime. None when the job
        was not fired for a slot (enqueued, or `trigger_schedule`, which runs outside them)."""
        return self.job.slot

    @property
    def cancelled(self) -> bool:
        """True once someone asked to cancel this job, or the worker is stopping it.
        Sync tasks should check it between steps and return early."""
        return self._cancellation.is_set()

    @property
    def cancel_reason(self) -> str | None:
        """Why the job is being stopped ("cancel", "shutdown", "timeout", "lost"), once it is."""
        return self._cancellation.reason

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Sleep up to `timeout` seconds, waking early on cancellation; returns `cancelled`."""
        return self._cancellation.wait(timeout)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The latest reports of a running job; `version` grows with every report."""

    version: int
    progress: float | None
    status_message: str | None
    payload_json: str | None


class Reports:
    """A running job's latest progress, status message and payload, written by the task (any
    thread) and read by the worker, which writes them to the store coalesced."""

    def __init__(self, job: Job, on_report: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot(0, job.progress, job.status_message, None)
        #: told after every report (from the task's thread), so the worker writes it soon
        self._on_report = on_report or _nothing

    def progress(self, fraction: float, message: str | None) -> None:
        with self._lock:
            s = self._snapshot
            text = s.status_message if message is None else encoding.clean_text(message)
            self._snapshot = Snapshot(s.version + 1, fraction, text, s.payload_json)
        self._on_report()

    def status(self, message: str) -> None:
        with self._lock:
            s = self._snapshot
            text = encoding.clean_text(message)
            self._snapshot = Snapshot(s.version + 1, s.progress, text, s.payload_json)
        self._on_report()

    def payload(self, payload_json: str) -> None:
        with self._lock:
            s = self._snapshot
            self._snapshot = Snapshot(s.version + 1, s.progress, s.status_message, payload_json)
        self._on_report()

    def snapshot(self) -> Snapshot:
        return self._snapshot  # frozen, replaced whole: no lock needed to read


class Cancellation:
    """A running job's stop request: set once, with the first reason, from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)


def _nothing() -> None:
    pass
