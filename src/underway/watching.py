"""What an app sees of the whole fleet, whatever process made it: live changes of jobs
(`watch`, `watch_async`), every attempt of a job, and the workers alive now. Mixed into
`App`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

from .errors import InvalidArguments
from .feed import Feed
from .ids import as_job_id
from .model import AttemptInfo, Change, WorkerInfo
from .stores import Store
from .stores.messages import ChangeFilter
from .twins import twin
from .waits import wait_event

#: changes read per query
BATCH = 500
#: longest a watcher waits without a notice before it reads the feed anyway: notices are
#: only hints, and on PostgreSQL a change can become readable without one of its own
BACKSTOP_SECONDS = 0.5
#: after a notice that found nothing yet (on PostgreSQL, an older transaction was still in
#: flight), look again this soon, a few times
RECHECK_SECONDS = 0.01
RECHECKS = 5


class Watching:
    """Live changes, attempts and workers, for `App`."""

    feed: Feed

    @property
    def store(self) -> Store:  # App's
        raise NotImplementedError

    def watch(
        self,
        job: uuid.UUID | str | None = None,
        task: str | None = None,
        queue: str | None = None,
        tenant: str | None = None,
        since: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Change]:
        """Every change any process makes to matching jobs, in the order they committed:
        enqueued, started, progress and status reports, retry waits, the finish, cancel
        requests. Each carries the job as it was right after it and a `cursor`; pass the last
        one you got as `since=` to resume without missing or repeating a change (changes are
        kept for `change_retention_seconds`). Without `since`, from the first iteration on
        (the iterator is lazy: iterate before you change the jobs you want to see). Ends after
        `timeout` seconds without a change, if given; otherwise runs until you stop it.

        >>> for change in app.watch(job=job.id, timeout=30):
        ...     print(change.kind, change.job.progress)
        ...     if change.job.finished:
        ...         break
        """
        where = _where(job, task, queue, tenant)
        woken = threading.Event()
        unsubscribe = self.feed.subscribe(woken.set)
        try:
            cursor = self.store.change_head() if since is None else since
            pace = _Pace(timeout)
            while True:
                woken.clear()
                batch = self.store.changes(cursor, where, BATCH)
                for change in batch:
                    cursor = change.cursor
                    yield change
                wait = pace.next_wait(len(batch))
                if wait is None:
                    return
                pace.noticed(woken.wait(wait))
        finally:
            unsubscribe()

    async def watch_async(
        self,
        job: uuid.UUID | str | None = None,
        task: str | None = None,
        queue: str | None = None,
        tenant: str | None = None,
        since: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Change]:
        """`watch` for async code: the same changes, without blocking the event loop.

        >>> async for change in app.watch_async(tenant="acme"):
        ...     await websocket.send_json({"id": str(change.job.id), "kind": change.kind})
        """
        where = _where(job, task, queue, tenant)
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a late notice
                loop.call_soon_threadsafe(woken.set)

        unsubscribe = self.feed.subscribe(wake)
        try:
            store = self.store
            cursor = await asyncio.to_thread(store.change_head) if since is None else since
            pace = _Pace(timeout)
            while True:
                woken.clear()
                batch = await asyncio.to_thread(store.changes, cursor, where, BATCH)
                for change in batch:
                    cursor = change.cursor
                    yield change
                wait = pace.next_wait(len(batch))
                if wait is None:
                    return
                pace.noticed(await wait_event(woken, wait))
        finally:
            unsubscribe()

    def attempts(self, job_id: uuid.UUID | str) -> list[AttemptInfo]:
        """Every attempt of a job, oldest first: number, worker, start and end, outcome,
        error and duration. Kept as long as the job is."""
        return self.store.attempts(as_job_id(job_id, InvalidArguments))

    def workers(self) -> list[WorkerInfo]:
        """The workers alive now, in any process on any machine, each with what it runs.
        A worker that stopped heartbeating drops out once its lease passes."""
        return self.store.workers()

    attempts_async = twin(attempts)
    workers_async = twin(workers)


class _Pace:
    """When a watcher reads the feed next: at once while batches come full, soon after a
    notice that found nothing yet, else at the next notice or the backstop; never again
    once `timeout` seconds passed without a change."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.last_change = time.monotonic()
        self.rechecks = 0

    def noticed(self, woken: bool) -> None:
        if woken:
            self.rechecks = RECHECKS

    def next_wait(self, got: int) -> float | None:
        now = time.monotonic()
        if got:
            self.last_change, self.rechecks = now, 0
            if got >= BATCH:
                return 0.0
        elif self.rechecks > 0:
            self.rechecks -= 1
            return self._bounded(RECHECK_SECONDS, now)
        return self._bounded(BACKSTOP_SECONDS, now)

    def _bounded(self, wait: float, now: float) -> float | None:
        if self.timeout is None:
            return wait
        left = self.last_change + self.timeout - now
        return None if left <= 0 else min(wait, left)


def _where(
    job: uuid.UUID | str | None, task: str | None, queue: str | None, tenant: str | None
) -> ChangeFilter:
    return ChangeFilter(
        None if job is None else as_job_id(job, InvalidArguments), task, queue, tenant
    )
