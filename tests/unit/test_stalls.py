"""The rescue gate after a store stall (worker/stalls.py), on a clock of the test's own."""

from __future__ import annotations

import asyncio

import pytest

from underway.worker.stalls import StallGuard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_call(guard: StallGuard, clock: Clock, takes: float, fails: bool = False) -> None:
    async def call() -> None:
        clock.now += takes
        if fails:
            raise ConnectionError("store went away")

    asyncio.run(guard.timed(call))


def test_prompt_answers_never_hold_a_rescue_back() -> None:
    clock = Clock()
    guard = StallGuard(lease_seconds=10, clock=clock)
    assert guard.may_rescue()  # a worker that just started rescues at once
    for _ in range(5):
        run_call(guard, clock, takes=4.9)  # under half a lease: not a stall
    assert guard.may_rescue()


@pytest.mark.parametrize("fails", [False, True])
def test_a_slow_or_failed_call_holds_rescues_back_for_a_lease_after_it(fails: bool) -> None:
    clock = Clock()
    guard = StallGuard(lease_seconds=10, clock=clock)
    if fails:
        with pytest.raises(ConnectionError):
            run_call(guard, clock, takes=0.1, fails=True)
    else:
        run_call(guard, clock, takes=8.0)  # the call waited out a stall
    assert not guard.may_rescue()
    clock.now += 9.9
    assert not guard.may_rescue()
    run_call(guard, clock, takes=0.1)  # the store answers promptly again: the clock runs on
    assert guard.may_rescue()


def test_each_new_stall_starts_the_wait_again() -> None:
    clock = Clock()
    guard = StallGuard(lease_seconds=10, clock=clock)
    run_call(guard, clock, takes=6.0)
    clock.now += 8.0
    run_call(guard, clock, takes=6.0)
    clock.now += 8.0
    assert not guard.may_rescue()
    clock.now += 2.0
    assert guard.may_rescue()
