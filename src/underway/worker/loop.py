"""The worker's loop: claims due jobs while it has free slots, starts their attempts, and
supervises the rest (upkeep, the outcome writer, the scheduler), signals and a graceful stop.

One asyncio loop drives everything. Async tasks run on it; sync tasks run on a pool of
`concurrency` threads. Store calls run on the declared store threads (`StoreThreads`), so the
loop never blocks on I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, Protocol

from ..callbacks.deliverer import Deliverer
from ..context import job_logger
from ..errors import ConfigurationError, StoreError
from ..events import Events
from ..hooks import app_running
from ..ids import uuid7
from ..model import Job
from ..registry import Registry
from ..scheduler import Scheduler
from ..secret import Sealer
from ..settings import Settings
from ..stores import Store
from ..stores.messages import Claimed, Outcome, WorkerBeat
from ..threads import StoreThreads
from . import signals
from .attempt import Attempt, Runner
from .completion import completed_by_task
from .idle import Idle
from .keeper import job_task_name
from .outcomes import StopReason, finished_snapshot, stopped
from .suspects import Suspects
from .upkeep import Upkeep
from .writer import OutcomeWriter

log = logging.getLogger("underway.worker")


class Parts(Protocol):
    """What a worker is built from (an `underway.App` has them all)."""

    settings: Settings
    registry: Registry
    events: Events

    @property
    def store(self) -> Store: ...


class Worker:
    """Runs jobs from the app's store. Usually started by `app.run_worker()` or
    `underway worker`; tests may call `await worker.run()` or `await worker.drain()`, or use
    `underway.testing`."""

    def __init__(
        self,
        app: Parts,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        scheduler: bool | None = None,
    ) -> None:
        self.app = app  # handed to startup hooks and lifespans
        self.settings = app.settings
        self.registry = app.registry
        self.events = app.events
        self.store = app.store
        #: fire the app's schedules from this worker too (default: unless in burst mode)
        self.with_scheduler = (not burst) if scheduler is None else scheduler
        self.id = uuid7().hex  # one process incarnation
        self.queues: Sequence[str] | None = list(queues) if queues else None
        self.concurrency = self.settings.concurrency if concurrency is None else concurrency
        if (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise ConfigurationError(
                f"concurrency must be a whole number >= 1, got {self.concurrency!r}"
            )
        self.burst = burst
        self.log = logging.LoggerAdapter(log, {"worker_id": self.id})
        self.running: dict[uuid.UUID, Attempt] = {}  # outcome not yet known
        self.slots_used = 0
        self.processed = 0
        self._stopping = False
        self._stopped_hard = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._deliverer: Deliverer | None = None
        self._report_arrived: Callable[[], None] | None = None

    # --- public control -----------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming and let running jobs finish within the shutdown grace period;
        with `now=True` hand running jobs back at once. Safe from any thread."""
        if self._loop is None:
            self._stopping = True
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            self._loop.call_soon_threadsafe(self._request_stop, now)

    async def drain(self) -> int:
        """Run until no job is due, then return how many jobs were processed."""
        self.burst = True
        await self.run(handle_signals=False)
        return self.processed

    async def run(self, handle_signals: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        remove_wakeup = self.events.on_wake(self._wake_threadsafe)
        if handle_signals:
            signals.install(self._loop, self._on_signal)
        self.log.info(
            "worker %s started: queues=%s concurrency=%d%s",
            self.id, ",".join(self.queues) if self.queues else "all", self.concurrency,
            " burst" if self.burst else "",
        )  # fmt: skip
        try:
            async with app_running(self.registry, self.app):  # hooks before any job
                await self._serve()
        finally:
            if handle_signals:
                signals.remove(self._loop)
            remove_wakeup()

    # --- supervision --------------------------------------------------------------------------

    async def _serve(self) -> None:
        threads = StoreThreads(self.store)
        writer = OutcomeWriter(
            self.store, threads, self._written, max(30.0, self.settings.lease_seconds)
        )
        upkeep = Upkeep(
            beat_of(self), self.store, threads, self.settings, self.events, self.running, writer,
            self.wake,
        )  # fmt: skip
        self._report_arrived = upkeep.report_arrived
        grace = self.settings.shutdown_grace_seconds
        runner = Runner(
            self.registry, self.concurrency, self._hold_slot, grace, Sealer.of(self.settings)
        )
        assert self._wake is not None
        idle = Idle(self, threads, self._wake)
        side = [
            asyncio.create_task(coro, name=f"underway-{name}")
            for name, coro in (
                ("heartbeat", upkeep.heartbeats()),
                ("reporter", upkeep.reports()),
                ("pruner", upkeep.pruning()),
                ("cancels", upkeep.cancels()),
            )
        ]
        if self.settings.webhook_secret is not None:  # without it no job can have a callback
            self._deliverer = Deliverer(self.id, self.store, threads, self.settings)
            side.append(asyncio.create_task(self._deliverer.run(), name="underway-deliverer"))
        stop_scheduler = asyncio.Event()
        if self.with_scheduler:  # also for schedules put at run time, declared nowhere here
            scheduler = Scheduler(self.registry, self.store, self.events)
            side.append(
                asyncio.create_task(scheduler.run(stop_scheduler, threads), name="underway-sched")
            )
        writing = asyncio.create_task(writer.run(), name="underway-writer")
        try:
            await upkeep.beat()
            await upkeep.rescue()
            await self._dispatch(threads, runner, writer, idle, Suspects(self, threads))
            await self._shutdown()
        finally:
            stop_scheduler.set()
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await writer.close(writing)
            await upkeep.forget()
            threads.close()
            runner.close()
            self.log.info("worker %s stopped after %d jobs", self.id, self.processed)

    async def _dispatch(
        self, threads: StoreThreads, runner: Runner, writer: OutcomeWriter, idle: Idle,
        suspects: Suspects,
    ) -> None:  # fmt: skip
        failures, failing_since = 0, 0.0
        while not self._stopping:
            free = self.concurrency - self.slots_used
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    claimed = await suspects.claim(free)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    failing_since = failing_since if failures > 1 else time.monotonic()
                    failing = time.monotonic() - failing_since
                    # A daemon waits the outage out; a burst worker (a cron job, a CI step)
                    # must end, and say why, once claiming failed for a whole lease.
                    if self.burst and failing > self.settings.lease_seconds:
                        raise StoreError(
                            f"the burst worker gives up: claiming has failed for {failing:.0f} s "
                            f"({exc})"
                        ) from None
                    delay = min(self.settings.poll_seconds * 2 ** min(failures, 6), 30.0)
                    self.log.error("claiming failed (%s); retrying in %.1f s", exc, delay)
                    await idle.sleep(delay)
                    continue
                for item in claimed:
                    self._start(item, runner, writer, threads)
                if len(claimed) == free:
                    await asyncio.sleep(0)  # let the jobs start before claiming more
                    continue
            if free <= 0:
                await idle.wait_for_slot()
            elif not await idle.wait_for_work(bool(claimed), writer.holding):
                return  # burst mode and nothing left

    # --- one job ------------------------------------------------------------------------------

    def _start(
        self, claimed: Claimed, runner: Runner, writer: OutcomeWriter, threads: StoreThreads
    ) -> None:
        attempt = Attempt.of(claimed, self._report_arrived, self.store)
        self.running[claimed.job.id] = attempt
        self.slots_used += 1
        self.events.publish(claimed.job)
        attempt.handle = asyncio.create_task(
            self._execute(attempt, runner, writer, threads), name=job_task_name(claimed.job.id)
        )
        attempt.handle.add_done_callback(functools.partial(self._never_started, attempt, writer))

    async def _execute(
        self, attempt: Attempt, runner: Runner, writer: OutcomeWriter, threads: StoreThreads
    ) -> None:
        outcome = await runner.run(attempt)
        if attempt.completion.attempted:
            done = await completed_by_task(self.store, threads, attempt, outcome)
            if done is not None:
                self._settle_completed(attempt, done)
                return
        self._settle(attempt, outcome, writer)

    def _settle_completed(self, attempt: Attempt, job: Job) -> None:
        """The task's transaction completed the job: nothing more to write."""
        self.running.pop(attempt.job.id, None)
        self.processed += 1
        self._free_slot()
        self.events.publish(job)
        if job.callback_url and self._deliverer:
            self._deliverer.wake()  # its delivery was written with the completion

    def _never_started(self, attempt: Attempt, writer: OutcomeWriter, _task: object) -> None:
        # A task cancelled before its first step never runs `Runner.run`: settle it here, or
        # its slot and lease would be held for as long as the worker lives.
        if not attempt.entered:
            self._settle(attempt, stopped(attempt.claimed, attempt.stop_reason), writer)

    def _settle(self, attempt: Attempt, outcome: Outcome | None, writer: OutcomeWriter) -> None:
        """The job's attempt is over: queue its outcome for the writer, or free its slot."""
        self.running.pop(attempt.job.id, None)
        if outcome is None:
            self._free_slot()
            return
        # The job as published once the outcome lands: built only when someone listens.
        job = attempt.reported_job() if self.events.watched else attempt.job
        writer.add(attempt.with_reports(outcome), job)

    def _written(self, outcome: Outcome, job: Job, landed: bool) -> None:
        self.processed += 1
        self._free_slot()
        if not landed:
            job_logger(job, log).warning(
                "outcome %s discarded: the lease was lost to a newer attempt", outcome.status
            )
        elif self.events.watched:
            self.events.publish(finished_snapshot(job, outcome, datetime.now(UTC)))
        if landed and job.callback_url and self._deliverer and outcome.status.finished:
            self._deliverer.wake()  # its delivery was written with the outcome: send it now

    def _hold_slot(self, thread: Future[Any]) -> None:
        """Count a slot busy until a sync task's thread really returns."""
        loop = self._loop
        assert loop is not None
        self.slots_used += 1

        def returned(_thread: Future[Any]) -> None:
            # The worker may have stopped and closed its loop while the thread still ran.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._free_slot)

        thread.add_done_callback(returned)

    def _free_slot(self) -> None:
        self.slots_used -= 1
        self.wake()

    # --- stopping -----------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wake(self) -> None:
        """Wake the dispatch loop (on the loop's thread)."""
        if self._wake is not None:
            self._wake.set()

    def _request_stop(self, now: bool) -> None:
        if self._stopping and not now:
            return
        self._stopping = True
        if now:
            self._stopped_hard = True
            for attempt in list(self.running.values()):
                attempt.stop(StopReason.SHUTDOWN)
        self.wake()

    async def _shutdown(self) -> None:
        if not self.running:
            return
        handles = [a.handle for a in self.running.values() if a.handle is not None]
        grace = 0.0 if self._stopped_hard else self.settings.shutdown_grace_seconds
        self.log.info("stopping: %d running jobs have %.1f s to finish", len(handles), grace)
        if handles and grace > 0:
            await asyncio.wait(handles, timeout=grace)
        for attempt in list(self.running.values()):
            attempt.stop(StopReason.SHUTDOWN)
        if handles:
            await asyncio.wait(handles)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping:
            self.log.warning("%s again: handing running jobs back now", sig.name)
            self._request_stop(True)
        else:
            self.log.info(
                "%s: finishing running jobs (grace %.1f s); send again to stop now",
                sig.name, self.settings.shutdown_grace_seconds,
            )  # fmt: skip
            self._request_stop(False)

    def _wake_threadsafe(self) -> None:
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._wake.set)


def beat_of(worker: Worker) -> WorkerBeat:
    """What a worker says of itself to the registry at each heartbeat."""
    return WorkerBeat(
        worker.id, socket.gethostname(), os.getpid(),
        tuple(worker.queues) if worker.queues else None, worker.concurrency,
        max(worker.settings.lease_seconds, 3 * worker.settings.heartbeat_seconds),
    )  # fmt: skip
