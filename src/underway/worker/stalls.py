"""When a worker may rescue others' expired leases: not right after the store stalled.

A lease expires when its holder cannot renew it, and that is also what a stall of the store
does to every holder at once: a held SQLite write lock, a PostgreSQL restart, a frozen producer
inside its transaction. When the stall ends, a rescue that runs before the live holders have
renewed takes their jobs away, and the jobs run twice though no worker died. So a worker that
saw the store stall (a call failed, or took longer than half a lease) rescues nothing until the
store has answered promptly for a whole lease: every live holder has renewed by then, and what
is still expired belongs to a worker that is really gone.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class StallGuard:
    """Times a worker's store calls and says whether rescuing is safe now."""

    def __init__(self, lease_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.slow_seconds = lease_seconds / 2
        self._troubled_at: float | None = None  # when a stall was last seen ending

    async def timed(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a store call, noting a failure or a slow answer as a stall."""
        started = self.clock()
        try:
            result = await call()
        except Exception:
            self._troubled_at = self.clock()
            raise
        ended = self.clock()
        if ended - started > self.slow_seconds:
            self._troubled_at = ended
        return result

    def may_rescue(self) -> bool:
        """False while the last stall seen ended less than a lease ago."""
        return self._troubled_at is None or self.clock() - self._troubled_at >= self.lease_seconds
