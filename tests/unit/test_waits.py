"""wait_event: a timeout on an asyncio event that never swallows the caller's cancellation
(asyncio.wait_for on Python 3.11 does when the event is set in the same instant)."""

from __future__ import annotations

import asyncio

import pytest

from underway.waits import wait_event


def test_it_says_whether_the_event_was_set_or_the_time_ran_out() -> None:
    async def main() -> tuple[bool, bool, bool]:
        event = asyncio.Event()
        timed_out = await wait_event(event, 0.01)
        asyncio.get_running_loop().call_later(0.01, event.set)
        was_set = await wait_event(event, 5)
        return timed_out, was_set, await wait_event(event, None)

    assert asyncio.run(main()) == (False, True, True)


def test_a_cancel_that_comes_as_the_event_is_set_still_cancels() -> None:
    async def main() -> None:
        event = asyncio.Event()
        waiting = asyncio.create_task(wait_event(event, 10))
        await asyncio.sleep(0)  # it is waiting now
        event.set()
        waiting.cancel()  # in the same instant: the event's waiter is already done
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())


def test_the_same_race_with_an_unbounded_wait() -> None:
    async def main() -> None:
        event = asyncio.Event()
        waiting = asyncio.create_task(wait_event(event, None))
        await asyncio.sleep(0)
        event.set()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())
