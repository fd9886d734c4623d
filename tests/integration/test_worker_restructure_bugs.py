"""One test per bug the worker's restructuring fixed (or should have), each failing on the old
behaviour, on every store:

a. a sync task's sync dependency opens on the task's thread (a sqlite3 connection works);
b. a sync dependency that blocks does not freeze heartbeats or the other jobs;
c. an object whose `__call__` is `async def` is an async task; one without `name=` is refused;
d. a sync task that raises after its attempt was decided (cancel, timeout, shutdown) leaves no
   "Future exception was never retrieved" behind;
e. a job fired by the scheduler is published as `pending`;
f. per job, `on_update` sees snapshots in the order the store applied them, ending finished;
g. unknown options to `@app.task` and `@app.periodic` are refused by name;
h. the error types: ScheduleNotFound, DependencyError, InvalidArguments, ConfigurationError.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import underway
from support import FAST  # tests/support.py, on the path through conftest.py
from underway import App, Cancel, ConfigurationError, Job, Status, testing

MakeApp = Callable[..., App]
WaitFor = Callable[..., Any]


@pytest.fixture
def fast(make_app: MakeApp) -> MakeApp:
    """`fast(**settings)`: an App on this test's database with short timings."""

    def make(**settings: Any) -> App:
        return make_app(**{**FAST, **settings})

    return make


@pytest.fixture
def offline_app(tmp_path: Path) -> App:
    """An App for declaring only: it never opens its store, so one store kind is enough."""
    return App(f"sqlite:///{tmp_path / 'never-opened.db'}")


def loop_thread_of(app: App) -> list[int]:
    """The ident of each worker loop thread that starts for `app` (its startup hook runs
    there)."""
    idents: list[int] = []
    app.on_startup(lambda: idents.append(threading.get_ident()))
    return idents


def finished(app: App, job: Job) -> Job:
    stored = app.get_job(job.id)
    assert stored is not None, f"job {job.id} is gone"
    return stored


# --- a. a sync dependency opens on the task's thread ------------------------------------------


def test_a_sync_task_can_use_the_sqlite_connection_its_sync_dependency_opened(
    fast: MakeApp, tmp_path: Path
) -> None:
    app = fast()
    threads: dict[str, int] = {}
    loop_threads = loop_thread_of(app)

    def local_db() -> Iterator[sqlite3.Connection]:
        threads["factory"] = threading.get_ident()
        conn = sqlite3.connect(str(tmp_path / "local.db"))
        try:
            yield conn
        finally:
            conn.close()
            threads["cleanup"] = threading.get_ident()

    @app.task(name="tests.uses_db", deps={"db": local_db})
    def uses_db(ctx: underway.Context, a: int) -> int:
        threads["task"] = threading.get_ident()
        conn: sqlite3.Connection = ctx.deps.db
        conn.execute("create table if not exists t (n integer)")
        conn.execute("insert into t values (?)", (a,))
        return int(conn.execute("select sum(n) + 1 from t").fetchone()[0])

    job = uses_db.enqueue(41)
    assert testing.drain(app) == 1

    done = finished(app, job)
    assert done.status is Status.COMPLETED, done.error
    assert done.result == 42
    assert set(threads) == {"factory", "task", "cleanup"}
    assert threads["factory"] == threads["task"] == threads["cleanup"]
    assert loop_threads and threads["task"] not in loop_threads, "it ran on the event loop"


# --- b. a blocking sync dependency does not freeze the worker ---------------------------------


def test_a_blocking_sync_dependency_freezes_neither_heartbeats_nor_other_jobs(
    fast: MakeApp,
) -> None:
    app = fast(lease_seconds=1.0, heartbeat_seconds=0.1)
    other_ran = threading.Event()
    seen_while_blocking: list[bool] = []

    def slow_client() -> str:
        # Block until the other job ran (only possible if the worker is free meanwhile),
        # then well past the lease: only heartbeats keep it.
        seen_while_blocking.append(other_ran.wait(10))
        time.sleep(2.5)
        return "client"

    @app.task(name="tests.with_slow_client", deps={"client": slow_client})
    def with_slow_client(ctx: underway.Context) -> str:
        return f"used {ctx.deps.client}"

    @app.task(name="tests.other")
    def other() -> str:
        other_ran.set()
        return "other"

    slow_job = with_slow_client.enqueue()
    other_job = other.enqueue()
    assert testing.drain(app, concurrency=2) == 2

    assert seen_while_blocking == [True], "the other job could not run while the factory blocked"
    assert finished(app, other_job).result == "other"
    done = finished(app, slow_job)
    assert done.status is Status.COMPLETED, done.error
    assert done.result == "used client"
    assert done.attempt == 1, "the job ran twice"
    assert done.rescues == 0, "its lease expired while the factory blocked"


