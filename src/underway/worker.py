"""The worker: claims due jobs while it has free slots, runs them, heartbeats their leases,
writes outcomes in batches and shuts down gracefully.

One asyncio loop drives everything. Async tasks run on it; sync tasks run on a thread pool of
`concurrency` threads. Store calls run on one dedicated thread, so the loop never blocks on I/O
and SQLite's per-thread connection stays put.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from . import encoding
from .context import Context, job_logger
from .errors import Cancel, InvalidArguments, PermanentError, Retry, StoreError
from .ids import uuid7
from .lifecycle import app_running, close_dependencies, open_dependencies
from .model import Job, JobError, Status
from .scheduler import Scheduler
from .stores.messages import Claimed, Lease, Outcome, Report

if TYPE_CHECKING:
    from .app import App
    from .tasks import Task

log = logging.getLogger("underway.worker")
T = TypeVar("T")

# Why a running job is being stopped from outside.
STOP_CANCEL = "cancel"  # someone called app.cancel
STOP_SHUTDOWN = "shutdown"  # the worker is stopping: hand the job back
STOP_LOST = "lost"
# Longest single wait for a store change; bounds how long a stopping worker waits for it.
WAIT_SLICE = 0.25  # our lease was taken back: another attempt owns the job now


@dataclass(eq=False)
class Running:
    claimed: Claimed
    ctx: Context
    handle: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    entered: bool = False  # _execute has started
    written_version: int = 0

    @property
    def job(self) -> Job:
        return self.claimed.job

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.ctx._request_cancel(reason)
        if self.handle is not None and not self.handle.done():
            self.handle.cancel()


class Worker:
    """Runs jobs from the app's store. Usually started by `app.run_worker()` or
    `underway worker`; tests may call `await worker.run()` or `await worker.drain()`."""

    def __init__(
        self,
        app: App,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        scheduler: bool | None = None,
    ) -> None:
        self.app = app
        #: fire the app's schedules from this worker too (default: unless in burst mode)
        self.with_scheduler = (not burst) if scheduler is None else scheduler
        self.settings = app.settings
        self.store = app.store
        self.id = uuid7().hex  # one process incarnation
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency or self.settings.concurrency
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.burst = burst
        self.log = logging.LoggerAdapter(log, {"worker_id": self.id})
        self._running: dict[uuid.UUID, Running] = {}  # outcome not yet known
        # outcomes buffered, and being written, with the job they end
        self._finishing: dict[uuid.UUID, tuple[Outcome, Job]] = {}
        self._writing: dict[uuid.UUID, tuple[Outcome, Job]] = {}
        self._slots_used = 0
        self._io = ThreadPoolExecutor(1, thread_name_prefix="underway-store")
        # Outcomes get a thread of their own where the store can write on two connections at
        # once (PostgreSQL), so a claim never waits behind a batch of completions. SQLite has
        # one writer anyway, and two of our own connections would only queue on its lock.
        self._io_out = (
            ThreadPoolExecutor(1, thread_name_prefix="underway-store-out")
            if getattr(self.store, "concurrent_writes", False)
            else self._io
        )
        self._waiter = ThreadPoolExecutor(1, thread_name_prefix="underway-wait")
        self._waiting: asyncio.Future[bool] | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._stopping = False
        self._stopped_hard = False
        self._closing = False  # the writer should finish what it holds and return
        self._unclaimable_rounds = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._flush_needed: asyncio.Event | None = None
        self.processed = 0

    # --- public control -----------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming and let running jobs finish within the shutdown grace period;
        with `now=True` hand running jobs back at once. Safe from any thread."""
        if self._loop is None:
            self._stopping = True
            return
        self._loop.call_soon_threadsafe(self._request_stop, now)

    async def drain(self) -> int:
        """Run until no job is due, then return how many jobs were processed."""
        self.burst = True
        await self.run(handle_signals=False)
        return self.processed

    async def run(self, handle_signals: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._flush_needed = asyncio.Event()
        remove_wakeup = self.app._add_wakeup(self._wake_threadsafe)
        if handle_signals:
            self._install_signal_handlers()
        self.log.info(
            "worker %s started: queues=%s concurrency=%d%s",
            self.id,
            ",".join(self.queues) if self.queues else "all",
            self.concurrency,
            " burst" if self.burst else "",
        )
        try:
            async with app_running(self.app):  # startup hooks and lifespans before any job
                await self._serve()
        finally:
            if handle_signals:
                self._remove_signal_handlers()
            remove_wakeup()

    async def _serve(self) -> None:
        side = [
            asyncio.create_task(coro, name=name)
            for name, coro in (
                ("underway-heartbeat", self._heartbeat_loop()),
                ("underway-writer", self._writer_loop()),
                ("underway-reporter", self._report_loop()),
                ("underway-pruner", self._prune_loop()),
            )
        ]
        if self.with_scheduler and self.app.schedules:
            stop = asyncio.Event()
            side.append(
                asyncio.create_task(Scheduler(self.app).run(stop), name="underway-scheduler")
            )
        try:
            await self._rescue()
            await self._dispatch_loop()
            await self._shutdown()
        finally:
            writer = side.pop(1)
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await self._close_writer(writer)
            # Threads that end must not leave their store connections open behind them.
            release = getattr(self.store, "close_thread", None)
            for executor in {self._io, self._io_out, self._waiter}:
                if release is not None:
                    executor.submit(release)
            self._io.shutdown(wait=True)
            self._io_out.shutdown(wait=True)
            self._waiter.shutdown(wait=True)  # at most one short wait slice
            if self._threads is not None:
                self._threads.shutdown(wait=False, cancel_futures=True)
            self.log.info("worker %s stopped after %d jobs", self.id, self.processed)

    # --- the dispatch loop --------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        failures = 0
        while not self._stopping:
            free = self.concurrency - self._slots_used
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    claimed = await self._call(self.store.claim, self.id, self.queues, free)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    delay = min(self.settings.poll_seconds * 2 ** min(failures, 6), 30.0)
                    self.log.error("claiming failed (%s); retrying in %.1f s", exc, delay)
                    await self._sleep(delay)
                    continue
                for item in claimed:
                    self._start(item)
                if len(claimed) == free:
                    await asyncio.sleep(0)  # let the jobs start before claiming more
                    continue
            if free <= 0:
                await self._wait_for_slot()
            elif not await self._wait_for_work(bool(claimed)):
                return  # burst mode and nothing left

    async def _wait_for_slot(self) -> None:
        assert self._wake is not None
        self._wake.clear()
        while self._slots_used >= self.concurrency and not self._stopping:
            await self._wake.wait()
            self._wake.clear()
        # Jobs that finish together wake us together: give them one turn of the loop to free
        # their slots so the next claim fetches a batch instead of one job.
        await asyncio.sleep(0)

    async def _wait_for_work(self, claimed_any: bool) -> bool:
        """Sleep until new work may be there. False when a burst worker should stop."""
        assert self._wake is not None and self._loop is not None
        self._wake.clear()  # before the query: a stop or enqueue during it must still count
        if self._stopping:  # a stop that came before the clear
            return True
        try:
            due = await self._call(self.store.next_due, self.queues)
        except Exception as exc:
            self.log.error("checking for due jobs failed: %s", exc)
            due = None
        poll = self.settings.poll_seconds
        idle = self._slots_used == 0 and not self._finishing
        # Due jobs that two claims in a row could not take are not ours to take: their queue
        # is at its concurrency limit or another worker holds them.
        stuck = due is not None and due <= 0 and not claimed_any
        self._unclaimable_rounds = self._unclaimable_rounds + 1 if stuck else 0
        if self.burst and idle and (due is None or due > poll or self._unclaimable_rounds >= 2):
            return False
        timeout = poll if due is None else min(max(due, 0.0), poll)
        if timeout <= 0:
            if claimed_any:
                return True
            # Due jobs that we could not claim: another worker is taking them, or their queue
            # is at its concurrency limit. Wait for a change instead of spinning on them.
            if self._unclaimable_rounds < 2:
                return True  # claim once more before taking them for unclaimable
            timeout = poll
        await self._wait_for_change(timeout)
        return True

    async def _wait_for_change(self, timeout: float) -> None:
        """Return when the store changed, something in this process woke us, or `timeout`
        passed. The store's change wait blocks a thread of its own, in short slices so that a
        stopping worker never waits long for that thread; a slice still running from the last
        round is reused (its change would be news to us too)."""
        assert self._wake is not None and self._loop is not None
        deadline = time.monotonic() + timeout
        woken: asyncio.Future[Any] = asyncio.ensure_future(self._wake.wait())
        try:
            while not woken.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                if self._waiting is None or self._waiting.done():
                    self._waiting = self._loop.run_in_executor(
                        self._waiter, self.store.wait_for_change, min(remaining, WAIT_SLICE)
                    )
                either: set[asyncio.Future[Any]] = {self._waiting, woken}
                await asyncio.wait(either, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if not self._waiting.done():
                    continue
                if self._waiting.exception() is not None:
                    self.log.error("waiting for new jobs failed: %s", self._waiting.exception())
                    await asyncio.sleep(min(remaining, 1.0))
                    return
                if self._waiting.result():
                    return  # the store changed: look for work
        finally:
            woken.cancel()

    def _start(self, claimed: Claimed) -> None:
        run = Running(claimed, Context(claimed.job))
        self._running[claimed.job.id] = run
        self._slots_used += 1
        run.handle = asyncio.create_task(self._execute(run))
        run.handle.add_done_callback(lambda _t: self._settle_if_never_started(run))
        if self.app._subscribers:
            self.app._publish(claimed.job)

    # --- running one job ----------------------------------------------------------------------

    async def _execute(self, run: Running) -> None:
        run.entered = True
        job = run.job
        task = self.app.tasks.get(job.task)
        outcome: Outcome | None
        try:
            if task is None:
                raise NotRunnable(
                    f"task {job.task!r} is not registered in this worker's app "
                    f"(registered: {', '.join(sorted(self.app.tasks)) or 'none'}); "
                    "deploy a worker that has it, then retry the job"
                )
            outcome = await self._call_task(run, task)
        except asyncio.CancelledError as exc:
            if run.stop_reason is not None:
                outcome = self._stopped_outcome(run)
            else:
                # The task's own code was cancelled (an awaited future someone else cancelled):
                # an ordinary failure that spends an attempt, not a hand-back to loop on.
                outcome = self._failure(run, task, exc)
        except TimeoutError as exc:
            if run.stop_reason is not None:
                outcome = self._stopped_outcome(run)
            else:
                outcome = self._failure(run, task, exc)
        except BaseException as exc:  # the task's own error, whatever it is
            outcome = (
                self._stopped_outcome(run) if run.stop_reason else self._failure(run, task, exc)
            )
        self._settle(run, outcome)

    def _settle(self, run: Running, outcome: Outcome | None) -> None:
        """The job's attempt is over: queue its outcome for the writer, or free its slot."""
        self._running.pop(run.job.id, None)
        if outcome is None:
            self._free_slot()
            return
        self._finishing[run.job.id] = (self._with_reports(run, outcome), run.job)
        assert self._flush_needed is not None
        self._flush_needed.set()

    def _settle_if_never_started(self, run: Running) -> None:
        """A task cancelled before its first step never runs `_execute`'s handlers: settle
        it here, or its slot and lease would be held for as long as the worker lives."""
        if not run.entered:
            self._settle(run, self._stopped_outcome(run))

    async def _call_task(self, run: Running, task: Task[Any, Any]) -> Outcome | None:
        job = run.job
        try:
            args, kwargs = task.bind_stored(job.args)
        except TypeError as exc:
            raise NotRunnable(
                f"stored arguments no longer fit {task.name}{task.signature}: {exc}"
            ) from None
        if task.wants_context:
            args = (run.ctx, *args)
        if task.deps:
            result = await self._invoke_with_deps(run, task, args, kwargs)
        else:
            result = await self._invoke(run, task, args, kwargs)
        if run.stop_reason is not None:
            return self._stopped_outcome(run)
        try:
            result_json = encoding.dumps(result, "the return value")
        except InvalidArguments as exc:
            raise NotRunnable(
                f"task {task.name} returned a value that is not JSON: {exc}"
            ) from None
        return Outcome.completed(job.id, run.claimed.token, result_json)

    async def _invoke(
        self, run: Running, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if task.is_async:
            coro = task.fn(*args, **kwargs)
            return await (asyncio.wait_for(coro, task.timeout) if task.timeout else coro)
        return await self._run_sync(run, task, functools.partial(task.fn, *args, **kwargs))

    async def _invoke_with_deps(
        self, run: Running, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The seeds' "scope per execution": open the task's dependencies, run it, close them
        (telling them about its error). Failing to open or close fails the attempt."""
        stack = contextlib.AsyncExitStack()
        try:
            run.ctx.deps = await open_dependencies(task.deps, run.ctx, stack)
        except BaseException:
            await stack.aclose()
            raise
        error: BaseException | None = None
        try:
            return await self._invoke(run, task, args, kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            await close_dependencies(stack, error)

    async def _run_sync(self, run: Running, task: Task[Any, Any], call: Callable[[], T]) -> T:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="underway-task")
        loop = self._loop
        assert loop is not None
        thread_future = self._threads.submit(call)
        # Shielded, so that cancelling this coroutine never cancels our view of the thread.
        waiting = asyncio.shield(asyncio.wrap_future(thread_future, loop=loop))
        try:
            if task.timeout is None:
                return await waiting
            return await asyncio.wait_for(waiting, task.timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, TimeoutError):
                run.ctx._request_cancel("timeout")
            if not thread_future.done():
                # A thread cannot be killed: the outcome is recorded now, but the slot stays
                # busy until the thread really returns, so `concurrency` always holds.
                self._slots_used += 1
                thread_future.add_done_callback(
                    lambda _f: loop.call_soon_threadsafe(self._free_slot)
                )
            raise

    def _stopped_outcome(self, run: Running) -> Outcome | None:
        job, token = run.job, run.claimed.token
        if run.stop_reason == STOP_CANCEL:
            run.ctx.logger.info("cancelled")
            return Outcome.cancelled(
                job.id, token, JobError("cancelled while running", "Cancelled")
            )
        if run.stop_reason == STOP_SHUTDOWN:
            run.ctx.logger.info("handed back: the worker is shutting down")
            return Outcome.handed_back(job.id, token)
        if run.stop_reason == STOP_LOST:
            run.ctx.logger.warning("stopped: its lease was taken back by another worker")
            return None
        # Cancelled without a reason we set: the loop itself is going away.
        return Outcome.handed_back(job.id, token)

    def _failure(self, run: Running, task: Task[Any, Any] | None, exc: BaseException) -> Outcome:
        job, token = run.job, run.claimed.token
        if isinstance(exc, Cancel):
            run.ctx.logger.info("cancelled by the task: %s", exc.reason)
            reason = encoding.clean_text(exc.reason)
            return Outcome.cancelled(job.id, token, JobError(reason, "Cancel"))
        if isinstance(exc, TimeoutError) and task is not None and task.timeout:
            error = JobError(
                f"timed out after {task.timeout:g} s (the task's timeout)",
                "Timeout",
                _format_tb(exc),
            )
        else:
            error = JobError(_describe(exc), type(exc).__name__, _format_tb(exc))
        permanent = (
            task is None
            or isinstance(exc, (PermanentError, NotRunnable))
            or (isinstance(exc, task.no_retry_on) if task.no_retry_on else False)
        )
        if not permanent and job.attempt < job.max_attempts:
            assert task is not None
            if isinstance(exc, Retry) and exc.delay is not None:
                delay = exc.delay
            else:
                delay = task.retry.delay(job.attempt)
            run.ctx.logger.warning(
                "attempt %d of %d failed, retrying in %.2f s: %s",
                job.attempt,
                job.max_attempts,
                delay,
                error.message,
            )
            return Outcome.retry_later(job.id, token, error, delay)
        why = "not retryable" if permanent else f"attempt {job.attempt} of {job.max_attempts}"
        run.ctx.logger.error("failed (%s): %s", why, error.message)
        return Outcome.failed(job.id, token, error)

    def _with_reports(self, run: Running, outcome: Outcome) -> Outcome:
        version, progress, message, payload = run.ctx._snapshot()
        if version == run.written_version:
            return outcome
        return outcome.with_reports(progress, message, payload)

    def _free_slot(self) -> None:
        self._slots_used -= 1
        if self._wake is not None:
            self._wake.set()

    # --- writing outcomes ---------------------------------------------------------------------

    async def _writer_loop(self) -> None:
        assert self._flush_needed is not None
        while True:
            await self._flush_needed.wait()
            self._flush_needed.clear()
            await self._write_outcomes()
            if self._closing and not self._finishing:
                return

    async def _close_writer(self, writer: asyncio.Task[None]) -> None:
        """Let the writer finish what it holds: cancelling it mid-write would drop outcomes
        (a completion lost means the job runs again). If the store stays unreachable, give
        up after a while: the leases expire and the jobs are rescued, so nothing is lost."""
        assert self._flush_needed is not None
        self._closing = True
        self._flush_needed.set()
        try:
            await asyncio.wait_for(writer, timeout=max(30.0, self.settings.lease_seconds))
        except TimeoutError:
            self.log.error(
                "could not write %d outcomes before stopping; their jobs will be rescued once "
                "their leases expire",
                len(self._finishing) + len(self._writing),
            )

    async def _write_outcomes(self) -> None:
        """Write every buffered outcome in one transaction. Outcomes that pile up while a write
        runs go into the next one, so batches grow with load and cost nothing when idle."""
        if not self._finishing:
            return
        batch, self._finishing = self._finishing, {}
        self._writing = batch
        failures = 0
        while True:
            try:
                outcomes = [o for o, _ in batch.values()]
                landed = await self._loop_call(self._io_out, self.store.finish, outcomes)
                break
            except asyncio.CancelledError:
                self._finishing = {**batch, **self._finishing}  # keep them for a later write
                self._writing = {}
                raise
            except Exception as exc:
                failures += 1
                if not isinstance(exc, StoreError) and failures >= 3:
                    # Not an outage but the same data error again: one outcome the store
                    # cannot take must not hold up every other job of this worker.
                    landed = await self._write_one_by_one(batch)
                    break
                delay = min(0.1 * 2**failures, 10.0)
                self.log.error(
                    "writing %d outcomes failed (%s); retrying in %.1f s", len(batch), exc, delay
                )
                await asyncio.sleep(delay)
        self._writing = {}
        publish = bool(self.app._subscribers)
        for outcome, job in batch.values():
            self.processed += 1
            self._free_slot()
            if outcome.job_id not in landed:
                job_logger(job, log).warning(
                    "outcome %s discarded: the lease was lost to a newer attempt", outcome.status
                )
            elif publish:
                self.app._publish(_finished_snapshot(job, outcome))

    async def _write_one_by_one(
        self, batch: dict[uuid.UUID, tuple[Outcome, Job]]
    ) -> set[uuid.UUID]:
        """Write outcomes singly; one the store refuses becomes a failure that says why."""
        landed: set[uuid.UUID] = set()
        for outcome, job in batch.values():
            try:
                landed |= await self._loop_call(self._io_out, self.store.finish, [outcome])
                continue
            except Exception as exc:
                error = JobError(
                    f"the store refused this job's outcome ({outcome.status}): "
                    f"{encoding.clean_text(str(exc))[:2000]}",
                    "OutcomeNotStored",
                )
                job_logger(job, log).error("%s", error.message)
            failed = Outcome.failed(outcome.job_id, outcome.token, error)
            try:
                landed |= await self._loop_call(self._io_out, self.store.finish, [failed])
            except Exception as exc:  # give up: the lease expires and the job is rescued
                job_logger(job, log).error("could not record the failure either: %s", exc)
        return landed

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.progress_flush_seconds)
            dirty: list[tuple[Running, int, Report]] = []
            for run in list(self._running.values()):
                version, progress, message, payload = run.ctx._snapshot()
                if version != run.written_version:
                    report = Report(run.job.id, run.claimed.token, progress, message, payload)
                    dirty.append((run, version, report))
            if not dirty:
                continue
            try:
                await self._call(self.store.report, [report for _, _, report in dirty])
            except Exception as exc:
                self.log.error("writing progress of %d jobs failed: %s", len(dirty), exc)
                continue
            publish = bool(self.app._subscribers)
            for run, version, report in dirty:
                run.written_version = version
                if publish:
                    self.app._publish(
                        dataclasses.replace(
                            run.job,
                            progress=report.progress,
                            status_message=report.status_message,
                            payload=encoding.loads(report.payload_json),
                        )
                    )

    # --- leases -------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            await self._heartbeat()
            await self._rescue()

    async def _heartbeat(self) -> None:
        leases = [Lease(r.job.id, r.claimed.token) for r in self._running.values()]
        leases += [
            Lease(o.job_id, o.token)
            for o, _ in (*self._finishing.values(), *self._writing.values())
        ]
        if not leases:
            return
        try:
            result = await self._call(self.store.heartbeat, self.id, leases)
        except Exception as exc:
            self.log.error("heartbeat for %d leases failed: %s", len(leases), exc)
            return
        # The answer is about the leases we sent; a job may have been claimed again since
        # (a retry due at once), and the newer attempt must not be stopped for the old one.
        sent = {lease.job_id: lease.token for lease in leases}
        for job_ids, reason in ((result.cancel_requested, STOP_CANCEL), (result.lost, STOP_LOST)):
            for job_id in job_ids:
                run = self._running.get(job_id)
                if run is not None and run.claimed.token == sent.get(job_id):
                    run.stop(reason)

    async def _rescue(self) -> None:
        try:
            rescued = await self._call(self.store.rescue, self.settings.max_rescues)
        except Exception as exc:
            self.log.error("rescuing expired leases failed: %s", exc)
            return
        for job in rescued:
            job_logger(job, log).warning(
                "taken back from a worker that stopped heartbeating: now %s", job.status
            )
            if self.app._subscribers:
                self.app._publish(job)
        if rescued and self._wake is not None:
            self._wake.set()

    # --- retention ----------------------------------------------------------------------------

    async def _prune_loop(self) -> None:
        interval = self.settings.prune_interval_seconds
        if interval <= 0:
            return
        # Spread workers that started together over the interval.
        await asyncio.sleep(random.uniform(interval / 10, interval))
        while True:
            await self._prune()
            await asyncio.sleep(interval)

    async def _prune(self) -> None:
        s = self.settings
        try:
            # On a thread of its own: a big first prune must not hold up heartbeats.
            deleted = await asyncio.to_thread(
                self.store.prune, s.retention_seconds, [Status.COMPLETED, Status.CANCELLED]
            )
            if s.failed_retention_seconds > 0:
                deleted += await asyncio.to_thread(
                    self.store.prune, s.failed_retention_seconds, [Status.FAILED]
                )
        except Exception as exc:
            self.log.error("pruning old jobs failed: %s", exc)
            return
        if deleted:
            self.log.info("pruned %d finished jobs", deleted)

    # --- shutdown -----------------------------------------------------------------------------

    def _request_stop(self, now: bool) -> None:
        if self._stopping and not now:
            return
        self._stopping = True
        if now:
            self._stopped_hard = True
            for run in list(self._running.values()):
                run.stop(STOP_SHUTDOWN)
        if self._wake is not None:
            self._wake.set()

    async def _shutdown(self) -> None:
        if not self._running:
            return
        handles = [r.handle for r in self._running.values() if r.handle is not None]
        grace = 0.0 if self._stopped_hard else self.settings.shutdown_grace_seconds
        self.log.info("stopping: %d running jobs have %.1f s to finish", len(handles), grace)
        if handles and grace > 0:
            await asyncio.wait(handles, timeout=grace)
        for run in list(self._running.values()):
            run.stop(STOP_SHUTDOWN)
        if handles:
            await asyncio.wait(handles)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        assert self._loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._loop is None:
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping:
            self.log.warning("%s again: handing running jobs back now", sig.name)
            self._request_stop(True)
        else:
            self.log.info(
                "%s: finishing running jobs (grace %.1f s); send again to stop now",
                sig.name,
                self.settings.shutdown_grace_seconds,
            )
            self._request_stop(False)

    # --- helpers ------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._loop_call(self._io, fn, *args)

    async def _loop_call(self, executor: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(executor, fn, *args)

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _wake_threadsafe(self) -> None:
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._wake.set)


class NotRunnable(Exception):
    """The job cannot run here at all (unknown task, arguments that no longer fit)."""


def _describe(exc: BaseException) -> str:
    text = encoding.clean_text(str(exc))
    if isinstance(exc, NotRunnable):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _format_tb(exc: BaseException) -> str:
    return encoding.clean_text("".join(traceback.format_exception(exc))[-20_000:])


def _finished_snapshot(job: Job, outcome: Outcome) -> Job:
    """The job as the store now holds it, built locally so publishing costs no query."""
    pending = outcome.status is Status.PENDING
    changes: dict[str, Any] = {
        "status": outcome.status,
        "result": encoding.loads(outcome.result_json),
        "attempt": job.attempt if outcome.spend_attempt else job.attempt - 1,
        "completed_at": None if pending else datetime.now(UTC),
    }
    if outcome.error is not None:
        changes["error"] = outcome.error
    if pending:
        changes["run_at"] = datetime.now(UTC) + timedelta(seconds=outcome.retry_in or 0)
        changes["started_at"] = None
    if outcome.report_dirty:
        changes.update(progress=outcome.progress, status_message=outcome.status_message)
        if outcome.payload_json is not None:
            changes["payload"] = encoding.loads(outcome.payload_json)
    return dataclasses.replace(job, **changes)
