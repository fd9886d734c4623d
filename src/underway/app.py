"""App: the registry of tasks plus the store, and the facade to enqueue, inspect and control
jobs."""

from __future__ import annotations

import asyncio
import dataclasses
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
from .errors import ConfigurationError, InvalidArguments, JobNotFound, JobTimeout
from .events import Events, UpdateCallback
from .hooks import app_running
from .model import Job, Page, QueueInfo, RunStats, ScheduleInfo, Stats, Status, View
from .producer import Producer
from .registry import Registry
from .retry import Backoff
from .schedule import CatchUp, Cron, Every, Overlap, Rule, Schedule, plan
from .scheduler import Scheduler, register
from .settings import Settings
from .stores import Store, open_store
from .stores.messages import JobFilter
from .tasks import Options, Task
from .twins import twin
from .worker import Worker

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


#: the options `@app.task(...)` takes; anything else is refused with their names
TASK_OPTIONS = frozenset(
    {"name", "queue", "priority", "max_attempts", "timeout", "retry", "no_retry_on", "title",
     "deps"}
)  # fmt: skip


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
        #: the tasks, schedules and hooks this app declares
        self.registry = Registry()
        #: job snapshots and worker wake-ups within this process
        self.events = Events()
        self.producer = Producer(lambda: self.store, self.events, self.settings.max_args_bytes)
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        #: a place for resources opened at startup (`app.state.http = ...`)
        self.state = SimpleNamespace()

    def __repr__(self) -> str:
        return f"<underway.App {self.settings.database_url} tasks={len(self.tasks)}>"

    @property
    def tasks(self) -> dict[str, Task[Any, Any]]:
        """Registered tasks by name."""
        return self.registry.tasks

    @property
    def schedules(self) -> dict[str, Schedule]:
        """Declared schedules by name."""
        return self.registry.schedules

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
        self, fn: Callable[..., Any] | None = None, /, **options: Any
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

        unknown = sorted(set(options) - TASK_OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"unknown task option(s) {', '.join(unknown)}; a task takes "
                f"{', '.join(sorted(TASK_OPTIONS))}"
            )

        def register(func: Callable[P, R]) -> Task[P, R]:
            handle: Task[P, R] = Task(
                func,
                app=self.producer,
                name=options.get("name") or _default_name(func),
                queue=options.get("queue", "default"),
                priority=options.get("priority", 0),
                max_attempts=options.get("max_attempts", 4),
                timeout=options.get("timeout"),
                retry=options.get("retry") or Backoff(),
                no_retry_on=tuple(options.get("no_retry_on", ())),
                title=options.get("title"),
                deps=options.get("deps"),
            )
            self.registry.add_task(handle)
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
        self.registry.add_schedule(schedule)
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
            register(self.store, schedule, self.store.now())

    def trigger_schedule(self, name: str) -> Job:
        """Run the schedule's task now, outside its slots."""
        schedule = self.registry.schedule(name)
        job = self.get_task(schedule.task).new_job((), schedule.args, Options())
        job.schedule = name
        self._ensure_registered(name)
        created = self.store.trigger_schedule(name, job)
        self.events.wake_workers()
        self.events.publish(created)
        return created

    def scheduler(self, clock: Callable[[], Any] | None = None) -> Scheduler:
        """A scheduler for this app's schedules (`clock`: a callable returning an aware
        datetime; default the store's clock). `run_worker` and `run_scheduler` make their
        own; tests use this with `underway.testing.Clock`."""
        return Scheduler(self.registry, self.store, self.events, clock=clock)

    def run_scheduler(self) -> None:
        """Run only the scheduler, in this thread, until SIGTERM/SIGINT."""

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            async with app_running(self.registry, self):
                await self.scheduler().run(stop)

        asyncio.run(main())

    # --- application lifecycle ----------------------------------------------------------------

    def on_startup(self, fn: F) -> F:
        """Run `fn()` (or `fn(app)`; sync or async) when a worker or scheduler starts, before it
        takes any job: open pools and clients here and keep them on `app.state`."""
        self.registry.on_startup.append(fn)
        return fn

    def on_shutdown(self, fn: F) -> F:
        """Run `fn()` (or `fn(app)`) when a worker or scheduler stops, after its last job."""
        self.registry.on_shutdown.append(fn)
        return fn

    def lifespan(
        self, fn: Callable[[App], AbstractAsyncContextManager[Any]]
    ) -> Callable[[App], AbstractAsyncContextManager[Any]]:
        """Register an async context manager factory `fn(app)` entered at worker start and
        exited at stop (`@app.lifespan` over an `@asynccontextmanager` function)."""
        self.registry.lifespans.append(fn)
        return fn

    def get_task(self, name: str) -> Task[Any, Any]:
        """The task registered as `name` (`UnknownTask` names the registered ones)."""
        return self.registry.task(name)

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
            raise InvalidArguments(f"limit must be between 1 and 10000, got {limit}")
        return self.store.list_jobs(where, limit, cursor)

    def cancel(self, job_id: uuid.UUID | str) -> Job:
        """Cancel a job: a pending one never runs; a running one is stopped by its worker
        (async tasks are cancelled, sync tasks see `ctx.cancelled`) and ends `cancelled`."""
        job = self.store.cancel(_as_uuid(job_id))
        self.events.publish(job)
        return job

    def retry(self, job_id: uuid.UUID | str) -> Job:
        """Run a failed or cancelled job again: same id, attempts reset."""
        job = self.store.retry(_as_uuid(job_id))
        self.events.wake_workers()
        self.events.publish(job)
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
        self.events.wake_workers()

    def set_queue_concurrency(self, name: str, concurrency: int | None) -> None:
        """Run at most `concurrency` jobs of this queue at once across all workers
        (None removes the limit)."""
        if concurrency is not None and concurrency < 0:
            raise InvalidArguments(f"concurrency must be >= 0 or None, got {concurrency}")
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

    # --- async twins: the same calls, without blocking the event loop ----------------------

    migrate_async = twin(migrate)
    close_async = twin(close)
    get_job_async = twin(get_job)
    list_jobs_async = twin(list_jobs)
    cancel_async = twin(cancel)
    retry_async = twin(retry)
    stats_async = twin(stats)
    queues_async = twin(queues)
    pause_queue_async = twin(pause_queue)
    resume_queue_async = twin(resume_queue)
    set_queue_concurrency_async = twin(set_queue_concurrency)
    prune_async = twin(prune)
    list_schedules_async = twin(list_schedules)
    pause_schedule_async = twin(pause_schedule)
    resume_schedule_async = twin(resume_schedule)
    trigger_schedule_async = twin(trigger_schedule)

    async def wait_async(
        self, job_id: uuid.UUID | str, timeout: float | None = None, poll: float = 0.05
    ) -> Job:
        """`wait` for async code: polls without blocking the event loop."""
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
        return self.events.subscribe(callback)

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


def _default_name(func: Callable[..., Any]) -> str:
    qualname = getattr(func, "__qualname__", None)
    if qualname is None:
        raise ConfigurationError(
            f"cannot name the task {func!r}: it has no __qualname__ (a callable object?); "
            "pass name=... to @app.task"
        )
    return f"{func.__module__}.{qualname}"


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _as_uuid(job_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(job_id, uuid.UUID):
        return job_id
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise JobNotFound(f"{job_id!r} is not a job id (expected a UUID)") from None
