"""Suspects run alone: the jobs a crash was rescued from.

A job that kills its worker process (`os._exit`, a segfault, the OOM killer) takes down every
job the worker ran beside it. Rescued together, they would be claimed together again, and each
crash would count against all of them until innocent jobs reached the dead letters with it.
So a rescued job is a suspect until it ends: a worker claims suspects one at a time, only
while it runs nothing else, and claims nothing beside one. A crash then counts against the
suspect alone, and the innocent ones, run alone once, finish (docs/decisions/0024).

A busy worker is never idle to take a suspect, so when one is due (looked up at most once per
heartbeat) the worker stops claiming, lets its jobs finish, and takes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from ..context import job_logger
from ..settings import Settings
from ..stores import Store
from ..stores.messages import Claimed
from ..threads import StoreThreads

log = logging.getLogger("underway.worker")


class Claiming(Protocol):
    """What the suspects' claim needs of its worker."""

    id: str
    queues: Sequence[str] | None
    settings: Settings
    store: Store
    slots_used: int


class Suspects:
    """The claim of one worker: a suspect alone when one is due, else up to `free` others."""

    def __init__(self, worker: Claiming, threads: StoreThreads) -> None:
        self.worker = worker
        self.threads = threads
        self.alone = False  # a suspect runs (or its thread has not returned yet)
        self._due = False
        self._looked_at = float("-inf")
        # After a suspect could not be taken (another worker took it, or its queue is at its
        # concurrency limit), do not stop claiming for it again before this time.
        self._quiet_until = float("-inf")

    async def claim(self, free: int) -> list[Claimed]:
        w = self.worker
        busy = w.slots_used > 0
        if self.alone:
            if busy:
                return []
            self.alone = False
        now = time.monotonic()
        if now >= self._quiet_until and now - self._looked_at >= w.settings.heartbeat_seconds:
            self._looked_at = now
            self._due = await self.threads.call(w.store.suspect_due, w.queues)
        if self._due and now >= self._quiet_until:
            if busy:
                return []  # let the running jobs finish first
            claimed = await self.threads.call(w.store.claim, w.id, w.queues, 1, True)
            if claimed:
                self.alone = True
                job = claimed[0].job
                job_logger(job, log).warning(
                    "running job %s alone: it was rescued %d time(s) from a worker that "
                    "stopped heartbeating (a crash takes down only the jobs beside it)",
                    job.id, job.rescues,
                )  # fmt: skip
                return claimed
            self._due = False
            self._quiet_until = now + w.settings.lease_seconds
        return await self.threads.call(w.store.claim, w.id, w.queues, free)
