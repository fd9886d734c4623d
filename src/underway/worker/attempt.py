"""One attempt of one job: the task run in its own world (async tasks on the event loop, sync
tasks on a thread), with its dependencies and timeout, ending in an `Outcome`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..completion import InTransaction
from ..context import Cancellation, Context, Reports
from ..dependencies import close_dependencies, dependencies_in_thread, open_dependencies
from ..errors import ConfigurationError, LeaseLost
from ..model import Job, JobError, Status, UnreadableArgs
from ..registry import Registry
from ..secret import Sealer, is_sealed_anywhere, scrub, sensitive_values
from ..stores import Store
from ..stores.messages import Claimed, Ending, Outcome, Report
from ..tasks import Task
from . import outcomes
from .outcomes import NotRunnable, StopReason, with_report

T = TypeVar("T")


@dataclass(eq=False)
class Attempt:
    """A claimed job while its attempt runs: what the worker holds to stop it and to read its
    reports."""

    claimed: Claimed
    ctx: Context
    reports: Reports
    cancellation: Cancellation
    completion: InTransaction
    handle: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None
    entered: bool = False  # Runner.run has started
    on_loop: bool = False  # an async task: its body runs on the worker's event loop
    winding_down: bool = False  # a cancelled sync task's grace: only a shutdown interrupts it
    written_version: int = 0  # the reports version the store has
    #: its arguments as the task got them (Secrets opened): what a failure's texts lose
    arguments: dict[str, Any] | None = None

    @classmethod
    def of(
        cls,
        claimed: Claimed,
        on_report: Callable[[], None] | None = None,
        store: Store | None = None,
    ) -> Attempt:
        reports, cancellation = Reports(claimed.job, on_report), Cancellation()
        completion = InTransaction(store, claimed.job.id, claimed.token)
        ctx = Context(claimed.job, reports, cancellation, completion)
        return cls(claimed, ctx, reports, cancellation, completion)

    @property
    def job(self) -> Job:
        return self.claimed.job

    def stop(self, reason: StopReason) -> None:
        """Stop the attempt from outside: async tasks are cancelled, sync ones see
        `ctx.cancelled`. The first reason wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.cancellation.request(reason.value)
        if self.winding_down and reason is StopReason.CANCEL:
            return  # the same cancel again, from a heartbeat: the grace goes on
        if self.handle is not None and not self.handle.done():
            self.handle.cancel()

    def unwritten_report(self) -> tuple[int, Report] | None:
        """The reports the store does not have yet, with their version."""
        snap = self.reports.snapshot()
        if snap.version == self.written_version:
            return None
        report = Report(
            self.job.id, self.claimed.token, snap.progress, snap.status_message, snap.payload_json
        )
        return snap.version, report

    def reported_job(self) -> Job:
        """The claimed job with the task's latest reports, written or not: what the store
        holds once the outcome lands."""
        snap = self.reports.snapshot()
        if snap.version == 0:
            return self.job
        return with_report(self.job, snap.progress, snap.status_message, snap.payload_json)

    def with_reports(self, outcome: Outcome) -> Outcome:
        """`outcome`, carrying the reports the store does not have yet."""
        snap = self.reports.snapshot()
        if snap.version == self.written_version:
            return outcome
        return outcome.with_reports(snap.progress, snap.status_message, snap.payload_json)


