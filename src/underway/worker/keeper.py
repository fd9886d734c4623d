"""The lease keeper: renews a worker's leases from an OS thread of its own while the worker's
event loop is blocked (docs/decisions/0025-lease-keeper.md).

Heartbeats are a coroutine on the worker's loop. An async task that calls blocking code
(`time.sleep`, a sync driver, a long computation) stops the loop, and with it the heartbeats:
the lease runs out, another worker rescues the job and runs it again while the first run goes
on. The keeper watches a pulse the loop sends every quarter heartbeat; once the loop has missed
a whole heartbeat it renews the worker's leases itself, every heartbeat, until the loop is
back, and logs which job blocked the loop. While the loop runs the keeper only watches: the
loop's own heartbeat stays the one that learns of cancels and lost leases.

What it cannot do: the keeper is Python, so it needs the GIL. A C call that holds the GIL
without a break (most pure-C loops) stops every thread of the process, the keeper with them;
a job whose C calls each hold it for less than a lease keeps its lease, one that holds it for
longer is taken back, as a frozen process is.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping

from ..context import job_logger
from ..stores import Store
from ..stores.messages import Lease, WorkerBeat
from .attempt import Attempt

log = logging.getLogger("underway.worker")

#: the name of the asyncio task that runs a job's attempt (how the keeper tells who blocks)
JOB_TASK_PREFIX = "underway-job-"


def job_task_name(job_id: uuid.UUID) -> str:
    return f"{JOB_TASK_PREFIX}{job_id}"


class LeaseKeeper:
    """Watches one worker's loop and keeps its leases while the loop is blocked.

    `leases()` lists the leases the worker holds; the keeper calls it from its own thread,
    only while the loop is blocked (so nothing changes them meanwhile)."""

    def __init__(
        self,
        beat: WorkerBeat,
        store: Store,
        heartbeat_seconds: float,
        leases: Callable[[], list[Lease]],
        running: Mapping[uuid.UUID, Attempt],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.beat = beat
        self.store = store
        self.heartbeat_seconds = heartbeat_seconds
        self.tick = heartbeat_seconds / 4
        self.leases = leases
        self.running = running
        self.clock = clock
        self.renewed_at = clock()  # the last renewal by anyone (the loop or the keeper)
        self._seen_at = clock()  # the loop's last pulse
        self._due = self._seen_at
        self._blocked_by: str | None = None  # the task blocking the loop, once warned of
        self._blocker: Attempt | None = None  # its attempt, if it is a job's
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pulse_handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="underway-lease-keeper", daemon=True)

    # --- on the loop --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pulse and the keeper's thread (call on the worker's loop)."""
        self._loop = asyncio.get_running_loop()
        self._pulse()
        self._thread.start()

    def stop(self) -> None:
        """Stop both; the thread ends within a tick (or after the renewal it is writing)."""
        self._stop.set()
        if self._pulse_handle is not None:
            self._pulse_handle.cancel()
        self._thread.join(self.tick * 2)

    def renewed(self) -> None:
        """The loop's heartbeat renewed the leases."""
        self.renewed_at = self.clock()

    def _pulse(self) -> None:
        now = self.clock()
        late = now - self._due
        self._seen_at = now
        if late >= self.heartbeat_seconds:
            self._back(late)
        assert self._loop is not None
        self._due = now + self.tick
        self._pulse_handle = self._loop.call_later(self.tick, self._pulse)

    def _back(self, blocked: float) -> None:
        culprit, attempt = self._blocked_by, self._blocker
        self._blocked_by = self._blocker = None
        message = "the event loop was blocked for %.1f s; the lease keeper renewed the leases"
        if attempt is not None:
            job_logger(attempt.job, log).warning(message + " (this job blocked it)", blocked)
        else:
            log.warning(message + (f" (blocked by {culprit})" if culprit else ""), blocked)

    # --- on the keeper's thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.tick):
                self.check()
        finally:
            self.store.close_thread()

    def check(self) -> None:
        """One look at the loop: renew the leases if they are overdue (the loop missed a
        heartbeat, or its heartbeat is slow: threads holding the GIL starve the loop and its
        store thread, and each hand-over of the GIL costs a heartbeat's renewal more than the
        keeper's own); say who blocks the loop, again when another job takes the block over."""
        now = self.clock()
        blocked = now - self._seen_at >= self.heartbeat_seconds
        if blocked:
            culprit = self._culprit()
            attempt = self._attempt_of(culprit)
            if self._blocked_by is None or (attempt is not None and attempt is not self._blocker):
                self._blocked_by, self._blocker = culprit, attempt
                self._warn(now - self._seen_at)
        if now - self.renewed_at >= self.heartbeat_seconds * (1 if blocked else 1.5):
            self.renewed_at = now
            self._renew(loud=blocked)

    def _renew(self, loud: bool) -> None:
        try:
            leases = self.leases()
        except RuntimeError:  # they changed as we read them: the loop is back
            return
        try:
            if leases:
                self.store.heartbeat(self.beat.id, leases)
            self.store.beat_worker(self.beat)
        except Exception as exc:
            # While the loop runs, its own heartbeat says that the store is failing.
            log.log(
                logging.ERROR if loud else logging.DEBUG,
                "the lease keeper could not renew %d leases: %s", len(leases), exc,
            )  # fmt: skip

    def _culprit(self) -> str:
        """The name of the asyncio task the loop is running now: the one blocking it."""
        task = asyncio.current_task(self._loop) if self._loop is not None else None
        return "the event loop's own callbacks" if task is None else task.get_name()

    def _warn(self, blocked: float) -> None:
        attempt = self._blocker
        advice = (
            "heartbeats go on from the lease keeper's thread; run blocking calls in a sync "
            "task or with asyncio.to_thread"
        )
        if attempt is not None:
            job_logger(attempt.job, log).warning(
                "the event loop is blocked by this job's async task (%.1f s so far): %s",
                blocked, advice,
            )  # fmt: skip
        else:
            log.warning(
                "the event loop is blocked (%.1f s so far), by %s or by other threads holding "
                "the GIL (sync tasks in long C calls): %s",
                blocked, self._blocked_by, advice,
            )  # fmt: skip

    def _attempt_of(self, task_name: str | None) -> Attempt | None:
        if task_name is None or not task_name.startswith(JOB_TASK_PREFIX):
            return None
        try:
            attempt = self.running.get(uuid.UUID(task_name.removeprefix(JOB_TASK_PREFIX)))
        except ValueError:
            return None
        # A sync job's task only waits for its thread: caught on the loop, it is not the one
        # blocking it (the loop is starved of the GIL instead).
        return attempt if attempt is not None and attempt.on_loop else None
