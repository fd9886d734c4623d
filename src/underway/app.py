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
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from . import schedule_tenants
from .declarations import Declarations
from .errors import InvalidArguments, JobNotFound, JobTimeout
from .events import Events, UpdateCallback
from .feed import Feed
from .hooks import app_running
from .ids import as_job_id as _as_uuid
from .model import Delivery, Job, Page, QueueInfo, ScheduleInfo, Stats, Status, View
from .operations import Operations
from .producer import Producer
from .quotas import TenantQuota
from .registry import Registry
from .schedule import Schedule
from .schedule_control import ScheduleControl
from .scheduler import Scheduler, register, schedule_infos
from .settings import Settings
from .stores import Store, open_store
from .stores.messages import JobFilter
from .tasks import Options, Task
from .twins import twin
from .watching import Watching
from .worker import Worker


class App(ScheduleControl, Declarations, Watching, Operations):
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
    `underway.Settings` for all of them and their `UNDERWAY_*` variables. `tenant_quotas`:
    per-tenant enqueue quotas, `{"big": underway.TenantQuota(...), "free": None}`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        tenant_quotas: Mapping[str, TenantQuota | None] | None = None,
        **settings: Any,
    ) -> None:
        self.settings = Settings.load(database_url=url, **settings)
        #: the tasks, schedules and hooks this app declares
        self.registry = Registry()
        #: job snapshots and worker wake-ups within this process
        self.events = Events()
        self.producer = Producer.of(self.settings, lambda: self.store, self.events, tenant_quotas)
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        #: wakes this process's watchers when any process changed a job
        self.feed = Feed(lambda: self.store)
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
        self.feed.close()
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule with its rule, next and last run, run count, state and run stats."""
        _, runs = self.store.run_stats()
        states, alive = self.store.schedule_states(), self.store.schedulers_alive()
        return schedule_infos(self.registry, states, runs, self.store.now(), alive)

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

    def trigger_schedule(self, name: str, tenant: str | None = None) -> Job:
        """Run the schedule's task now, outside its slots: one declared in code, or one put
        at run time (its task must be registered here); a schedule run once per tenant is
        triggered for one of them (`tenant=`)."""
        schedule = self._schedule_named(name)
        options = Options(tenant=schedule_tenants.check_trigger(schedule, tenant))
        job = self.get_task(schedule.task).new_job((), schedule.args, options)
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
        key: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page:
        """Jobs, newest first. `view` is "scheduled" (pending, due later) or "retrying"
        (pending after a failed attempt); `key` the unique key; `created_after` (inclusive)
        and `created_before` a time range. Pass `page.next_cursor` back for the next page."""
        where = JobFilter(
            status=Status(status) if status is not None else None,
            view=View(view) if view is not None else None,
            task=task,
            queue=queue,
            tenant=tenant,
            key=key,
            created_after=created_after,
            created_before=created_before,
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
        waiting = _Waiting(_as_uuid(job_id), timeout)
        while (job := waiting.done(self.store.get(waiting.ident))) is None:
            time.sleep(waiting.pause(poll))
        return job

    def deliveries(self, job_id: uuid.UUID | str) -> list[Delivery]:
        """The job's completion callbacks, one per final state it reached, oldest first, each
        with its attempts (when, the receiver's status code, the error, how long it took)."""
        return self.store.deliveries(_as_uuid(job_id))

    def stats(self, tenant: str | None = None) -> Stats:
        """Counts by status, overall and per task, queue and tenant; and per task and per
        schedule: runs, failures, last run, last and average duration, state ("failing" when
        the latest run failed). With `tenant`, every count covers that tenant's jobs only."""
        tasks, schedules = self.store.run_stats(tenant)
        return dataclasses.replace(self.store.stats(tenant), tasks=tasks, schedules=schedules)

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
    deliveries_async = twin(deliveries)
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
        waiting = _Waiting(_as_uuid(job_id), timeout)
        while (job := waiting.done(await self.get_job_async(waiting.ident))) is None:
            await asyncio.sleep(waiting.pause(poll))
        return job

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


class _Waiting:
    """One `wait`: the job's finished state, a timeout, or another poll."""

    def __init__(self, ident: uuid.UUID, timeout: float | None) -> None:
        self.ident = ident
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def done(self, job: Job | None) -> Job | None:
        if job is None:
            raise JobNotFound(f"no job with id {self.ident}")
        if job.finished:
            return job
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise JobTimeout(f"job {self.ident} is still {job.status} after {self.timeout} s")
        return None

    def pause(self, poll: float) -> float:
        if self.deadline is None:
            return poll
        return min(poll, max(self.deadline - time.monotonic(), 0.0))
