"""Helpers for the in-process worker tests (imported by conftest.py and the test modules).

- `FAST`: settings with short timings, so a worker notices work, cancel requests and stops
  within a fraction of a second.
- `drain_app(app, concurrency=1)`: a burst worker in this thread until nothing is due.
- `WorkerThread(app, ...)`: a non-burst worker on a thread of its own, stopped with `stop()`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

import underway

FAST: dict[str, Any] = {
    "poll_seconds": 0.05,
    "heartbeat_seconds": 0.1,
    "lease_seconds": 1.0,
    "progress_flush_seconds": 0.05,
    "shutdown_grace_seconds": 0.2,
}


def drain_app(app: underway.App, concurrency: int = 1) -> int:
    """Run a burst worker until no job is due; returns how many jobs it processed."""
    return asyncio.run(underway.Worker(app, concurrency=concurrency, burst=True).drain())


class WorkerThread:
    """An `underway.Worker` running `run(handle_signals=False)` on a thread of its own."""

    def __init__(
        self, app: underway.App, concurrency: int = 1, queues: Sequence[str] | None = None
    ) -> None:
        self.worker = underway.Worker(app, queues=queues, concurrency=concurrency)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self.worker.run(handle_signals=False))
        except BaseException as exc:  # reported by join()
            self.error = exc

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, *, now: bool = False, timeout: float = 10.0) -> None:
        """Ask the worker to stop and wait for its thread to end."""
        self.worker.stop(now=now)
        self.join(timeout)

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the thread; fail the test if it hangs or the worker raised."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            pytest.fail(f"the worker thread did not stop within {timeout} s")
        if self.error is not None:
            raise AssertionError(f"the worker raised {self.error!r}") from self.error