class Runner:
    """Runs attempts of the registry's tasks and decides their outcomes.

    `hold_slot(future)` is called when a sync task's thread outlives its attempt (a timeout or
    a cancel: threads cannot be killed), so the worker counts the slot busy until it returns.
    A cancelled sync task gets up to `cancel_grace` seconds to return (it sees
    `ctx.cancelled`) before its job is recorded cancelled, as an async task's cleanup runs
    before its outcome: whoever sees the job cancelled may rely on the cleanup being done.
    """

    def __init__(
        self,
        registry: Registry,
        concurrency: int,
        hold_slot: Callable[[Future[Any]], None],
        cancel_grace: float = 0.0,
        sealer: Sealer | None = None,
    ) -> None:
        self.registry = registry
        self.sealer = sealer or Sealer(None)
        self.concurrency = concurrency
        self.hold_slot = hold_slot
        self.cancel_grace = cancel_grace
        self.threads: ThreadPoolExecutor | None = None  # made on the first sync task

    async def run(self, attempt: Attempt) -> Outcome | None:
        """The attempt's outcome (None: nothing to write, the lease was lost). The task's own
        errors, whatever they are, become outcomes; this never raises them."""
        attempt.entered = True
        task = self.registry.tasks.get(attempt.job.task)
        try:
            if task is None:
                raise NotRunnable(
                    f"task {attempt.job.task!r} is not registered in this worker's app "
                    f"(registered: {', '.join(sorted(self.registry.tasks)) or 'none'}); "
                    "deploy a worker that has it, then retry the job"
                )
            result = await self._call(attempt, task)
            if attempt.stop_reason is None:
                return logged(attempt, outcomes.completed(attempt.claimed, task, result))
        except BaseException as exc:  # the task's own error, whatever it is
            if isinstance(exc, LeaseLost) and attempt.stop_reason is None:
                attempt.stop_reason = StopReason.LOST  # complete_in: another attempt owns it
            if attempt.stop_reason is None:
                # A CancelledError without a stop of ours is the task's own (an awaited future
                # someone else cancelled): an ordinary failure, not a hand-back to loop on.
                return logged(attempt, outcomes.failure(attempt.claimed, task, exc), exc)
        return logged(attempt, outcomes.stopped(attempt.claimed, attempt.stop_reason))

    def close(self) -> None:
        if self.threads is not None:
            self.threads.shutdown(wait=False, cancel_futures=True)

    async def _call(self, attempt: Attempt, task: Task[Any, Any]) -> Any:
        stored = attempt.job.args
        if isinstance(stored, UnreadableArgs):
            raise NotRunnable(f"stored arguments of {task.name} cannot be read: {stored.reason}")
        if not isinstance(stored, dict):  # another program's row: a list, a string, null
            raise NotRunnable(
                f"stored arguments of {task.name} are a JSON {_json_kind(stored)}, not an "
                "object of argument names"
            )
        if is_sealed_anywhere(stored):
            try:
                stored = self.sealer.open(stored)
            except ConfigurationError as exc:
                raise NotRunnable(f"task {task.name}: {exc}") from None
        attempt.arguments = stored
        try:
            args, kwargs = task.bind_stored(stored)
        except TypeError as exc:
            raise NotRunnable(
                f"stored arguments no longer fit {task.name}{task.signature}: {exc}"
            ) from None
        if task.wants_context:
            args = (attempt.ctx, *args)
        attempt.on_loop = task.is_async
        if not task.is_async:
            loop = asyncio.get_running_loop()
            call = functools.partial(_call_in_thread, attempt.ctx, task, args, kwargs, loop)
            return await self._run_sync(attempt, task, call)
        if not task.deps:
            return await _with_timeout(task.fn(*args, **kwargs), task.timeout)
        stack = contextlib.AsyncExitStack()
        try:
            attempt.ctx.deps = await open_dependencies(task.deps, attempt.ctx, stack)
        except BaseException:
            await stack.aclose()
            raise
        error: BaseException | None = None
        try:
            return await _with_timeout(task.fn(*args, **kwargs), task.timeout)
        except BaseException as exc:
            error = exc
            raise
        finally:
            await close_dependencies(stack, error)

    async def _run_sync(self, attempt: Attempt, task: Task[Any, Any], call: Callable[[], T]) -> T:
        if self.threads is None:
            self.threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="underway-task")
        thread_future = self.threads.submit(call)
        inner = asyncio.wrap_future(thread_future)
        # A thread that ends after we stopped waiting for it (timeout, cancel, shutdown) may
        # still raise, rightly: its error is read here, so asyncio never logs it as lost.
        inner.add_done_callback(_consume)
        # Shielded, so that cancelling this coroutine never cancels our view of the thread.
        waiting = asyncio.shield(inner)
        try:
            if task.timeout is None:
                return await waiting
            return await asyncio.wait_for(waiting, task.timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, TimeoutError):
                attempt.cancellation.request(StopReason.TIMEOUT.value)
            elif attempt.stop_reason is StopReason.CANCEL and self.cancel_grace > 0:
                attempt.winding_down = True
                # Its error is the task's own; a shutdown cuts the grace short.
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(inner), self.cancel_grace)
            if not thread_future.done():
                # The outcome is recorded now, but the slot stays busy until the thread
                # really returns, so `concurrency` always holds.
                self.hold_slot(thread_future)
            raise


def _call_in_thread(
    ctx: Context,
    task: Task[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    loop: asyncio.AbstractEventLoop,
) -> Any:
    """A sync task on its own thread, its dependencies opened and closed on that thread."""
    if not task.deps:
        return task.fn(*args, **kwargs)
    with dependencies_in_thread(task.deps, ctx, loop) as deps:
        ctx.deps = deps
        return task.fn(*args, **kwargs)


async def _with_timeout(coro: Any, timeout: float | None) -> Any:
    if not timeout:
        return await coro
    # A task of our own, named as the attempt's: on Python 3.11 `wait_for` would run the
    # coroutine in an anonymous one, and the lease keeper could not tell whose job blocks.
    current = asyncio.current_task()
    name = current.get_name() if current is not None else "underway-task"
    return await asyncio.wait_for(asyncio.create_task(coro, name=name), timeout)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def logged(
    attempt: Attempt, outcome: Outcome | None, exc: BaseException | None = None
) -> Outcome | None:
    """Say on the job's log line how its attempt ended; returns `outcome`, with the values of
    the job's secrets cut out of its error texts (before they are logged or stored)."""
    if outcome is not None and outcome.ending is Ending.COMPLETED:
        return outcome  # the common case says nothing
    # The values are found only for a failure: most attempts need none of this.
    sensitive = (
        sensitive_values(attempt.arguments)
        if outcome is not None and outcome.error is not None and attempt.arguments
        else []
    )
    if outcome is not None and outcome.error is not None and sensitive:
        error = outcome.error
        clean = JobError(
            scrub(error.message, sensitive),
            error.type,
            scrub(error.traceback, sensitive),
        )
        outcome = dataclasses.replace(outcome, error=clean)
    log, job = attempt.ctx.logger, attempt.job
    if outcome is None:
        log.warning("stopped: its lease was taken back by another worker")
    elif outcome.ending is Ending.HANDED_BACK:
        log.info("handed back: the worker is shutting down")
    elif outcome.ending is Ending.CANCELLED:
        if exc is None:
            log.info("cancelled")
        else:
            log.info("cancelled by the task: %s", outcome.error.message if outcome.error else "")
    elif outcome.ending is Ending.RETRY:
        message = outcome.error.message if outcome.error else ""
        log.warning(
            "attempt %d of %d failed, retrying in %.2f s: %s",
            job.attempt, job.max_attempts, outcome.retry_in, message,
        )  # fmt: skip
    elif outcome.status is Status.FAILED:
        why = "not retryable" if job.attempt < job.max_attempts else (
            f"attempt {job.attempt} of {job.max_attempts}"
        )  # fmt: skip
        log.error("failed (%s): %s", why, outcome.error.message if outcome.error else "")
    return outcome


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
