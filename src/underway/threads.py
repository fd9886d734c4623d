"""The threads store calls run on, declared in one place (docs/decisions/0002-sync-store.md).

The store is blocking; a worker or scheduler keeps its event loop free by sending every store
call to one of these threads. Each is a single thread, so a SQLite connection (one per thread)
stays with the calls that need it, and the order of calls on one thread is the order they were
made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .stores import Store

T = TypeVar("T")


class StoreThreads:
    """`main`: claims, heartbeats, reports, rescues, due times. `outcomes`: the outcome writer,
    a thread of its own where the store writes on several connections at once (PostgreSQL), so
    a claim never waits behind a batch of completions; SQLite has one writer anyway, so there
    it is `main`. `waiter`: blocking change waits. `schedules`: the scheduler's ticks.
    `upkeep`: pruning, which may run long and must hold up neither heartbeats nor slots.
    `deliveries`: the callback deliverer's claims and records, so that its work, however
    much there is, never delays a heartbeat.
    `notices`: the wait for cancel requests, and the check of what they name."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.main = ThreadPoolExecutor(1, thread_name_prefix="underway-store")
        self.outcomes = (
            ThreadPoolExecutor(1, thread_name_prefix="underway-store-out")
            if store.concurrent_writes
            else self.main
        )
        self.waiter = ThreadPoolExecutor(1, thread_name_prefix="underway-wait")
        self.schedules = ThreadPoolExecutor(1, thread_name_prefix="underway-schedules")
        self.upkeep = ThreadPoolExecutor(1, thread_name_prefix="underway-upkeep")
        self.deliveries = ThreadPoolExecutor(1, thread_name_prefix="underway-deliveries")
        self.notices = ThreadPoolExecutor(1, thread_name_prefix="underway-notices")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the main store thread."""
        return await self.on(self.main, fn, *args)

    async def on(self, thread: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on one of these threads."""
        return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)

    def close(self) -> None:
        """Release each thread's store connection on that thread, then end the threads (a
        change wait still running ends within its short slice)."""
        threads = dict.fromkeys(
            (
                self.main,
                self.outcomes,
                self.waiter,
                self.schedules,
                self.upkeep,
                self.deliveries,
                self.notices,
            )
        )
        for thread in threads:
            thread.submit(self.store.close_thread)
        for thread in threads:
            thread.shutdown(wait=True)
