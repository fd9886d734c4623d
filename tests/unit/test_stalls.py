"""The rescue gate after a store stall (worker/stalls.py), on a clock of the test's own."""

from __future__ import annotations

import asyncio

import pytest

from underway.worker.stalls import StallGuard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.wall_offset = 1.7e9  # the wall clock runs with the monotonic one unless stepped

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset


def run_call(guard: StallGuard, clock: Clock, takes: float, fails: bool = False) -> None:
    async def call() -> None:
        clock.now += takes
        if fails:
            raise ConnectionError("store went away")

    asyncio.run(guard.timed(call))


def test_prompt_answers_never_hold_a_rescue_back() -> None:
    clock = Clock()
    guard = StallGuard(lease_seconds=10, clock=clock, wall=clock.wall)
    assert guard.may_rescue()  # a worker that just started rescues at once
    for _ in range(5):
        run_call(guard, clock, takes=4.9)  # under half a lease: not a stall
    assert guard.may_rescue()


@pytest.mark.parametrize("fails", [False, True])
def test_a_slow_or_failed_call_holds_rescues_back_for_a_lease_after_it(fails: bool) -> None:
    clock = Clock()
    guard = StallGuard(lease_seconds=10, clock=clock, wall=clock.wall)
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
    guard = StallGuard(lease_seconds=10, clock=clock, wall=clock.wall)
    run_call(guard, clock, takes=6.0)
    clock.now += 8.0
    run_call(guard, clock, takes=6.0)
    clock.now += 8.0
    assert not guard.may_rescue()
    clock.now += 2.0
    assert guard.may_rescue()


@pytest.mark.parametrize("step", [3600.0, -3600.0])
def test_a_step_of_the_wall_clock_holds_rescues_back_for_a_lease(step: float) -> None:
    # SQLite's leases are wall-clock times: a clock set forward an hour made every running job
    # of healthy peers look expired, and a rescue took them all.
    clock = Clock()
    guard = StallGuard(lease_seconds=10, clock=clock, wall=clock.wall)
    assert guard.may_rescue()
    clock.now += 1.0
    clock.wall_offset += step
    assert not guard.may_rescue()
    clock.now += 9.9
    assert not guard.may_rescue()
    clock.now += 0.1
    assert guard.may_rescue()


def test_the_wall_clock_drifting_slowly_is_not_a_step() -> None:
    clock = Clock()
    guard = StallGuard(lease_seconds=10, clock=clock, wall=clock.wall)
    for _ in range(100):
        clock.now += 2.0
        clock.wall_offset += 0.01  # NTP slewing: 5 ms a second
        assert guard.may_rescue()
