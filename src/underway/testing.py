"""Helpers for testing your own tasks: run the due jobs, run a worker for a block, move time.

Tests run on a real store (a SQLite file in pytest's `tmp_path` is enough) and call the helpers
from ordinary, synchronous test functions:

    import underway
    from underway import testing

    def test_tasks_and_schedules(tmp_path):
        app = underway.App(f"sqlite:///{tmp_path / 'jobs.db'}")

        @app.task()
        def add(a: int, b: int) -> int:
            return a + b

        @app.periodic(every=60)
        def beat() -> None: ...

        job = add.enqueue(2, 3)
        assert testing.drain(app) == 1             # a burst worker here, until nothing is due
        assert app.get_job(job.id).result == 5

        with testing.worker(app, scheduler=False):  # a real worker on a thread, for the block
            assert app.wait(add.enqueue(1, 1).id, timeout=10).result == 2

        clock = testing.Clock()                     # 2031-05-04 12:00 UTC until moved
        sched = testing.scheduler(app, clock=clock)
        assert len(sched.tick()) == 1               # the first slot is due at once
        assert sched.tick() == []                   # each slot fires once
        clock.advance(60)
        assert len(sched.tick()) == 1

Async tests call `await testing.drain_async(app)` instead. The helpers use only underway's
public API, so a job that passes here runs the same way under `underway worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from .app import App
from .errors import ConfigurationError
from .scheduler import Scheduler
from .worker import Worker

__all__ = [
    "DEFAULT_START", "Clock", "RunningWorker", "drain", "drain_async", "eventually", "scheduler",
    "worker",
]  # fmt: skip

T = TypeVar("T")

#: Where a `Clock` starts unless told: a fixed time far from now, so no test depends on the
#: real time.
DEFAULT_START = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)


def drain(app: App, *, queues: Sequence[str] | None = None, concurrency: int = 1) -> int:
    """Run a burst worker in this thread until no job is due; returns how many it processed.

    Jobs delayed into the future (or retrying later) stay pending; schedules do not fire (use
    `scheduler(app, clock=...)` for those).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop in this thread: the usual, synchronous test
        return asyncio.run(drain_async(app, queues=queues, concurrency=concurrency))
    # Starting a second loop here would block the running one, and every async task with it.
    raise ConfigurationError(
        "testing.drain() was called where an event loop is running (an async test?); "
        "use `await testing.drain_async(app)` there instead"
    )


async def drain_async(
    app: App, *, queues: Sequence[str] | None = None, concurrency: int = 1
) -> int:
    """The async twin of `drain`: run a burst worker on this loop until no job is due."""
    return await Worker(app, queues=queues, concurrency=concurrency, burst=True).drain()


class RunningWorker:
    """A non-burst worker running `run(handle_signals=False)` on a thread of its own.

    Made by `worker(app)`; `worker` is the `underway.Worker` itself, for finer control.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="underway-test-worker", daemon=True)

    def start(self) -> None:
        """Start the worker's thread (`worker(app)` does this)."""
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the worker's thread is still running."""
        return self._thread.is_alive()

    def stop(self, *, now: bool = False, timeout: float = 10.0) -> None:
        """Ask the worker to stop (with `now=True`: hand running jobs back at once) and join it.

        Raises TimeoutError if it has not stopped within `timeout` seconds, or the error the
        worker raised.
        """
        self.worker.stop(now=now)
        self.join(timeout)

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the thread to end, after `worker.stop()`; raises like `stop`.

        The worker's error is raised once: a later `join` or the end of the `with` block does
        not raise it again.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the worker did not stop within {timeout} s")
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        try:
            asyncio.run(self.worker.run(handle_signals=False))
        except BaseException as exc:  # raised in the test's thread by join()
            self._error = exc


@contextlib.contextmanager
def worker(
    app: App,
    *,
    queues: Sequence[str] | None = None,
    concurrency: int = 1,
    scheduler: bool | None = None,
) -> Iterator[RunningWorker]:
    """Run a non-burst worker on a thread of its own for the `with` block.

    `scheduler` is the Worker's: by default it fires the app's schedules on the real clock.
    Leaving the block stops the worker gracefully, joins its thread and raises any error the
    worker raised. If the block itself raised, the worker is stopped at once instead (its
    running jobs handed back) and the block's error goes on, noting the worker's own if any.
    """
    running = RunningWorker(
        Worker(app, queues=queues, concurrency=concurrency, scheduler=scheduler)
    )
    running.start()
    try:
        yield running
    except BaseException as exc:
        # Waiting out the shutdown grace would only delay the error the test is about.
        try:
            running.stop(now=True)
        except BaseException as worker_error:
            exc.add_note(f"and the test worker ended with {worker_error!r}")
        raise
    running.stop()


def eventually(
    probe: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Call `probe` until it returns something truthy and return that: for waiting on what a
    worker does in the background (a callback arrived, a request reached a service).

    Raises TimeoutError naming `what` after `timeout` seconds. The deadline only bounds a
    hang: a test should assert what happened, never how long it took.

    >>> calls = eventually(lambda: receiver.requests, what="the callback")
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout} s waiting for {what or repr(probe)}")
        time.sleep(interval)


class Clock:
    """A fake clock: `clock()` returns the same aware time until `advance` or `set` moves it.

    >>> clock = Clock()
    >>> clock.advance(90)
    datetime.datetime(2031, 5, 4, 12, 1, 30, tzinfo=datetime.timezone.utc)
    >>> clock.advance(timedelta(hours=-1)) == clock()
    True
    """

    __slots__ = ("_now", "start")

    def __init__(self, start: datetime | None = None) -> None:
        #: the time the clock started at
        self.start = DEFAULT_START if start is None else _aware(start, "Clock(start=...)")
        self._now = self.start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, by: float | timedelta) -> datetime:
        """Move the clock `by` seconds (or a timedelta; negative goes back); returns the time."""
        self._now += by if isinstance(by, timedelta) else timedelta(seconds=by)
        return self._now

    def set(self, moment: datetime) -> None:
        """Put the clock at `moment`, which must be timezone-aware."""
        self._now = _aware(moment, "Clock.set(...)")

    def __repr__(self) -> str:
        return f"Clock({self._now.isoformat()})"


def _aware(moment: datetime, where: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(
            f"{where} got the naive datetime {moment.isoformat()}; give a timezone-aware "
            "one, e.g. datetime(2031, 5, 4, 12, 0, tzinfo=datetime.UTC)"
        )
    return moment


def scheduler(app: App, *, clock: Callable[[], datetime] | None = None) -> Scheduler:
    """The app's scheduler on `clock` (default: the store's clock); `tick()` fires the slots
    due at `clock()` and returns the jobs it created. Nothing runs in the background."""
    return app.scheduler(clock=clock)
