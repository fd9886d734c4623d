"""The outcome writer: outcomes written in batches, and the one place that says what a crash
can run again.

An outcome waits here from the moment its attempt ends until the store confirms it. If the
worker dies meanwhile, the outcome is lost with it, but nothing else is: the job is still
`running` under our lease, the lease expires, and another worker rescues the job and runs it
again. So a job runs twice only when its worker died between its task returning and its
outcome's commit: one write round, plus the round before it under load (see
docs/decisions/0005-wakeups-and-batching.md). Heartbeats cover the leases of waiting outcomes
(`leases()`), so a slow write never lets a finished job be rescued while we still hold it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from .. import encoding
from ..context import job_logger
from ..errors import StoreError
from ..model import Job
from ..stores import Store
from ..stores.messages import Lease, Outcome
from ..threads import StoreThreads
from . import outcomes

log = logging.getLogger("underway.worker")

#: called once per written outcome, on the event loop: (outcome, job, landed)
Written = Callable[[Outcome, Job, bool], None]


class OutcomeWriter:
    """Buffers outcomes and writes them, each batch in one transaction, on the store thread
    for outcomes. `on_written` hears about every outcome once it is settled."""

    def __init__(
        self, store: Store, threads: StoreThreads, on_written: Written, give_up_after: float
    ) -> None:
        self.store = store
        self.threads = threads
        self.on_written = on_written
        self.give_up_after = give_up_after
        self._buffer: dict[uuid.UUID, tuple[Outcome, Job]] = {}
        self._writing: dict[uuid.UUID, tuple[Outcome, Job]] = {}
        self._needed = asyncio.Event()
        self._closing = False

    def add(self, outcome: Outcome, job: Job) -> None:
        self._buffer[outcome.job_id] = (outcome, job)
        self._needed.set()

    @property
    def holding(self) -> int:
        """Outcomes not yet confirmed by the store."""
        return len(self._buffer) + len(self._writing)

    def leases(self) -> list[Lease]:
        """The leases of outcomes not yet confirmed, for the heartbeat to keep alive."""
        held = (*list(self._buffer.values()), *list(self._writing.values()))
        return [Lease(outcome.job_id, outcome.token) for outcome, _ in held]

    async def run(self) -> None:
        """Write whatever is buffered, whenever something is, until closed and empty."""
        while True:
            await self._needed.wait()
            self._needed.clear()
            await self.write()
            if self._closing and not self._buffer:
                return

    async def close(self, task: asyncio.Task[None]) -> None:
        """Let the writer (`task`, running `run()`) finish what it holds: cancelling it
        mid-write would drop outcomes (a completion lost means the job runs again). If the
        store stays unreachable, give up after a while: the leases expire and the jobs are
        rescued, so nothing is lost."""
        self._closing = True
        self._needed.set()
        try:
            await asyncio.wait_for(task, timeout=self.give_up_after)
        except TimeoutError:
            log.error(
                "could not write %d outcomes before stopping; their jobs will be rescued once "
                "their leases expire",
                self.holding,
            )

    async def write(self) -> None:
        """Write every buffered outcome in one transaction. Outcomes that pile up while a write
        runs go into the next one, so batches grow with load and cost nothing when idle."""
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, {}
        self._writing = batch
        try:
            landed = await self._write_batch(batch)
        except asyncio.CancelledError:
            self._buffer = {**batch, **self._buffer}  # keep them for a later write
            self._writing = {}
            raise
        self._writing = {}
        for outcome, job in batch.values():
            self.on_written(outcome, job, outcome.job_id in landed)

    async def _write_batch(self, batch: dict[uuid.UUID, tuple[Outcome, Job]]) -> set[uuid.UUID]:
        failures = 0
        while True:
            try:
                return await self._finish([o for o, _ in batch.values()])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if not isinstance(exc, StoreError) and failures >= 3:
                    # Not an outage but the same data error again: one outcome the store
                    # cannot take must not hold up every other job of this worker.
                    return await self._write_one_by_one(batch)
                delay = min(0.1 * 2**failures, 10.0)
                log.error(
                    "writing %d outcomes failed (%s); retrying in %.1f s", len(batch), exc, delay
                )
                await asyncio.sleep(delay)

    async def _write_one_by_one(
        self, batch: dict[uuid.UUID, tuple[Outcome, Job]]
    ) -> set[uuid.UUID]:
        """Write outcomes singly; one the store refuses becomes a failure that says why."""
        landed: set[uuid.UUID] = set()
        for outcome, job in batch.values():
            try:
                landed |= await self._finish([outcome])
                continue
            except Exception as exc:
                failed = outcomes.refused(outcome, encoding.clean_text(str(exc)))
                job_logger(job, log).error("%s", failed.error.message if failed.error else "")
            try:
                landed |= await self._finish([failed])
            except Exception as exc:  # give up: the lease expires and the job is rescued
                job_logger(job, log).error("could not record the failure either: %s", exc)
        return landed

    async def _finish(self, batch: list[Outcome]) -> set[uuid.UUID]:
        return await self.threads.on(self.threads.outcomes, self.store.finish, batch)
