"""How a worker waits: for a free slot, for work to come due, or for a change in the store,
without ever waiting long for a stop request."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from ..settings import Settings
from ..stores import Store
from ..threads import StoreThreads
from ..waits import wait_event

log = logging.getLogger("underway.worker")

# Longest single wait for a store change; bounds how long a stopping worker waits for it.
WAIT_SLICE = 0.25


class Dispatching(Protocol):
    """The dispatch loop's state that its waits look at."""

    concurrency: int
    slots_used: int
    burst: bool
    queues: Sequence[str] | None
    settings: Settings
    store: Store

    @property
    def stopping(self) -> bool: ...


class Idle:
    """The waits of one worker's dispatch loop. `wake` is the loop's event, set by anything
    that may have made work claimable (a freed slot, an enqueue in this process, a stop)."""

    def __init__(self, worker: Dispatching, threads: StoreThreads, wake: asyncio.Event) -> None:
        self.worker = worker
        self.threads = threads
        self.wake = wake
        self._waiting: asyncio.Future[bool] | None = None
        self._unclaimable_rounds = 0

    async def sleep(self, seconds: float) -> None:
        """Sleep, waking early when woken."""
        self.wake.clear()
        await wait_event(self.wake, seconds)

    async def wait_for_slot(self) -> None:
        w = self.worker
        self.wake.clear()
        while w.slots_used >= w.concurrency and not w.stopping:
            await self.wake.wait()
            self.wake.clear()
        # Jobs that finish together wake us together: give them one turn of the loop to free
        # their slots so the next claim fetches a batch instead of one job.
        await asyncio.sleep(0)

    async def wait_for_work(self, claimed_any: bool, outcomes_held: int) -> bool:
        """Sleep until new work may be there. False when a burst worker should stop."""
        w = self.worker
        self.wake.clear()  # before the query: a stop or enqueue during it must still count
        if w.stopping:  # a stop that came before the clear
            return True
        try:
            due = await self.threads.call(w.store.next_due, w.queues)
        except Exception as exc:
            log.error("checking for due jobs failed: %s", exc)
            due = None
        poll = w.settings.poll_seconds
        idle = w.slots_used == 0 and not outcomes_held
        # Due jobs that two claims in a row could not take are not ours to take: their queue
        # is at its concurrency limit or another worker holds them.
        stuck = due is not None and due <= 0 and not claimed_any
        self._unclaimable_rounds = self._unclaimable_rounds + 1 if stuck else 0
        if w.burst and idle and (due is None or due > poll or self._unclaimable_rounds >= 2):
            return False
        timeout = poll if due is None else min(max(due, 0.0), poll)
        if timeout <= 0:
            if claimed_any or self._unclaimable_rounds < 2:
                return True  # claim (once more) before taking them for unclaimable
            # Due jobs that we could not claim: another worker is taking them, or their queue
            # is at its concurrency limit. Wait for a change instead of spinning on them.
            timeout = poll
        await self.wait_for_change(timeout)
        return True

    async def wait_for_change(self, timeout: float) -> None:
        """Return when the store changed, something in this process woke us, or `timeout`
        passed. The store's change wait blocks a thread of its own, in short slices so that a
        stopping worker never waits long for that thread; a slice still running from the last
        round is reused (its change would be news to us too)."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        woken: asyncio.Future[Any] = asyncio.ensure_future(self.wake.wait())
        try:
            while not woken.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                if self._waiting is None or self._waiting.done():
                    self._waiting = loop.run_in_executor(
                        self.threads.waiter,
                        self.worker.store.wait_for_change,
                        min(remaining, WAIT_SLICE),
                    )
                either: set[asyncio.Future[Any]] = {self._waiting, woken}
                await asyncio.wait(either, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if not self._waiting.done():
                    continue
                if self._waiting.exception() is not None:
                    log.error("waiting for new jobs failed: %s", self._waiting.exception())
                    await asyncio.sleep(min(remaining, 1.0))
                    return
                if self._waiting.result():
                    return  # the store changed: look for work
        finally:
            woken.cancel()
