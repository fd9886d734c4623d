"""Backoff: base * factor ** (attempt - 1), capped at max, optionally jittered to [d/2, d]."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from underway import Backoff


@pytest.mark.parametrize(
    ("base", "factor", "cap", "attempt", "expected"),
    [
        (1.0, 2.0, 300.0, 1, 1.0),
        (1.0, 2.0, 300.0, 2, 2.0),
        (1.0, 2.0, 300.0, 3, 4.0),
        (1.0, 2.0, 300.0, 9, 256.0),
        (1.0, 2.0, 300.0, 10, 300.0),  # 512 capped
        (0.5, 3.0, 100.0, 3, 4.5),
        (5.0, 1.0, 300.0, 50, 5.0),  # factor 1: constant
        (0.0, 2.0, 300.0, 7, 0.0),  # base 0: retry at once
        (10.0, 2.0, 5.0, 1, 5.0),  # the cap applies to the first wait too
        (1.0, 2.0, 300.0, 0, 1.0),  # attempt 0 or below counts as the first
        (1.0, 2.0, 300.0, -3, 1.0),
        (2, 3, 1000, 4, 54.0),  # ints work like floats
    ],
)
def test_fixed_delays(
    base: float, factor: float, cap: float, attempt: int, expected: float
) -> None:
    delay = Backoff(base=base, factor=factor, max=cap, jitter=False).delay(attempt)
    assert delay == expected
    assert type(delay) is float


def test_defaults() -> None:
    backoff = Backoff()
    assert (backoff.base, backoff.factor, backoff.max, backoff.jitter) == (1.0, 2.0, 300.0, True)


@pytest.mark.parametrize("attempt", [100, 1_100, 10**6, 2**63, sys.maxsize * 4])
@pytest.mark.parametrize(
    ("base", "factor", "cap", "expected"),
    [(1.0, 2.0, 300.0, 300.0), (0.25, 1.5, 60.0, 60.0)],
)
def test_huge_attempts_do_not_overflow(
    base: float, factor: float, cap: float, expected: float, attempt: int
) -> None:
    assert Backoff(base=base, factor=factor, max=cap, jitter=False).delay(attempt) == expected
    jittered = Backoff(base=base, factor=factor, max=cap).delay(attempt, random.Random(1))
    assert expected / 2 <= jittered <= expected


def test_a_zero_base_stays_zero_however_many_attempts() -> None:
    # 0 * 2.0 ** 2000 overflows a float on the way; the answer is still 0, not the cap.
    assert Backoff(base=0.0, factor=2.0, max=300.0, jitter=False).delay(2_000) == 0.0


def test_huge_attempts_with_integer_parameters_return_at_once() -> None:
    # The docstring example uses ints; a huge attempt must not build a gigantic int.
    code = (
        "from underway import Backoff\n"
        "print(Backoff(base=1, factor=2, max=300, jitter=False).delay(10**12))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=5
        )
    except subprocess.TimeoutExpired:
        pytest.fail("Backoff(base=1, factor=2).delay(10**12) did not return within 5 s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "300.0"


@pytest.mark.parametrize(
    "params",
    [
        {"base": -1.0},
        {"factor": 0.5},
        {"factor": 0.0},
        {"max": -1.0},
    ],
    ids=str,
)
def test_invalid_parameters_raise(params: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**params)


@pytest.mark.parametrize("name", ["base", "factor", "max"])
def test_nan_parameters_raise(name: str) -> None:
    # NaN slips past `< 0` checks; it would make every retry wait NaN seconds.
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**{name: math.nan})


finite = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(
    base=finite,
    factor=st.floats(min_value=1.0, max_value=100.0),
    cap=finite,
    attempt=st.integers(min_value=-5, max_value=10**9),
    seed=st.integers(),
)
def test_jitter_stays_within_half_and_whole_delay(
    base: float, factor: float, cap: float, attempt: int, seed: int
) -> None:
    plain = Backoff(base=base, factor=factor, max=cap, jitter=False).delay(attempt)
    jittered = Backoff(base=base, factor=factor, max=cap, jitter=True).delay(
        attempt, random.Random(seed)
    )
    assert math.isfinite(plain) and 0.0 <= plain <= cap
    assert plain / 2 <= jittered <= plain
    # The same random source gives the same wait.
    again = Backoff(base=base, factor=factor, max=cap).delay(attempt, random.Random(seed))
    assert again == jittered


@given(
    base=finite,
    factor=st.floats(min_value=1.0, max_value=100.0),
    cap=finite,
    attempt=st.integers(min_value=1, max_value=10_000),
)
def test_delays_never_shrink_as_attempts_grow(
    base: float, factor: float, cap: float, attempt: int
) -> None:
    backoff = Backoff(base=base, factor=factor, max=cap, jitter=False)
    assert backoff.delay(attempt) <= backoff.delay(attempt + 1)


def test_jitter_spreads_waits_out() -> None:
    backoff = Backoff(base=10.0, factor=2.0, max=300.0)
    waits = {backoff.delay(3, random.Random(seed)) for seed in range(50)}
    assert len(waits) > 40
    assert all(20.0 <= w <= 40.0 for w in waits)
    assert all(20.0 <= backoff.delay(3) <= 40.0 for _ in range(50))  # the module's own rng


@given(
    base=st.floats(min_value=1e-3, max_value=1e3),
    cap=st.floats(min_value=1e-3, max_value=1e6),
    attempt=st.integers(min_value=1, max_value=200),
    seed=st.integers(),
)
def test_a_doubling_wait_stays_in_its_jitter_band_under_the_cap(
    base: float, cap: float, attempt: int, seed: int
) -> None:
    # The catalogue's property (F21): the wait after attempt n lies in the jitter band
    # [d/2, d] around d = base * 2 ** (n - 1), and never above the cap.
    nominal = min(base * 2.0 ** (attempt - 1), cap)
    wait = Backoff(base=base, factor=2.0, max=cap).delay(attempt, random.Random(seed))
    assert nominal / 2 <= wait <= nominal <= cap
