"""What this process learns about changes: job snapshots fanned out to `app.on_update`
subscribers, and wake-ups for this process's idle workers.

Everything that changes a job in this process (an enqueue, a claim, a report, an outcome, a
cancel, a rescue, a scheduler firing a slot) publishes the new snapshot here, and everything
that may have made work due wakes the workers. Live updates across processes, callbacks and
metrics hang here next.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from .model import Job

log = logging.getLogger("underway")

UpdateCallback = Callable[[Job], None]


class Events:
    """In-process fan-out of job snapshots and worker wake-ups. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[UpdateCallback, ...] = ()
        self._wakeups: tuple[Callable[[], None], ...] = ()

    # --- job snapshots ------------------------------------------------------------------------

    def subscribe(self, callback: UpdateCallback) -> Callable[[], None]:
        """Call `callback(job)` with every snapshot published from now on; returns a function
        that unsubscribes."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    @property
    def watched(self) -> bool:
        """Whether anyone listens: publishers skip building snapshots when nobody does."""
        return bool(self._subscribers)

    def publish(self, job: Job) -> None:
        """Hand one snapshot to every subscriber. A subscriber that raises is logged and does
        not stop the others, nor the change that was published."""
        for callback in self._subscribers:  # a tuple: subscribing meanwhile is safe
            try:
                callback(job)
            except Exception:
                log.exception("on_update callback %r failed for job %s", callback, job.id)

    def publish_all(self, jobs: Iterable[Job]) -> None:
        if self._subscribers:
            for job in jobs:
                self.publish(job)

    # --- worker wake-ups ----------------------------------------------------------------------

    def on_wake(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake()` whenever there may be new work; returns a function that removes it.
        `wake` must be safe to call from any thread."""
        with self._lock:
            self._wakeups = (*self._wakeups, wake)

        def remove() -> None:
            with self._lock:
                self._wakeups = tuple(w for w in self._wakeups if w is not wake)

        return remove

    def wake_workers(self) -> None:
        """Tell this process's workers there may be new work: a hint that saves them a poll,
        never needed for correctness (other processes' work reaches them through the store)."""
        for wake in self._wakeups:
            wake()