# --- c. a callable object with an async __call__ ----------------------------------------------


class Doubler:
    """A task object: configured once, called per job."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.ran_on: list[int] = []

    async def __call__(self, n: int) -> int:
        self.ran_on.append(threading.get_ident())
        await asyncio.sleep(0)  # only an async task may await
        return n * self.factor


def test_an_object_with_an_async_call_runs_as_an_async_task(fast: MakeApp) -> None:
    app = fast()
    loop_threads = loop_thread_of(app)
    doubler = Doubler(2)
    task = app.task(name="tests.doubler")(doubler)
    assert task.is_async

    job = task.enqueue(21)
    assert testing.drain(app) == 1

    done = finished(app, job)
    assert done.status is Status.COMPLETED, done.error
    assert done.result == 42
    assert doubler.ran_on == loop_threads, "it did not run on the worker's event loop"


def test_a_callable_object_without_a_name_is_refused_with_a_request_for_one(
    offline_app: App,
) -> None:
    app = offline_app
    with pytest.raises(ConfigurationError, match=r"name="):
        app.task()(Doubler(2))
    assert app.tasks == {}


# --- d. errors of threads that outlive their attempt -------------------------------------------


class LoopErrors:
    """What asyncio reports about the worker's loop: its log lines, and the calls to the
    loop's exception handler (installed by a startup hook, on the worker's loop)."""

    def __init__(self, app: App, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.contexts: list[dict[str, Any]] = []
        caplog.set_level(logging.ERROR, logger="asyncio")
        caplog.set_level(logging.ERROR, logger="concurrent.futures")

        def install() -> None:
            asyncio.get_running_loop().set_exception_handler(self._record)

        app.on_startup(install)

    def _record(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)
        loop.default_exception_handler(context)

    def reported(self) -> list[str]:
        gc.collect()  # asyncio reports an unretrieved exception when its future is collected
        logged = [
            r.getMessage()
            for r in self.caplog.records
            if r.name in ("asyncio", "concurrent.futures")
        ]
        return logged + [str(c.get("message")) for c in self.contexts]


def no_task_threads() -> bool:
    return not any(t.name.startswith("underway-task") for t in threading.enumerate())


class Outliving:
    """A sync task's body that outlives its attempt: it waits until stopped (`ctx.cancelled`),
    then until the test has seen the attempt's outcome (`release`), then raises `error`."""

    def __init__(self, error: Callable[[underway.Context], BaseException]) -> None:
        self.error = error
        self.started, self.release, self.raised = (threading.Event() for _ in range(3))

    def __call__(self, ctx: underway.Context) -> str:
        self.started.set()
        if not ctx.wait_cancelled(10):
            return "never stopped"
        self.release.wait(10)
        self.raised.set()
        raise self.error(ctx)


def test_a_sync_task_raising_cancel_after_a_cancel_leaves_no_unretrieved_error(
    fast: MakeApp, caplog: pytest.LogCaptureFixture, wait_for: WaitFor
) -> None:
    app = fast()
    errors = LoopErrors(app, caplog)
    body = Outliving(lambda ctx: Cancel(f"saw ctx.cancelled: {ctx.cancel_reason}"))
    task = app.task(name="tests.cancel_me", max_attempts=3)(body)

    job = task.enqueue()
    with testing.worker(app) as worker:
        assert body.started.wait(10), "the job never started"
        app.cancel(job.id)
        assert app.wait(job.id, timeout=10).status is Status.CANCELLED
        body.release.set()
        assert body.raised.wait(10)
        wait_for(lambda: worker.worker.slots_used == 0, what="the task's thread to return")
    wait_for(no_task_threads, what="the worker's task threads to end")

    done = finished(app, job)
    assert done.status is Status.CANCELLED and done.attempt == 1
    assert errors.reported() == []


def test_a_sync_task_raising_after_its_timeout_leaves_no_unretrieved_error(
    fast: MakeApp, caplog: pytest.LogCaptureFixture, wait_for: WaitFor
) -> None:
    app = fast()
    errors = LoopErrors(app, caplog)
    body = Outliving(lambda ctx: RuntimeError(f"gave up: {ctx.cancel_reason}"))
    task = app.task(name="tests.too_slow", timeout=0.3, max_attempts=1)(body)

    job = task.enqueue()
    with testing.worker(app) as worker:
        done = app.wait(job.id, timeout=10)
        body.release.set()
        assert body.raised.wait(10)
        wait_for(lambda: worker.worker.slots_used == 0, what="the task's thread to return")
    wait_for(no_task_threads, what="the worker's task threads to end")

    assert done.status is Status.FAILED
    assert done.error is not None and done.error.type == "Timeout", done.error
    assert errors.reported() == []


