"""What a running task receives: its job, ways to report, cancellation and a logger."""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from . import encoding
from .model import Job

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

    def __init__(self, job: Job) -> None:
        self.job = job
        self.logger = job_logger(job)
        self._cancel = threading.Event()
        self.cancel_reason: str | None = None
        self._lock = threading.Lock()
        self._progress = job.progress
        self._message = job.status_message
        self._payload_json: str | None = None
        self._version = 0  # bumped by every report; the worker remembers what it wrote
        #: the job's dependencies, as declared with `@app.task(deps={...})`
        self.deps: Any = {}

    # --- reporting ----------------------------------------------------------------------------

    def report_progress(self, fraction: float, message: str | None = None) -> None:
        """Record progress between 0.0 and 1.0, with an optional status message."""
        fraction = float(fraction)
        if not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress must be between 0.0 and 1.0, got {fraction}")
        with self._lock:
            self._progress = fraction
            if message is not None:
                self._message = encoding.clean_text(str(message))
            self._version += 1

    def report_status(self, message: str) -> None:
        """Set the job's status message (for example "downloading page 3")."""
        with self._lock:
            self._message = encoding.clean_text(str(message))
            self._version += 1

    def set_payload(self, value: Any) -> None:
        """Attach any JSON value to the job for clients to read while it runs."""
        payload_json = encoding.dumps(value, "payload")
        with self._lock:
            self._payload_json = payload_json
            self._version += 1

    # --- cancellation -------------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once someone asked to cancel this job, or the worker is stopping it.
        Sync tasks should check it between steps and return early."""
        return self._cancel.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Sleep up to `timeout` seconds, waking early on cancellation; returns `cancelled`."""
        return self._cancel.wait(timeout)

    def _request_cancel(self, reason: str) -> None:
        if not self._cancel.is_set():
            self.cancel_reason = reason
            self._cancel.set()

    # --- for the worker -----------------------------------------------------------------------

    def _snapshot(self) -> tuple[int, float | None, str | None, str | None]:
        with self._lock:
            return self._version, self._progress, self._message, self._payload_json
