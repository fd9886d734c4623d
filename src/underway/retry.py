"""Retry policies as values: given the attempt that just failed, how long until the next."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: `base * factor ** (attempt - 1)` seconds, capped at `max`.

    With `jitter`, the wait is drawn uniformly from [delay/2, delay] so that jobs failing
    together do not all come back together.

    >>> Backoff(base=1, factor=2, max=300, jitter=False).delay(3)
    4.0
    """

    base: float = 1.0
    factor: float = 2.0
    max: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        values = (self.base, self.factor, self.max)
        if not all(math.isfinite(v) for v in values):
            raise ConfigurationError(f"Backoff needs finite numbers, got {values}")
        if self.base < 0 or self.factor < 1 or self.max < 0:
            raise ConfigurationError("Backoff needs base >= 0, factor >= 1 and max >= 0")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        exponent = max(attempt - 1, 0)
        base, factor, cap = float(self.base), float(self.factor), float(self.max)
        if base == 0 or cap == 0:
            delay = 0.0
        elif exponent * math.log(factor) >= math.log(cap) - math.log(base):
            # At or past the cap: skip the power, which overflows for huge attempt numbers.
            delay = cap
        else:
            try:
                delay = min(base * factor**exponent, cap)
            except OverflowError:  # a tiny base times a power beyond the float range
                delay = min(math.exp(math.log(base) + exponent * math.log(factor)), cap)
        if self.jitter and delay > 0:
            delay = (rng or random).uniform(delay / 2, delay)
        return float(delay)