def test_a_sync_task_raising_after_a_shutdown_hand_back_leaves_no_unretrieved_error(
    fast: MakeApp, caplog: pytest.LogCaptureFixture, wait_for: WaitFor
) -> None:
    app = fast()
    errors = LoopErrors(app, caplog)
    body = Outliving(lambda ctx: RuntimeError(f"stopped: {ctx.cancel_reason}"))
    task = app.task(name="tests.handed_back", max_attempts=3)(body)

    held: list[str] = []

    @app.task(name="tests.holds_the_loop")
    async def holds_the_loop() -> None:
        # Keeps the stopping worker (and its loop) alive after the hand-back until the sync
        # task's thread has raised and freed its slot: that error reaches a live loop.
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            deadline = time.monotonic() + 10  # only bounds a hang
            while time.monotonic() < deadline:
                if body.release.is_set() and worker.worker.slots_used <= 1:
                    held.append("until the thread returned")
                    break
                try:
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    continue  # the stopping worker asks again: hold on
            raise

    job = task.enqueue()
    holder = holds_the_loop.enqueue()
    with testing.worker(app, concurrency=2) as worker:
        assert body.started.wait(10), "the job never started"
        wait_for(lambda: finished(app, holder).status is Status.RUNNING, what="both running")
        worker.worker.stop(now=True)
        wait_for(lambda: finished(app, job).status is Status.PENDING, what="the hand-back")
        body.release.set()
        assert body.raised.wait(10)
        worker.join(10)
    wait_for(no_task_threads, what="the worker's task threads to end")

    assert held == ["until the thread returned"], "the loop closed before the thread raised"
    back = finished(app, job)
    assert back.status is Status.PENDING and back.attempt == 0, "the attempt was spent"
    assert back.error is None
    assert finished(app, holder).status is Status.PENDING
    assert errors.reported() == []


# --- e. the scheduler publishes what it fires -------------------------------------------------


def test_a_job_fired_by_the_scheduler_is_published_as_pending(fast: MakeApp) -> None:
    app = fast()
    seen: list[Job] = []
    app.on_update(seen.append)

    @app.periodic(every=60, name="tests.beat")
    def beat() -> None: ...

    clock = testing.Clock()
    scheduler = testing.scheduler(app, clock=clock)
    first = scheduler.tick()
    clock.advance(60)
    second = scheduler.tick()

    assert len(first) == 1 and len(second) == 1
    assert [(j.id, j.status, j.schedule) for j in seen] == [
        (first[0].id, Status.PENDING, "tests.beat"),
        (second[0].id, Status.PENDING, "tests.beat"),
    ]
    assert seen[0] == finished(app, first[0])


# --- f. snapshots in the order the store applied them ---------------------------------------


def test_each_job_s_snapshots_arrive_in_store_order_and_end_finished(fast: MakeApp) -> None:
    app = fast(progress_flush_seconds=0.01)
    lock = threading.Lock()
    seen: list[Job] = []
    flushed: set[object] = set()  # jobs whose progress was published while they ran

    def record(job: Job) -> None:
        with lock:
            seen.append(job)
            if job.status is Status.RUNNING and job.progress:
                flushed.add(job.id)

    app.on_update(record)
    steps = 5_000

    @app.task(name="tests.busy")
    def busy(ctx: underway.Context, n: int) -> int:
        for i in range(1, steps + 1):
            ctx.report_progress(i / steps / 2, f"step {i}")
        deadline = time.monotonic() + 10  # only bounds a hang
        while ctx.job.id not in flushed and time.monotonic() < deadline:
            ctx.report_progress(0.5, "waiting for a flush")
        for i in range(1, steps + 1):  # reports right up to the return
            ctx.report_progress(0.5 + i / steps / 2, f"step {steps + i}")
        return n

    jobs = busy.enqueue_many([(n,) for n in range(30)])
    assert testing.drain(app, concurrency=4) == 30

    problems = []
    for job in jobs:
        mine = [s for s in seen if s.id == job.id]
        stored = finished(app, job)
        last = mine[-1]
        if (last.status, last.progress, last.result) != (Status.COMPLETED, 1.0, job.args["n"]):
            problems.append(f"{job.id}: the last snapshot is {last.status} {last.progress}")
        if (last.status, last.progress, last.status_message) != (
            stored.status,
            stored.progress,
            stored.status_message,
        ):
            problems.append(f"{job.id}: the last snapshot is not what the store holds")
        statuses = [s.status for s in mine]
        if Status.COMPLETED in statuses and statuses.index(Status.COMPLETED) != len(mine) - 1:
            problems.append(f"{job.id}: snapshots after completed: {statuses}")
        progress = [s.progress or 0.0 for s in mine]
        if progress != sorted(progress):
            problems.append(f"{job.id}: progress went back: {progress}")
    assert not problems, "\n".join(problems)
    assert flushed == {job.id for job in jobs}, "some job's progress was never published"


