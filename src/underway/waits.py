"""Waiting for an asyncio event with a timeout, without losing a cancellation.

On Python 3.11, `asyncio.wait_for(event.wait(), t)` returns normally when the event is set in
the same instant the waiting task is cancelled: the cancellation is swallowed, and a loop that
should stop (a worker's upkeep at shutdown, a watcher behind a closing event stream) keeps
going. `asyncio.timeout` turns only its own expiry into TimeoutError and lets every other
cancellation through.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set (True) or `timeout` seconds pass (False; None waits for
    ever). A cancellation of the caller always propagates."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
