"""App: the registry of tasks plus the store, and the facade to enqueue, inspect and control
jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from .context import Context
from .errors import ConfigurationError, JobNotFound, JobTimeout, UnknownTask
from .lifecycle import app_running
from .model import Job, Page, QueueInfo, RunStats, ScheduleInfo, Stats, Status, View
from .retry import Backoff
from .schedule import CatchUp, Cron, Every, Overlap, Rule, Schedule, plan
from .settings import Settings
from .stores import Store, open_store
from .stores.messages import JobFilter, NewJob
from .tasks import Options, Task

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


class TaskDecorator(Protocol):
    """What `@app.task(...)` returns. A first parameter taking the Context is not part of the
    enqueue signature: `enqueue` takes the other parameters."""

    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


UpdateCallback = Callable[[Job], None]

log = logging.getLogger("underway")


class App:
    """Tasks and the store they run from.

    >>> app = underway.App("sqlite:///jobs.db")       # or postgresql://..., or App() to read
    >>> @app.task()                                     # UNDERWAY_DATABASE_URL
    ... def add(a: int, b: int) -> int:
    ...     return a + b
    >>> job = add.enqueue(1, 2)
    >>> app.run_worker(burst=True)
    >>> app.get_job(job.id).result
    3

    Settings (lease_seconds, heartbeat_seconds, ...) may be given as keyword arguments; see
    `underway.Settings` for all of them and their `UNDERWAY_*` variables.
    """

    def __init__(self, url: str | None = None, **settings: Any) -> None:
        self.settings = Settings.load(database_url=url, **settings)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._subscribers: list[UpdateCallback] = []
        self._wakeups: set[Callable[[], None]] = set()
        self.schedules: dict[str, Schedule] = {}
        #: a place for resources opened at startup (`app.state.http = ...`)
        self.state = SimpleNamespace()
        self._on_startup: list[Callable[..., Any]] = []
        self._on_shutdown: list[Callable[..., Any]] = []
        self._lifespans: list[Callable[[App], AbstractAsyncContextManager[Any]]] = []

    def __repr__(self) -> str:
        return f"<underway.App {self.settings.database_url} tasks={len(self.tasks)}>"

    @property
    def max_args_bytes(self) -> int:
        return self.settings.max_args_bytes

    # --- the store ----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The store, opened (and its schema brought up to date) on first use."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    store = open_store(self.settings)
                    store.migrate()
                    self._store = store
        return self._store

    def migrate(self) -> int:
        """Create or upgrade the schema; returns the schema version."""
        return self.store.migrate()

    def close(self) -> None:
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- registering tasks --------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 4,
        timeout: float | None = None,
        retry: Backoff | None = None,
        no_retry_on: Sequence[type[BaseException]] = (),
        title: str | None = None,
        deps: Mapping[str, Callable[..., Any]] | None = None,
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 4,
        timeout: float | None = None,
        retry: Backoff | None = None,
        no_retry_on: Sequence[type[BaseException]] = (),
        title: str | None = None,
        deps: Mapping[str, Callable[..., Any]] | None = None,
    ) -> Task[P, R] | TaskDecorator:
        """Register a sync or async function as a task.

        The function receives a `Context` only if its first parameter is named `ctx` or
        annotated `Context`; otherwise it stays a plain function you can also call directly.
        `name` defaults to `module.qualname`. Errors of the `no_retry_on` types (and of
        `underway.PermanentError`) fail the job at once.

        `deps` maps names to factories opened for each job and closed after it (a value, a
        context manager, or a generator that yields the value); the task reaches them as
        `ctx.deps.name`.
        """

        def register(func: Callable[P, R]) -> Task[P, R]:
            task_name = name or f"{func.__module__}.{func.__qualname__}"
            if task_name in self.tasks:
                raise ConfigurationError(
                    f"a task named {task_name!r} is already registered; pass name=... to tell "
                    "them apart"
                )
            handle: Task[P, R] = Task(
                func,
                app=self,
                name=task_name,
                queue=queue,
                priority=priority,
                max_attempts=max_attempts,
                timeout=timeout,
                retry=retry or Backoff(),
                no_retry_on=tuple(no_retry_on),
                title=title,
                deps=deps,
            )
            self.tasks[task_name] = handle
            return handle

        return register(fn) if fn is not None else register  # type: ignore[return-value]

    # --- schedules ----------------------------------------------------------------------------

    def periodic(
        self,
        *,
        every: timedelta | float | None = None,
        cron: str | None = None,
        timezone: str = "UTC",
        initial_delay: timedelta | float = 0.0,
        catch_up: CatchUp | str = CatchUp.LATEST,
        max_catch_up: int = 100,
        misfire_grace: timedelta | float = 60.0,
        overlap: Overlap | str = Overlap.ALLOW,
        args: Mapping[str, Any] | None = None,
        schedule_name: str | None = None,
        **task_options: Any,
    ) -> TaskDecorator:
        """Register a task and run it on a rule: `every=` an interval, or `cron=` an expression
        in `timezone`. It stays an ordinary task that can also be enqueued by hand.

        >>> @app.periodic(every=timedelta(minutes=5), initial_delay=timedelta(seconds=30))
        ... async def monitor_campaigns(ctx): ...
        >>> @app.periodic(cron="0 3 * * *", timezone="Europe/Berlin", catch_up="skip")
        ... def nightly_report(): ...

        `catch_up` says what happens to slots missed while nothing ran ("latest": run once;
        "all": run each, at most `max_catch_up`; "skip": none); a slot is missed once it is
        `misfire_grace` late. `overlap` ("allow", "skip", "wait") says what a slot does while
        the previous run is unfinished. Other keywords are task options (queue, timeout...).
        """

        _rule(every, cron, timezone, initial_delay)  # a bad rule must not leave a task behind
        _policies(catch_up, overlap)

        def register(func: Callable[P, R]) -> Task[P, R]:
            handle: Task[P, R] = self.task(**task_options)(func)
            self.schedule(
                handle, every=every, cron=cron, timezone=timezone, initial_delay=initial_delay,
                catch_up=catch_up, max_catch_up=max_catch_up, misfire_grace=misfire_grace,
                overlap=overlap, args=args, name=schedule_name,
            )  # fmt: skip
            return handle

        return register  # type: ignore[return-value]

    def schedule(
        self,
        task: Task[Any, Any] | str,
        *,
        every: timedelta | float | None = None,
        cron: str | None = None,
        timezone: str = "UTC",
        initial_delay: timedelta | float = 0.0,
        catch_up: CatchUp | str = CatchUp.LATEST,
        max_catch_up: int = 100,
        misfire_grace: timedelta | float = 60.0,
        overlap: Overlap | str = Overlap.ALLOW,
        args: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> Schedule:
        """Run an existing task on a rule, for rules that come from settings at run time:
        `app.schedule(cleanup, every=settings.cleanup_interval)`. Calling it again for the
        same name replaces the rule."""
        handle = self.get_task(task) if isinstance(task, str) else task
        rule = _rule(every, cron, timezone, initial_delay)
        catch_up, overlap = _policies(catch_up, overlap)
        if args:
            handle.new_job((), args, Options())  # refuse bad arguments now, not at the slot
        schedule = Schedule(
            name=name or handle.name, task=handle.name, rule=rule, catch_up=CatchUp(catch_up),
            max_catch_up=max_catch_up, misfire_grace=_seconds(misfire_grace),
            overlap=Overlap(overlap), args=dict(args or {}),
        )  # fmt: skip
        self.schedules[schedule.name] = schedule
        return schedule

    def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule with its rule, next and last run, run count, state and run stats."""
        states = {state.name: state for state in self.store.schedule_states()}
        _, runs = self.store.run_stats()
        now = self.store.now()
        out = []
        for name in sorted(set(states) | set(self.schedules)):
            state = states.get(name)
            schedule = self.schedules.get(name)
            next_run = None
            if schedule is not None and state is not None:
                next_run = plan(schedule, state.anchor, state.last_slot, now).next_run
            out.append(
                ScheduleInfo(
                    name=name,
                    task=schedule.task if schedule else state.task if state else "",
                    rule=schedule.describe() if schedule else state.rule if state else "",
                    paused=bool(state and state.paused),
                    next_run=next_run,
                    last_run=state.last_slot if state else None,
                    run_count=state.run_count if state else 0,
                    stats=runs.get(name, RunStats()),
                    registered=schedule is not None,
                )
            )
        return out

    def pause_schedule(self, name: str) -> None:
        """Stop firing this schedule in every process until resumed."""
        self._ensure_registered(name)
        self.store.set_schedule_paused(name, True)

    def resume_schedule(self, name: str) -> None:
        self._ensure_registered(name)
        self.store.set_schedule_paused(name, False)

    def _ensure_registered(self, name: str) -> None:
        """A schedule this app defines may not be in the store yet (no scheduler ran)."""
        schedule = self.schedules.get(name)
        if schedule is not None:
            from .scheduler import register

            register(self.store, schedule, self.store.now())

    def trigger_schedule(self, name: str) -> Job:
        """Run the schedule's task now, outside its slots."""
        schedule = self.schedules.get(name)
        if schedule is None:
            raise UnknownTask(
                f"no schedule named {name!r} in this app; schedules: "
                f"{', '.join(sorted(self.schedules)) or 'none'}"
            )
        job = self.get_task(schedule.task).new_job((), schedule.args, Options())
        job.schedule = name
        self._ensure_registered(name)
        created = self.store.trigger_schedule(name, job)
        self._wake_workers()
        return created

    def run_scheduler(self) -> None:
        """Run only the scheduler, in this thread, until SIGTERM/SIGINT."""
        from .scheduler import Scheduler

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            async with app_running(self):
                await Scheduler(self).run(stop)

        asyncio.run(main())

    # --- application lifecycle ----------------------------------------------------------------

    def on_startup(self, fn: F) -> F:
        """Run `fn()` (or `fn(app)`; sync or async) when a worker or scheduler starts, before it
        takes any job: open pools and clients here and keep them on `app.state`."""
        self._on_startup.append(fn)
        return fn

    def on_shutdown(self, fn: F) -> F:
        """Run `fn()` (or `fn(app)`) when a worker or scheduler stops, after its last job."""
        self._on_shutdown.append(fn)
        return fn

    def lifespan(
        self, fn: Callable[[App], AbstractAsyncContextManager[Any]]
    ) -> Callable[[App], AbstractAsyncContextManager[Any]]:
        """Register an async context manager factory `fn(app)` entered at worker start and
        exited at stop (`@app.lifespan` over an `@asynccontextmanager` function)."""
        self._lifespans.append(fn)
        return fn

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTask(
                f"no task named {name!r} is registered in this app; registered: "
                f"{', '.join(sorted(self.tasks)) or 'none'}"
            ) from None

    # --- enqueueing (called by task handles) --------------------------------------------------

    def _insert(self, jobs: list[NewJob], connection: Any = None) -> list[Job]:
        if not jobs:
            return []
        if connection is not None:
            created: list[Job] = self._enqueue_on(connection).enqueue_on(connection, jobs)
        else:
            created = self.store.enqueue(jobs)
        self._wake_workers()
        if self._subscribers:
            for job in created:
                self._publish(job)
        return created

    async def _insert_async(self, jobs: list[NewJob], connection: Any = None) -> list[Job]:
        if connection is None or not jobs:
            return await asyncio.to_thread(self._insert, jobs, connection)
        store = self._enqueue_on(connection)
        if not hasattr(store, "enqueue_on_async"):
            return await asyncio.to_thread(self._insert, jobs, connection)
        created: list[Job] = await store.enqueue_on_async(connection, jobs)
        if self._subscribers:
            for job in created:
                self._publish(job)
        return created

    def _enqueue_on(self, connection: Any) -> Any:
        store = self.store
        if not hasattr(store, "enqueue_on"):
            raise ConfigurationError(
                "enqueue(connection=...) writes the job in your own transaction; that needs the "
                "PostgreSQL store (this app uses " + type(store).__name__ + ")"
            )
        return store

    # --- inspecting and controlling jobs ------------------------------------------------------

    def get_job(self, job_id: uuid.UUID | str) -> Job | None:
        """The job's current state, or None when no job has this id."""
        return self.store.get(_as_uuid(job_id))

    def list_jobs(
        self,
        status: Status | str | None = None,
        task: str | None = None,
        queue: str | None = None,
        tenant: str | None = None,
        view: View | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """Jobs, newest first. `view` is "scheduled" (pending, due later) or "retrying"
        (pending after a failed attempt). Pass `page.next_cursor` back for the next page."""
        where = JobFilter(
            status=Status(status) if status is not None else None,
            view=View(view) if view is not None else None,
            task=task,
            queue=queue,
            tenant=tenant,
        )
        if not 1 <= limit <= 10_000:
            raise ValueError("limit must be between 1 and 10000")
        return self.store.list_jobs(where, limit, cursor)

    def cancel(self, job_id: uuid.UUID | str) -> Job:
        """Cancel a job: a pending one never runs; a running one is stopped by its worker
        (async tasks are cancelled, sync tasks see `ctx.cancelled`) and ends `cancelled`."""
        job = self.store.cancel(_as_uuid(job_id))
        self._publish(job)
        return job

    def retry(self, job_id: uuid.UUID | str) -> Job:
        """Run a failed or cancelled job again: same id, attempts reset."""
        job = self.store.retry(_as_uuid(job_id))
        self._wake_workers()
        self._publish(job)
        return job

    def wait(
        self, job_id: uuid.UUID | str, timeout: float | None = None, poll: float = 0.05
    ) -> Job:
        """Block until the job is completed, failed or cancelled; returns it then.
        Raises `JobTimeout` after `timeout` seconds."""
        ident = _as_uuid(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.store.get(ident)
            if job is None:
                raise JobNotFound(f"no job with id {ident}")
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {ident} is still {job.status} after {timeout} s")
            time.sleep(poll if deadline is None else min(poll, max(deadline - time.monotonic(), 0)))

    def stats(self) -> Stats:
        """Counts by status, overall and per task and queue; and per task and per schedule:
        runs, failures, last run, last and average duration, state ("failing" when the
        latest run failed)."""
        tasks, schedules = self.store.run_stats()
        return dataclasses.replace(self.store.stats(), tasks=tasks, schedules=schedules)

    # --- queues and retention ------------------------------------------------------------------

    def pause_queue(self, name: str) -> None:
        """Stop every worker from starting jobs of this queue (running ones finish)."""
        self.store.set_queue_paused(name, True)

    def resume_queue(self, name: str) -> None:
        self.store.set_queue_paused(name, False)
        self._wake_workers()

    def set_queue_concurrency(self, name: str, concurrency: int | None) -> None:
        """Run at most `concurrency` jobs of this queue at once across all workers
        (None removes the limit)."""
        if concurrency is not None and concurrency < 0:
            raise ValueError("concurrency must be >= 0 or None")
        self.store.set_queue_concurrency(name, concurrency)

    def queues(self) -> list[QueueInfo]:
        """Every queue with its controls and its jobs by status."""
        return self.store.queues()

    def prune(
        self, older_than: timedelta | float | None = None, include_failed: bool = False
    ) -> int:
        """Delete completed and cancelled jobs (and failed ones, with `include_failed`) that
        finished longer ago than `older_than` (default: the `retention_seconds` setting).
        Returns how many were deleted."""
        if older_than is None:
            age = self.settings.retention_seconds
        else:
            age = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        statuses = [Status.COMPLETED, Status.CANCELLED]
        if include_failed:
            statuses.append(Status.FAILED)
        return self.store.prune(float(age), statuses)

    # async twins: the same calls, without blocking the event loop
    async def get_job_async(self, job_id: uuid.UUID | str) -> Job | None:
        return await asyncio.to_thread(self.get_job, job_id)

    async def list_jobs_async(self, **filters: Any) -> Page:
        return await asyncio.to_thread(lambda: self.list_jobs(**filters))

    async def cancel_async(self, job_id: uuid.UUID | str) -> Job:
        return await asyncio.to_thread(self.cancel, job_id)

    async def retry_async(self, job_id: uuid.UUID | str) -> Job:
        return await asyncio.to_thread(self.retry, job_id)

    async def stats_async(self) -> Stats:
        return await asyncio.to_thread(self.stats)

    async def wait_async(
        self, job_id: uuid.UUID | str, timeout: float | None = None, poll: float = 0.05
    ) -> Job:
        ident = _as_uuid(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = await self.get_job_async(ident)
            if job is None:
                raise JobNotFound(f"no job with id {ident}")
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {ident} is still {job.status} after {timeout} s")
            await asyncio.sleep(poll)

    # --- live updates -------------------------------------------------------------------------

    def on_update(self, callback: UpdateCallback) -> Callable[[], None]:
        """Call `callback(job)` with every job snapshot this process sees change (enqueued,
        started, progress, finished...). Returns a function that unsubscribes.

        Callbacks run on the thread that made the change and must be quick; an exception in
        one is logged and does not affect the job.
        """
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _publish(self, job: Job) -> None:
        for callback in list(self._subscribers):
            try:
                callback(job)
            except Exception:
                log.exception("on_update callback %r failed for job %s", callback, job.id)

    def _wake_workers(self) -> None:
        """Tell this process's workers that there may be new work (a hint, never required)."""
        for wake in list(self._wakeups):
            wake()

    def _add_wakeup(self, wake: Callable[[], None]) -> Callable[[], None]:
        self._wakeups.add(wake)
        return lambda: self._wakeups.discard(wake)

    # --- running ------------------------------------------------------------------------------

    def run_worker(
        self,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        handle_signals: bool = True,
        scheduler: bool | None = None,
    ) -> None:
        """Run a worker in this thread until stopped (SIGTERM/SIGINT) or, with `burst=True`,
        until no job is due. It also fires the app's schedules unless `scheduler=False`
        (default: on, except in burst mode)."""
        from .worker import Worker

        worker = Worker(
            self, queues=queues, concurrency=concurrency, burst=burst, scheduler=scheduler
        )
        asyncio.run(worker.run(handle_signals=handle_signals))


def _rule(
    every: timedelta | float | None,
    cron: str | None,
    timezone: str,
    initial_delay: timedelta | float,
) -> Rule:
    if (every is None) == (cron is None):
        raise ConfigurationError("give a schedule exactly one of every=... or cron=...")
    if every is not None:
        return Every(_seconds(every), _seconds(initial_delay))
    assert cron is not None
    return Cron(cron, timezone)


def _policies(catch_up: CatchUp | str, overlap: Overlap | str) -> tuple[CatchUp, Overlap]:
    try:
        return CatchUp(catch_up), Overlap(overlap)
    except ValueError:
        raise ConfigurationError(
            f"catch_up must be one of {[c.value for c in CatchUp]} and overlap one of "
            f"{[o.value for o in Overlap]}; got catch_up={catch_up!r}, overlap={overlap!r}"
        ) from None


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _as_uuid(job_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(job_id, uuid.UUID):
        return job_id
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise JobNotFound(f"{job_id!r} is not a job id (expected a UUID)") from None