def test_the_finished_snapshot_keeps_the_reports_written_while_the_job_ran(
    fast: MakeApp,
) -> None:
    """A task reports its last progress, then wraps up for longer than a flush: the store holds
    that progress, message and payload, and so must the last snapshot `on_update` sees."""
    app = fast(progress_flush_seconds=0.01)
    seen: list[Job] = []
    written = threading.Event()

    def record(job: Job) -> None:
        seen.append(job)
        if job.status is Status.RUNNING and job.progress == 1.0:
            written.set()

    app.on_update(record)

    @app.task(name="tests.reports_then_wraps_up")
    def reports_then_wraps_up(ctx: underway.Context) -> str:
        ctx.set_payload({"rows": 3})
        ctx.report_progress(1.0, "all rows imported")
        assert written.wait(10), "the report was never written"
        return "done"  # nothing new to report since the flush

    job = reports_then_wraps_up.enqueue()
    assert testing.drain(app) == 1

    stored = finished(app, job)
    assert stored.status is Status.COMPLETED, stored.error
    assert (stored.progress, stored.status_message, stored.payload) == (
        1.0,
        "all rows imported",
        {"rows": 3},
    )
    last = [s for s in seen if s.id == job.id][-1]
    assert last.status is Status.COMPLETED and last.result == "done"
    assert (last.progress, last.status_message, last.payload) == (
        stored.progress,
        stored.status_message,
        stored.payload,
    ), "the last snapshot lost the reports the store holds"


# --- g. unknown options ------------------------------------------------------------------------


def test_an_unknown_task_option_is_refused_by_name_and_registers_nothing(
    offline_app: App,
) -> None:
    app = offline_app
    with pytest.raises(ConfigurationError) as refused:

        @app.task(name="tests.t", max_attempt=3)
        def t() -> None: ...

    message = str(refused.value)
    assert "max_attempt" in message
    for existing in ("max_attempts", "queue", "timeout", "retry", "deps"):
        assert existing in message, f"{existing!r} not listed in: {message}"
    assert app.tasks == {}


@pytest.mark.parametrize(
    ("options", "unknown", "meant"),
    [
        ({"every": 60, "catchup": "skip"}, "catchup", "catch_up"),
        ({"every": 60, "max_attempt": 3}, "max_attempt", "max_attempts"),
        ({"evry": 60}, "evry", "every"),
    ],
    ids=["a schedule option", "a task option", "the rule itself"],
)
def test_an_unknown_periodic_option_is_refused_by_name_and_registers_nothing(
    offline_app: App, options: dict[str, Any], unknown: str, meant: str
) -> None:
    app = offline_app
    with pytest.raises(ConfigurationError) as refused:

        @app.periodic(**options)
        def beat() -> None: ...

    message = str(refused.value)
    assert unknown in message, f"the unknown option is not named: {message}"
    for existing in (meant, "every", "cron", "catch_up", "overlap", "queue", "max_attempts"):
        assert existing in message, f"{existing!r} not listed in: {message}"
    assert app.tasks == {} and app.schedules == {}


# --- h. the error types ---------------------------------------------------------------------------


def test_an_unknown_schedule_is_schedule_not_found_for_every_schedule_call(
    fast: MakeApp,
) -> None:
    app = fast()

    @app.periodic(every=60, name="tests.beat")
    def beat() -> None: ...

    calls = {
        "trigger_schedule": app.trigger_schedule,
        "pause_schedule": app.pause_schedule,
        "resume_schedule": app.resume_schedule,
    }
    for name, call in calls.items():
        with pytest.raises(underway.ScheduleNotFound, match="nope") as refused:
            call("nope")
        assert isinstance(refused.value, underway.UnknownTask), name
    assert [j.task for j in app.list_jobs().jobs] == [], "something was fired"


def test_the_error_types_are_exported_and_raised() -> None:
    assert issubclass(underway.DependencyError, underway.UnderwayError)
    assert "DependencyError" in underway.__all__
    with pytest.raises(underway.ConfigurationError):
        underway.Backoff(factor=0.5)


def test_a_list_limit_out_of_range_is_invalid_arguments(fast: MakeApp) -> None:
    app = fast()
    for limit in (0, -1, 10_001):
        with pytest.raises(underway.InvalidArguments) as refused:
            app.list_jobs(limit=limit)
        assert isinstance(refused.value, ValueError)
        assert str(limit) in str(refused.value)
